"""``perturb residual-criticality`` — criticality of residual MLPs z' = ξ z + γ(b + W σ(z))."""

from __future__ import annotations

from ._common import add_dps_arg, emit_json


def register(sub) -> None:
    p = sub.add_parser(
        "residual-criticality",
        help="residual MLP z' = ξz + γ(b + Wσ(z)): critical C_W at C_b, or (with --cw) the fixed point, χ's "
        "and depth scales",
        description="Kernel recursion K' = ξ²K + γ²(C_b + C_W<σσ>_K). For |ξ| < 1 its fixed points are those of "
        "a plain MLP with C_W^eff = γ²C_W/(1−ξ²), C_b^eff = γ²C_b/(1−ξ²), and χ = ξ² + (1−ξ²)χ^eff: the "
        "critical line moves to C_W = (1−ξ²)/γ² · C_W^crit(γ²C_b/(1−ξ²)) (PDLT appendix B; docs: architectures).",
    )
    p.add_argument("--activation", required=True,
                   help="activation name (relu, leaky_relu:A, tanh, erf, ...) or SymPy expression in z")
    p.add_argument("--cb", type=float, default=0.0, help="bias variance C_b (>= 0, default 0)")
    p.add_argument("--xi", type=float, required=True, metavar="XI", help="skip scaling ξ (|ξ| < 1)")
    p.add_argument("--gamma", type=float, default=1.0, metavar="G", help="branch scaling γ (default 1)")
    p.add_argument("--cw", type=float, default=None, metavar="C_W",
                   help="report the fixed point, χ_∥, χ_⊥, χ_c and depth scales at this C_W instead")
    add_dps_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..arch.criticality import residual_critical_point, residual_fixed_point

    if args.cw is not None:
        fp = residual_fixed_point(args.activation, args.cw, args.cb, xi=args.xi, gamma=args.gamma, dps=args.dps)
        if args.json:
            emit_json(fp.as_dict(), args.dps)
            return 0
        print(f"{fp.activation} residual (ξ = {fp.xi:g}, γ = {fp.gamma:g}) at C_W = {fp.C_W:g}, C_b = {fp.C_b:g}: "
              f"{fp.phase}")
        print(f"q* = {fp.q_star}, c* = {fp.c_star}")
        print(f"χ_∥ = {fp.chi_parallel}, χ_⊥ = {fp.chi_perp}, χ_c = {fp.chi_c}")
        print(f"depth scales: ξ_q = {fp.depth_q}, ξ_c = {fp.depth_c} (plain MLP at C_W^eff = {fp.plain.C_W:g}, "
              f"C_b^eff = {fp.plain.C_b:g}: ξ_q = {fp.plain.xi_q}, ξ_c = {fp.plain.xi_c})")
        return 0
    rc = residual_critical_point(args.activation, args.cb, xi=args.xi, gamma=args.gamma, dps=args.dps)
    if args.json:
        emit_json(rc.as_dict(), args.dps)
        return 0
    print(f"{rc.activation} residual (ξ = {rc.xi:g}, γ = {rc.gamma:g}) at C_b = {args.cb:g}: critical C_W = {rc.C_W}, "
          f"K* = {rc.K_star} (plain MLP at this C_b: C_W = {rc.C_W_plain})")
    if rc.note:
        print(f"note: {rc.note}")
    return 0
