"""``perturb criticality`` — the critical C_W at a given C_b (χ_⊥ = 1 at the fixed point), K* and the class."""

from __future__ import annotations

from ._cluster import add_cluster_args, executor_from_args
from ._common import add_dps_arg, emit_json, float_list


def register(sub) -> None:
    p = sub.add_parser(
        "criticality",
        help="critical C_W at a given C_b (χ_⊥ = 1 with K at its fixed point), K* and universality class",
        description="Solve χ_⊥ = C_W<σ'²>_K* = 1 jointly with the fixed-point equation K* = C_b + C_W<σ²>_K* "
        "(Schoenholz et al. 2017; PDLT ch. 5). Classes: scale-invariant, K*=0, half-stable, other (PDLT ch. 5). "
        "K_star is null where it is not finite or not unique (ReLU-like activations).",
    )
    p.add_argument("--activation", required=True,
                   help="activation name (relu, leaky_relu:A, tanh, erf, ...) or SymPy expression in z")
    p.add_argument("--cb", type=float, default=0.0, help="bias variance C_b (>= 0, default 0)")
    p.add_argument("--cb-values", dest="cb_values", type=float_list, default=None, metavar="LIST",
                   help="a grid of C_b values, e.g. 0,0.1,0.2 (instead of --cb): one critical point each, "
                   "computed in parallel with --workers/--scheduler/--dask-local; JSON {\"points\": [...]}")
    p.add_argument("--xi", type=float, default=None, metavar="XI",
                   help="residual MLP z' = ξz + γ(b + Wσ(z)): the critical C_W of the residual recursion "
                   "(|ξ| < 1; as perturb residual-criticality)")
    p.add_argument("--gamma", type=float, default=None, metavar="G", help="residual branch scaling γ (default 1)")
    add_dps_arg(p)
    add_cluster_args(p, workers=True)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _run_grid(args) -> int:
    from ..criticality import critical_points

    with executor_from_args(args) as ex:
        pts = critical_points(args.activation, args.cb_values, dps=args.dps, executor=ex)
    if args.json:
        # C_b as given (a string of the float's repr under --dps, where numbers print as strings)
        emit_json({"points": [{"C_b": repr(cp.C_b) if args.dps else cp.C_b, **cp.as_dict()} for cp in pts]},
                  args.dps)
        return 0
    for cp in pts:
        print(f"{cp.activation} at C_b = {cp.C_b:g}: critical C_W = {cp.C_W}, K* = {cp.K_star}")
    return 0


def run(args) -> int:
    from ..criticality import (
        critical_depth_series,
        critical_point,
        universality_class,
        vertex_depth_series,
    )

    if args.xi is not None or args.gamma is not None:
        from ..errors import PerturbError
        from .residual_criticality import run as run_residual

        if args.cb_values is not None:
            raise PerturbError("--xi/--gamma take one --cb, not --cb-values")
        args.xi = 0.0 if args.xi is None else args.xi
        args.gamma = 1.0 if args.gamma is None else args.gamma
        args.cw = None
        return run_residual(args)
    if args.cb_values is not None:
        return _run_grid(args)
    cp = critical_point(args.activation, args.cb, dps=args.dps)
    if args.json:
        emit_json(cp.as_dict(), args.dps)
        return 0
    uc = universality_class(args.activation)
    print(f"{cp.activation} at C_b = {args.cb:g}: critical C_W = {cp.C_W}, K* = {cp.K_star}")
    if cp.chi_parallel is not None:
        print(f"χ_∥ there = {cp.chi_parallel}")
    print(f"class: {uc.name} — {uc.description}")
    if uc.name in ("K*=0", "scale-invariant"):
        print(f"large depth at criticality: {critical_depth_series(args.activation).text}")
        print(f"four-point vertex (finite-width engine): {vertex_depth_series(args.activation)}")
    if cp.note:
        print(f"note: {cp.note}")
    return 0
