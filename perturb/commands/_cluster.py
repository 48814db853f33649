"""``--scheduler`` / ``--dask-local``: where a command's ensembles and sweeps run (shared by mc,
phase-diagram and criticality; the library side is :func:`perturb.montecarlo.open_executor`)."""

from __future__ import annotations

import argparse

from ._common import positive_int


def add_cluster_args(p: argparse.ArgumentParser, *, workers: bool = False) -> None:
    """Add --scheduler and --dask-local (and --workers when asked) to a parser."""
    if workers:
        p.add_argument("--workers", type=positive_int, default=1,
                       help="local worker processes (results do not depend on it)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on a running dask.distributed scheduler, e.g. tcp://host:8786 (needs the "
                   "'dask' extra); same results, bit for bit, as a single process")
    p.add_argument("--dask-local", dest="dask_local", type=positive_int, default=None, metavar="N",
                   help="start a local Dask cluster of N worker processes for this run (needs the 'dask' extra)")


def executor_from_args(args):
    """The context manager yielding the executor the parsed arguments ask for."""
    from ..montecarlo import open_executor

    return open_executor(workers=getattr(args, "workers", 1), scheduler=args.scheduler,
                         dask_local=args.dask_local)
