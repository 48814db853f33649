"""``perturb phase-diagram`` — the order/chaos phase diagram of an activation as a figure (+ JSON data)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import PerturbError
from ._cluster import add_cluster_args, executor_from_args
from ._common import positive_int, to_jsonable

#: the largest grid side --n (n × n fixed points; n = 60 takes about a minute)
MAX_N = 200


def register(sub) -> None:
    p = sub.add_parser(
        "phase-diagram",
        help="order/chaos phase diagram in the (C_b, C_W) plane: ξ_c heat map and critical line (figure)",
        description="Grid of fixed points over C_b ∈ [cb-min, cb-max] × C_W ∈ [cw-min, cw-max]: ξ_c as a heat "
        "map, the critical line χ_1 = 1, ordered/chaotic regions (LH Figure 1 for tanh). Needs matplotlib "
        "(the 'plot' extra).",
    )
    p.add_argument("--activation", default="tanh", help="activation (default tanh)")
    p.add_argument("--out", required=True, help="figure file, .png or .svg")
    p.add_argument("--json", dest="json_out", default=None, metavar="FILE", help="also write the data as JSON to FILE ('-': print it on stdout)")
    p.add_argument("--cb-max", dest="cb_max", type=float, default=2.0, help="largest C_b (default 2)")
    p.add_argument("--cw-min", dest="cw_min", type=float, default=0.5, help="smallest C_W (default 0.5)")
    p.add_argument("--cw-max", dest="cw_max", type=float, default=4.5, help="largest C_W (default 4.5)")
    p.add_argument("--n", type=positive_int, default=60, help=f"grid points per axis, 2..{MAX_N} (default 60)")
    add_cluster_args(p, workers=True)
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from ..criticality import phase_diagram, plot_phase_diagram

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".svg"):
        raise PerturbError(f"--out must end in .png or .svg, got '{args.out}'")
    if not 2 <= args.n <= MAX_N:
        raise PerturbError(f"--n must be between 2 and {MAX_N} (the grid is n × n fixed-point solves), got {args.n}")
    from .._io import check_writable_file

    # before the grid (minutes at large n): both output paths must be writable
    check_writable_file(out, "--out")
    if args.json_out and args.json_out != "-":
        check_writable_file(args.json_out, "--json")
    if not (0 < args.cw_min < args.cw_max < float("inf")) or not 0 < args.cb_max < float("inf"):
        raise PerturbError(f"need finite 0 < cw-min < cw-max and cb-max > 0, got cw-min={args.cw_min:g}, "
                           f"cw-max={args.cw_max:g}, cb-max={args.cb_max:g}")
    with executor_from_args(args) as ex:
        d = phase_diagram(args.activation, np.linspace(0.0, args.cb_max, args.n),
                          np.linspace(args.cw_min, args.cw_max, args.n), executor=ex)
    fig = plot_phase_diagram(d, out)
    import matplotlib.pyplot as plt

    plt.close(fig)
    to_stdout = args.json_out == "-"  # --json -: the data as JSON on stdout (every command prints JSON)
    print(f"wrote {out}", file=sys.stderr if to_stdout else sys.stdout)
    if to_stdout:
        from ._common import emit_json

        emit_json(d.as_dict())
    elif args.json_out:
        from .._io import atomic_write_text

        atomic_write_text(args.json_out, json.dumps(to_jsonable(d.as_dict()), indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.json_out}")
    return 0
