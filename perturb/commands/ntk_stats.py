"""``perturb ntk-stats`` — mean and variance of one output's NTK at order 1/n.

    perturb ntk-stats --activation relu --cw 2 --cb 0 --widths 64,64,64 --x 1,0.5,-0.3 [--order 1] --json

prints ``{"mean": E Θ, "var": Var Θ}`` for the NTK Θ(x, x) of one output neuron in the NTK
parameterisation (λ_W = C_W, λ_b = C_b): E Θ = H + H1/n_L and Var Θ = (A + 2B)/n_L, from the
derived order-1/n recursions (perturb.ntk).  ``--dps D`` evaluates with mpmath (numbers print as
D-digit strings).

    perturb ntk-stats --activation tanh --cw 1.2 --cb 0.1 --widths 8,8 --x 1 --order 2 [--series] [--cross] --json

``--order 2`` folds the order-1/n² map of perturb.engine (derived on first use, ~2 min, then
cached on disk) and keeps the keys ``{"mean", "var"}``; ``--series`` adds
``{"series": {"mean": [c0, c1, c2], "var": [v0, v1, v2]}}`` (the contribution of each order in
1/n_L, summing to the totals); ``--cross`` adds ``"cov_z2_ntk"`` = Cov(z², Θ) and
``"cov_sigma_ntk"`` = Cov(Σ^{(L)}, Θ) (Σ^{(L)} = E[z² | layer L], the output's conditional
variance), at the same order (and their series with ``--series``).  Orders above 2 exit 2.

    perturb ntk-stats --activation tanh --cw 1 --widths 64,64 --inputs X.json --json

with a JSON list of N = 1..3 input vectors (as ``perturb kernel``) prints ``{"mean": [[E Θ_αβ]],
"var": [[Var Θ_αβ]], "cov": [[[[Cov(Θ_αβ, Θ_γδ)]]]]}`` (N×N, N×N, N×N×N×N; the several-input
map of perturb.ntk.derive_multi; with ``--dps D`` in mpmath, D-digit strings).
"""

from __future__ import annotations

from ..errors import NotImplementedOrderError
from ._common import add_dps_arg, add_network_args, emit_json, float_list, width_list


def register(sub) -> None:
    p = sub.add_parser(
        "ntk-stats",
        help="finite-width NTK of one output (one input or several): mean and variance at order 1/n",
        description="Fold the derived order-1/n NTK recursions (H1, A, B, D, F of PDLT ch. 8) over "
        "the network and print the mean and variance of the NTK of one output neuron at the "
        "input x (NTK parameterisation, lambda = C); with --inputs, the N×N mean, the N×N variances "
        "and the N×N×N×N covariance Cov(Θ_ab, Θ_cd) over several inputs.",
    )
    add_network_args(p)
    p.add_argument("--widths", type=width_list, required=True, help="hidden widths n_1..n_L, e.g. 64,64,64")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--x", type=float_list, help="one input vector, e.g. 1,0.5,-0.3 (non-zero)")
    src.add_argument("--inputs", metavar="FILE.json",
                     help="JSON list of 1..3 input vectors of one dimension n0 (not parallel); then --json "
                     'prints {"mean": [[E Θ_ab]], "var": [[Var Θ_ab]], "cov": [[[[Cov(Θ_ab, Θ_cd)]]]]}')
    p.add_argument("--order", type=int, default=1,
                   help="order in 1/n: 1 or 2 (2: one input only; the order-2 map is derived on first use, "
                   "~2 min, and cached)")
    p.add_argument("--series", action="store_true",
                   help='with --json add {"series": {"mean": [c0, ..], "var": [v0, ..]}}: the contribution of each '
                   "order in 1/n_L (summing to the totals)")
    p.add_argument("--cross", action="store_true",
                   help='with --json add "cov_z2_ntk" = Cov(z², Θ) and "cov_sigma_ntk" = Cov(Σ^(L), Θ) at the same order')
    add_dps_arg(p)
    p.add_argument("--json", action="store_true",
                   help='print JSON: {"mean": E Θ, "var": Var Θ} for --x; with --inputs {"mean": N×N, '
                   '"var": N×N, "cov": N×N×N×N}')
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engine.layermap import MAX_ORDER
    from ..ntk.chain import ntk_statistics

    if args.order < 1 or args.order > MAX_ORDER:
        raise NotImplementedOrderError(f"--order {args.order} is not implemented: orders 1..{MAX_ORDER} in 1/n are "
                                       f"(the order-{MAX_ORDER + 1} map takes ~4 min of CPU to derive and is not offered yet)")
    if args.cw <= 0:
        from ..errors import PerturbError

        raise PerturbError(f"--cw must be > 0, got {args.cw}")
    if args.dps is not None and args.dps > 200:
        from ..errors import PerturbError

        raise PerturbError(f"--dps {args.dps} is too large (at most 200)")
    if args.inputs is not None:
        if args.order != 1 or args.series or args.cross:
            raise NotImplementedOrderError("--inputs supports --order 1 only (no --series/--cross); "
                                           "use --x for one input")
        return _run_inputs(args)
    if args.order != 1 or args.series or args.cross:
        return _run_series(args)
    st = ntk_statistics(args.activation, args.widths, args.x, C_W=args.cw, C_b=args.cb, dps=args.dps)
    out = {"mean": st.mean, "var": st.var}
    if args.json:
        emit_json(out, args.dps)
        return 0
    print(f"{args.activation}, C_W = {args.cw:g}, C_b = {args.cb:g}, widths {args.widths}, x = {args.x}")
    print(f"infinite-width NTK H = {float(st.H):.10g}")
    print(f"E Θ   = {float(st.mean):.10g}   (H + H1/n_L, H1 = {float(st.last('H1')):.6g})")
    print(f"Var Θ = {float(st.var):.10g}   ((A + 2B)/n_L, A = {float(st.last('A')):.6g}, "
          f"B = {float(st.last('B')):.6g})")
    return 0


