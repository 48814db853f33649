"""``perturb fixed-point`` — q*, c*, χ_∥, χ_⊥, χ_c, ξ_q, ξ_c and the phase at (C_W, C_b)."""

from __future__ import annotations

from ._common import add_dps_arg, add_network_args, emit_json, to_jsonable


def register(sub) -> None:
    p = sub.add_parser(
        "fixed-point",
        help="fixed point of the kernel recursion: q*, c*, χ_∥, χ_⊥, χ_c, depth scales ξ_q, ξ_c, phase",
        description="q* solves q = C_b + C_W<σ²>_q (reached from K^(1) = 1); c* is the stable fixed point of "
        "the correlation map (1 when ordered, < 1 when chaotic); ξ = -1/log χ (null = infinite). "
        "Poole et al. 2016; Schoenholz et al. 2017; PDLT ch. 5.",
    )
    add_network_args(p)
    add_dps_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..criticality import fixed_point

    fp = fixed_point(args.activation, args.cw, args.cb, dps=args.dps)
    d = fp.as_dict()
    if args.json:
        out = to_jsonable(d, args.dps)
        if args.dps and fp.note and "float64 accuracy" in fp.note:
            # never print digits that were not computed: these stay float64 numbers
            for k in ("c_star", "chi_c", "xi_c"):
                if d.get(k) is not None:
                    out[k] = float(d[k])
        emit_json(out)  # already converted; emit_json is strict JSON
        return 0
    print(f"{fp.activation}, C_W = {args.cw:g}, C_b = {args.cb:g}: {fp.phase}")
    for k in ("q_star", "c_star", "chi_parallel", "chi_perp", "chi_c", "xi_q", "xi_c"):
        v = d[k]
        print(f"  {k:<13} {'inf' if v is None else v}")
    if fp.note:
        print(f"note: {fp.note}")
    return 0
