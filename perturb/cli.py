"""The ``perturb`` command line: thin parsing around the library API.

Each subcommand lives in its own module under :mod:`perturb.commands` and defines
``register(subparsers)``, which adds its parser and sets ``func`` to a function taking the
parsed arguments and returning an exit status.  Adding a command is adding one file.

Errors in user input (:class:`perturb.errors.PerturbError`) print one line,
``perturb: error: ...``, and exit with status 2; argparse usage errors exit 2 as well.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__
from .errors import PerturbError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perturb",
        description="Derivation engine for wide neural networks: infinite-width kernels, "
        "1/n corrections, exact finite-width statistics.",
    )
    parser.add_argument("--version", action="version", version=f"perturb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    _finite_floats(sub)
    return parser


def _finite_floats(sub) -> None:
    """Every ``type=float`` option reads a finite, bounded number instead (``nan``, ``inf`` and 1e308
    would reach the numerics and come back as NaN or an overflow)."""
    from .commands._common import real

    for p in sub.choices.values():
        for a in p._actions:
            if a.type is float:
                a.type = real


def _refuse_empty_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """argparse drops a value ``--`` (``--cb=--``) and stores ``[]`` without calling ``type``: refuse it."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    p = sub.choices.get(getattr(args, "command", None)) if sub else None
    for a in p._actions if p else ():
        if a.option_strings and a.nargs is None and getattr(args, a.dest, None) == []:
            p.error(f"argument {a.option_strings[0]}: expected a value, got '--'")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``perturb`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _refuse_empty_values(parser, args)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = args.func(args)
    except PerturbError as exc:
        print(f"perturb: error: {exc}", file=sys.stderr)
        return 2
    except OverflowError as exc:
        print(f"perturb: error: numerical overflow ({exc}); the inputs are too large for float64 "
              "(reduce --x, --cw or the depth, or use --dps)", file=sys.stderr)
        return 2
    except MemoryError:
        print("perturb: error: not enough memory for this request; reduce the sizes (--samples, --widths, "
              "--n, number of inputs)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("perturb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `perturb ... | head`
        return 0
    return int(status or 0)
