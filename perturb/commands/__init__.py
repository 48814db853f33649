"""CLI subcommands, one module each (discovered by :func:`perturb.cli.build_parser`).

A module ``perturb/commands/NAME.py`` defines ``register(subparsers)``; modules whose names
start with ``_`` are helpers, not commands.  Keep imports of heavy modules inside the command
function so that ``perturb --help`` stays fast.
"""
