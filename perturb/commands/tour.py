"""``perturb tour`` — the showcase of every capability."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("tour", help="run the showcase; writes JSON/LaTeX/figures to ./perturb-tour/",
                       description="Run every capability of perturb on small default inputs, one section each "
                       "(infinite-width kernels, Monte Carlo, criticality, exact ReLU statistics, finite-width "
                       "corrections, catapult dynamics, NTK statistics and motion, derivations), each checked "
                       "against an independent method; writes the JSON data, LaTeX and figures into --out and "
                       "prints a summary.")
    p.add_argument("--out", default="perturb-tour", help="output folder (default ./perturb-tour)")
    p.add_argument("--quick", action="store_true", help="smaller Monte Carlo runs (for tests)")
    p.add_argument("--only", action="append", help="run only sections whose name contains this")
    p.add_argument("--progress", action="store_true",
                   help="show the progress line (section, step, ETA) on stderr even when it is not a terminal")
    p.add_argument("--json", action="store_true",
                   help='print {"out": folder, "files": [...]} as JSON on stdout (the summary goes to stderr)')
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ..tour import run_tour

    if args.only is not None and not all(o.strip() for o in args.only):
        from ..errors import PerturbError

        raise PerturbError("--only needs a section name (e.g. s10 or kernels); an empty one would match every "
                           "section")
    ctx = run_tour(args.out, quick=args.quick, only=args.only, progress=True if args.progress else None,
                   stream=sys.stderr if args.json else None)
    if args.json:
        from ._common import emit_json

        emit_json({"out": str(ctx.out.resolve()), "files": list(ctx.files)})
    return 0
