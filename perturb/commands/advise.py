"""``perturb advise`` — initialisation, width for a target, learning-rate window and regime of a network.

    perturb advise --activation tanh --depth 20 --width 128 --x 1 [--cw C --cb B] \\
                   [--target-kurtosis 0.1] [--target-ntk-rel-var 0.05] --json

composes the calls behind ``criticality``, ``fixed-point``, ``kernel``, ``cumulants``,
``ntk-stats``, ``ntk-move`` and (ReLU) ``relu-exact``; see :mod:`perturb.advise`.
"""

from __future__ import annotations

from ._common import emit_json, float_list, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "advise",
        help="hyperparameter advice: critical C_W, depth scale, 1/n kurtosis and NTK variance, "
        "learning-rate window, width for a target, regime",
        description="Compose criticality, fixed-point, kernel, cumulants, ntk-stats and ntk-move for one "
        "network: the critical C_W at C_b (or your C_W with its phase), xi_c, the order-1/n kurtosis "
        "κ4/K² and NTK relative variance, eta_lazy_max = 2/λ_max and eta_catapult_max = 4/λ_max of the "
        "infinite-width NTK on the inputs, the smallest width meeting a target, and the regime "
        "(kernel: relative NTK change over training < 0.01; non-perturbative: L/n >= 0.5 or an order-1/n "
        "correction >= 1; feature-learning otherwise).",
    )
    p.add_argument("--activation", required=True,
                   help="activation name (relu, leaky_relu:A, tanh, erf, ...) or SymPy expression in z")
    p.add_argument("--depth", type=positive_int, required=True, metavar="L", help="number of hidden layers L (1..300)")
    p.add_argument("--width", type=positive_int, required=True, metavar="N", help="every hidden width n")
    p.add_argument("--cw", type=float, default=None,
                   help="weight variance C_W (default: the critical C_W at --cb)")
    p.add_argument("--cb", type=float, default=0.0, help="bias variance C_b (default 0)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--x", type=float_list, help="one input vector, e.g. 1,0.5,-0.3")
    src.add_argument("--inputs", metavar="FILE.json", help="JSON list of input vectors of one dimension n0")
    p.add_argument("--target-kurtosis", dest="target_kurtosis", type=float, default=None, metavar="EPS",
                   help="also print width_for_kurtosis: the smallest width with |κ4/K²| <= EPS (order 1/n)")
    p.add_argument("--target-ntk-rel-var", dest="target_ntk_rel_var", type=float, default=None, metavar="EPS",
                   help="also print width_for_ntk_rel_var: the smallest width with Var Θ/(E Θ)² <= EPS")
    p.add_argument("--eta", type=float, default=None,
                   help="learning rate of the GD run behind ntk_change (default 1/λ_max, half the lazy edge)")
    p.add_argument("--y", type=float, default=None,
                   help="target of that run (default √K^(L+1), the size of the network's initial output)")
    p.add_argument("--exact", action="store_true",
                   help="also compute kurtosis_exact for any activation with perturb exact (density evolution, "
                   "seconds); ReLU with C_b = 0 always gets its closed-form exact value")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..advise import advise

    if args.inputs is not None:
        from .kernel import _read_inputs

        X = _read_inputs(args.inputs)
    else:
        X = [args.x]
    a = advise(args.activation, args.depth, args.width, X, C_W=args.cw, C_b=args.cb,
               target_kurtosis=args.target_kurtosis, target_ntk_rel_var=args.target_ntk_rel_var,
               eta=args.eta, y=args.y, exact=args.exact)
    if args.json:
        emit_json(a.as_dict())
        return 0
    d = a.as_dict()
    print(f"{a.activation}, L = {a.depth}, n = {a.width}: C_W = {a.C_W:.6g}, C_b = {a.C_b:g} ({a.phase}); "
          f"regime: {a.regime}")
    for k in ("xi_c", "depth_over_xi", "depth_over_width", "kurtosis", "kurtosis_exact", "ntk_rel_var",
              "eta_lazy_max", "eta_catapult_max", "ntk_change", "width_for_kurtosis", "width_for_ntk_rel_var"):
        v = d[k]
        if v is None and k in ("kurtosis_exact", "width_for_kurtosis", "width_for_ntk_rel_var"):
            continue
        print(f"  {k:<22} {'inf' if v is None and k == 'xi_c' else v}")
    for line in a.notes:
        print(f"- {line}")
    return 0
