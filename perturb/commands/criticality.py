"""``perturb criticality`` — the critical C_W at a given C_b (χ_⊥ = 1 at the fixed point), K* and the class."""

from __future__ import annotations

from ._common import add_dps_arg, emit_json


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
    add_dps_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..criticality import (
        critical_depth_series,
        critical_point,
        universality_class,
        vertex_depth_series,
    )

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
