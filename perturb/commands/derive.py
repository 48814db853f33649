"""``perturb derive``: derivations as LaTeX, Markdown or JSON documents."""

from __future__ import annotations

import argparse
import sys

from ._common import positive_int


def register(sub) -> None:
    p = sub.add_parser("derive", help="print a derivation as LaTeX / Markdown / JSON",
                       description="Build a step-by-step derivation from the engine (its numeric checks run "
                                   "while it is built) and print it as a standalone LaTeX document (default), "
                                   "Markdown or JSON.")
    p.add_argument("name", nargs="?", help="derivation name (see --list)")
    p.add_argument("--list", action="store_true",
                   help="list the derivations (with NAME: those whose name contains it; --json: as JSON)")
    p.add_argument("--activation", default=None, help="activation (default per derivation)")
    p.add_argument("--order", type=positive_int, default=None, help="order k (order_k only)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--latex", dest="format", action="store_const", const="latex")
    fmt.add_argument("--markdown", dest="format", action="store_const", const="markdown")
    fmt.add_argument("--json", dest="format", action="store_const", const="json")
    p.add_argument("--no-checks", action="store_true", help="skip the embedded numeric checks")
    p.add_argument("--out", default=None, help="write to FILE instead of stdout")
    p.set_defaults(func=run, format="latex")


def run(args: argparse.Namespace) -> int:
    import derivations

    from ..errors import PerturbError
    from ..latex import to_json, to_latex, to_markdown

    if args.list:
        # `derive --list NAME` lists the derivations whose name contains NAME (none: an error)
        names = [n for n in derivations.REGISTRY if not args.name or args.name in n]
        if not names:
            raise PerturbError(f"no derivation name contains {args.name!r}; valid names: "
                               f"{', '.join(derivations.REGISTRY)}")
        if args.format == "json":
            import json

            print(json.dumps([{"name": n, "title": derivations.REGISTRY[n].title} for n in names], indent=2))
            return 0
        for name in names:
            print(f"{name:20s} {derivations.REGISTRY[name].title}")
        return 0
    if not args.name:
        raise PerturbError(f"give a derivation name or --list; valid names: {', '.join(derivations.REGISTRY)}")
    if args.out:
        from .._io import check_writable_file

        check_writable_file(args.out, "--out")  # before the (possibly long) derivation
    doc = derivations.build(args.name, activation=args.activation, order=args.order, checks=not args.no_checks)
    text = {"latex": to_latex, "markdown": to_markdown, "json": to_json}[args.format](doc)
    if args.out:
        from .._io import atomic_write_text

        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    if not doc.checks_passed:
        print("perturb: warning: some embedded checks FAILED (see the document)", file=sys.stderr)
        return 1
    return 0
