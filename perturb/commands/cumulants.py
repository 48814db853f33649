"""``perturb cumulants`` — the finite-width 1/n expansion of one output's moments and cumulants.

    perturb cumulants --activation tanh --cw 1 --cb 0 --widths 30,30,30 --x 1,0.5,-0.3 \\
                      --order 2 [--series] [--latex] [--dps 30] --json

prints ``{"K": K^{(L+1)}, "order": k, "moments": {"2": .., "4": .., "6": .., "8": ..},
"cumulants": {...}}`` — each the engine's prediction truncated at (1/n)^k (κ_4 is the full
fourth cumulant E z⁴ − 3(E z²)²).  ``--series`` adds the contribution of each order.
Conventions as ``perturb mc``: ``--widths`` are the hidden widths, ``--x`` one input.
From ``--order 5`` the evaluation runs in mpmath at 30 digits (the coefficients cancel
heavily; float64 left visible rounding remainders), printed as floats unless ``--dps`` is given.
"""

from __future__ import annotations

import sys

from ._common import add_dps_arg, add_network_args, emit_json, float_list, nonneg_int, width_list

ORDERS = (2, 4, 6, 8)


def register(sub) -> None:
    p = sub.add_parser("cumulants", help="1/n expansion of an output's moments and cumulants (derived)",
                       description="Derive the finite-width corrections to order (1/n)^K with the "
                       "engine and evaluate them for one input.")
    add_network_args(p)
    p.add_argument("--widths", type=width_list, required=True, help="hidden widths n_1..n_L, e.g. 30,30,30")
    p.add_argument("--x", type=float_list, required=True, help="one input vector (n0 = its length)")
    p.add_argument("--order", type=nonneg_int, default=1, help="truncation order K in 1/n (default 1)")
    p.add_argument("--series", action="store_true", help="also print the contribution of each order")
    p.add_argument("--latex", action="store_true", help="print the derived layer-map recursions as LaTeX")
    add_dps_arg(p)
    p.add_argument("--graph", metavar="FILE", help="write the expression graph (.json or .dot)")
    p.add_argument("--json", action="store_true", help="print JSON (the default output)")
    p.set_defaults(func=run)

#: orders from which the default (float) output is computed in mpmath at AUTO_DPS digits
AUTO_DPS_FROM_ORDER = 5
AUTO_DPS = 30


def run(args) -> int:
    import numpy as np

    from ..errors import PerturbError
    from ..finite import FiniteWidth
    from ..network import Network

    if args.graph:
        from .._io import check_writable_file

        if not args.graph.endswith((".json", ".dot", ".gv")):
            raise PerturbError(f"--graph must end in .json or .dot, got {args.graph!r}")
        check_writable_file(args.graph, "--graph")  # before the derivation
    net = Network(args.activation, widths=args.widths, C_W=args.cw, C_b=args.cb)
    x = np.asarray(args.x, dtype=float)
    K1 = net.C_b[0] + net.C_W[0] * float(x @ x) / x.size
    if K1 <= 0:
        raise PerturbError("the input is zero and C_b = 0: every preactivation vanishes "
                           "(the first-layer kernel K1 = 0)")
    fw = FiniteWidth(net.activation, depth=net.depth, order=args.order)
    if args.graph:
        from ..finite import write_graph

        write_graph(fw.graph(), args.graph)
    if args.latex and not args.json:
        print(fw.latex())
        return 0
    # From order 5 the coefficients are sums of thousands of large terms that cancel: float64 leaves
    # rounding noise (ReLU's exact E z² = K came out 1.4e-6 low at order 6), so the evaluation runs
    # in mpmath at AUTO_DPS digits and only the printed numbers are rounded to float.
    dps = args.dps if args.dps is not None else (AUTO_DPS if args.order >= AUTO_DPS_FROM_ORDER else None)
    st = fw.evaluate(K1=K1, widths=list(net.widths), C_W=list(net.C_W), C_b=list(net.C_b), dps=dps)
    out = {
        "K": st.K,
        "order": args.order,
        "moments": {str(m): st.total_moment(m) for m in ORDERS},
        "cumulants": {str(m): st.total_cumulant(m) for m in ORDERS},
    }
    from ..exact.resum import series_note

    note = series_note(st.series("moments", 2), st.series("moments", 4))  # docs/exact.md criterion
    if note:
        out["note"] = note
        if not args.json:
            print(f"note: {note}", file=sys.stderr)
    if args.series:
        # the contribution of each order c_0..c_K to each cumulant (and, separately, moment)
        out["series"] = {str(m): st.series("cumulants", m) for m in ORDERS}
        out["series_moments"] = {str(m): st.series("moments", m) for m in ORDERS}
    if args.latex:
        out["latex"] = fw.latex()  # --latex --json: the recursions under a key, stdout stays JSON
    emit_json(out, args.dps)
    return 0