def _run_inputs(args) -> int:
    from ..ntk.multi import ntk_statistics_multi
    from .kernel import _read_inputs

    X = _read_inputs(args.inputs)
    st = ntk_statistics_multi(args.activation, args.widths, X, C_W=args.cw, C_b=args.cb, dps=args.dps)
    if args.json:
        emit_json(st.as_dict(), args.dps)
        return 0
    N = X.shape[0]
    print(f"{args.activation}, C_W = {args.cw:g}, C_b = {args.cb:g}, widths {args.widths}, {N} inputs")
    for a in range(N):
        for b in range(a, N):
            print(f"Θ_{a + 1}{b + 1}: H = {float(st.H[a, b]):.10g}   E Θ = {float(st.mean[a, b]):.10g}   "
                  f"Var Θ = {float(st.var[a, b]):.6g}")
    return 0


def _run_series(args) -> int:
    import sys

    from ..engine.fold import ntk_series
    from ..engine.layermap import map_is_cached

    if not map_is_cached(args.order) and sys.stderr.isatty():
        print(f"deriving the order-{args.order} NTK map (first use: about two minutes; cached afterwards) ...",
              file=sys.stderr, flush=True)
    s = ntk_series(args.activation, args.widths, args.x, C_W=args.cw, C_b=args.cb, order=args.order, dps=args.dps)
    keys = ("mean", "var") + (("cov_z2_ntk", "cov_sigma_ntk") if args.cross else ())
    if args.dps:
        import mpmath

        with mpmath.workdps(args.dps):
            out = {k: mpmath.fsum(s[k]) for k in keys}
    else:
        out = {k: float(sum(s[k])) for k in keys}
    if args.series:
        out["series"] = {k: [v if args.dps else float(v) for v in s[k]] for k in keys}
    if args.json:
        emit_json(out, args.dps)
        return 0
    print(f"{args.activation}, C_W = {args.cw:g}, C_b = {args.cb:g}, widths {args.widths}, x = {args.x}, "
          f"order {args.order} in 1/n")
    for k in keys:
        terms = "  ".join(f"{float(v):+.6g}" for v in s[k])
        print(f"{k:14s} = {float(out[k]):.10g}   (by order: {terms})")
    return 0
