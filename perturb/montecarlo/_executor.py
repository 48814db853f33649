"""One execution abstraction for every ensemble and sweep: serial, local processes, or Dask.

A Monte Carlo ensemble is a list of chunks, chunk ``i`` drawing its networks from
``SeedSequence(seed, spawn_key=(i,))``; a parameter sweep (phase diagram, critical points over a
list of C_b) is a list of blocks of a deterministic computation.  Either way the work is
``[fn(t) for t in tasks]`` with independent tasks whose results are put back **in task order**.
Since a task's random numbers depend on its index alone, never on which process runs it or
when, the result is the same bits whichever executor maps the tasks:

* ``Executor.serial()`` — a plain loop in this process (the reference);
* ``Executor.processes(k)`` — a local process pool of ``k`` workers (``workers=k``);
* ``Executor.dask(client)`` — the workers of a ``dask.distributed`` cluster, a running one
  (``--scheduler tcp://host:8786``) or a ``LocalCluster`` started for the run (``--dask-local N``),
  through :func:`open_executor`.

``fn`` must be picklable (a module-level function or an instance of a module-level class), and
on a multi-machine cluster perturb must be installed on every worker.  Dask is optional: the
``[dask]`` extra (``pip install 'perturb[dask]'``); without it, asking for a cluster is a
one-line error.

>>> with open_executor() as ex:
...     ex.map(abs, [-2, 3, -5])
[2, 3, 5]
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from ..errors import PerturbError

__all__ = ["Executor", "open_executor", "MAX_DASK_LOCAL"]

#: largest LocalCluster that --dask-local starts (a bound on accidental fork bombs)
MAX_DASK_LOCAL = 256

_NO_DASK = "a Dask cluster (--scheduler/--dask-local) needs dask.distributed: pip install 'perturb[dask]'"


def _ignore_sigint() -> None:  # worker initializer: Ctrl-C is the parent's business
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _distributed():
    try:
        import distributed
    except ImportError:
        raise PerturbError(_NO_DASK) from None
    return distributed


class Executor:
    """Maps a picklable function over independent tasks; results always in task order.

    Build one with :meth:`serial`, :meth:`processes` or :meth:`dask` (or :func:`open_executor`,
    which also starts and closes a Dask cluster).

    >>> Executor.serial().map(len, ["ab", "c"])
    [2, 1]
    """

    def __init__(self, kind: str, workers: int = 1, client=None):
        self.kind, self.workers, self.client = kind, workers, client

    @classmethod
    def serial(cls) -> Executor:
        """A plain loop in this process (the reference).

        >>> Executor.serial().map(abs, [-1])
        [1]
        """
        return cls("serial")

    @classmethod
    def processes(cls, workers: int) -> Executor:
        """A local pool of ``workers`` processes, started per :meth:`map` (serial when 1).

        >>> Executor.processes(1).kind
        'serial'
        """
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise PerturbError(f"workers must be a positive integer, got {workers!r}")
        return cls("processes" if workers > 1 else "serial", workers)

    @classmethod
    def dask(cls, client) -> Executor:
        """Run on the workers of a ``distributed.Client`` (not closed by the executor)."""
        return cls("dask", client=client)

    def __repr__(self) -> str:
        if self.kind == "dask":
            return f"Executor.dask({self.client.scheduler.address!r})"
        return f"Executor.{self.kind}({self.workers if self.kind == 'processes' else ''})"

    def map(self, fn: Callable, tasks: Iterable, *, on_done: Callable[[int], None] | None = None) -> list:
        """``[fn(t) for t in tasks]``, computed by this executor; ``on_done(k)`` after k results."""
        items = list(tasks)
        tick = on_done or (lambda k: None)
        if not items:
            return []
        if self.kind == "dask":
            return self._map_dask(fn, items, tick)
        if self.kind == "serial" or len(items) == 1:
            out = []
            for t in items:
                out.append(fn(t))
                tick(len(out))
            return out
        with ProcessPoolExecutor(max_workers=min(self.workers, len(items), os.cpu_count() or 1),
                                 initializer=_ignore_sigint) as ex:
            out = []
            try:
                for r in ex.map(fn, items):
                    out.append(r)
                    tick(len(out))
            except BaseException:
                ex.shutdown(wait=False, cancel_futures=True)
                raise
            return out

    def _map_dask(self, fn, items, tick) -> list:
        distributed = _distributed()
        futures = self.client.map(fn, items, pure=False)
        try:
            for k, _ in enumerate(distributed.as_completed(futures), start=1):
                tick(k)
            return self.client.gather(futures)
        except BaseException:
            self.client.cancel(futures)
            raise


@contextlib.contextmanager
def open_executor(*, workers: int = 1, scheduler: str | None = None,
                  dask_local: int | None = None) -> Iterator[Executor]:
    """The executor for ``workers`` local processes, a running Dask scheduler, or a LocalCluster.

    Args:
        workers: local worker processes (1: serial).
        scheduler: address of a running ``dask.distributed`` scheduler, e.g. ``"tcp://host:8786"``.
        dask_local: start a ``LocalCluster`` of this many worker processes (one thread each) for
            the duration of the ``with`` block.

    At most one of ``workers > 1``, ``scheduler``, ``dask_local``.  The cluster and client are
    closed when the block ends, also on error.

    >>> with open_executor(workers=1) as ex:
    ...     ex.kind
    'serial'
    """
    chosen = [name for name, on in (("workers > 1", workers != 1), ("a scheduler", scheduler is not None),
                                    ("a local Dask cluster", dask_local is not None)) if on]
    if len(chosen) > 1:
        raise PerturbError(f"choose one of local workers, --scheduler and --dask-local, got {' and '.join(chosen)}")
    if scheduler is None and dask_local is None:
        yield Executor.processes(workers)
        return
    if dask_local is not None and (isinstance(dask_local, bool) or not isinstance(dask_local, int)
                                   or not 1 <= dask_local <= MAX_DASK_LOCAL):
        raise PerturbError(f"--dask-local must be an integer in 1..{MAX_DASK_LOCAL}, got {dask_local!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise PerturbError(f"--scheduler must be an address like tcp://host:8786, got {scheduler!r}")
    distributed = _distributed()
    with contextlib.ExitStack() as stack:
        if dask_local is not None:
            try:
                cluster = distributed.LocalCluster(n_workers=dask_local, threads_per_worker=1, processes=True,
                                                   dashboard_address=None, silence_logs=logging.ERROR)
            except RuntimeError as exc:  # e.g. worker processes that cannot start (script read from stdin)
                raise PerturbError(f"could not start a local Dask cluster of {dask_local} workers: {exc}") from None
            stack.enter_context(cluster)
            client = stack.enter_context(distributed.Client(cluster))
        else:
            try:
                client = distributed.Client(scheduler, timeout="10s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise PerturbError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
            stack.enter_context(client)
        yield Executor.dask(client)
