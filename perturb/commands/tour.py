"""``perturb tour`` — the showcase of every capability."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("tour", help="run the showcase; writes JSON/LaTeX/figures to ./perturb-tour/")
    p.add_argument("--out", default="perturb-tour", help="output folder (default ./perturb-tour)")
    p.add_argument("--quick", action="store_true", help="smaller Monte Carlo runs (for tests)")
    p.add_argument("--only", action="append", help="run only sections whose name contains this")
    p.add_argument("--progress", action="store_true",
                   help="show the progress line (section, step, ETA) on stderr even when it is not a terminal")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..tour import run_tour

    run_tour(args.out, quick=args.quick, only=args.only, progress=True if args.progress else None)
    return 0
