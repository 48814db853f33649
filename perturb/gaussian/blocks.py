"""Blocked evaluation of symmetric Gram matrices: row blocks on a few threads, one mirror pass.

numpy's ufuncs release the GIL, so row blocks of an upper triangle computed by ufunc-heavy
code run in parallel on threads; each block writes a disjoint part of its outputs.  The
number of threads is ``PERTURB_NUM_THREADS`` if set, else the cores this process may use
(at most 8).  Code that calls BLAS inside a block should run with ``threads=1`` and let the
BLAS library use the cores (two thread pools oversubscribe the machine).  The worker threads
ask numpy's OpenBLAS for one thread each (``openblas_set_num_threads_local``, a per-thread
setting; skipped when that symbol is not found), so BLAS calls inside blocks are safe too.
"""

from __future__ import annotations

import contextlib
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import PerturbError

__all__ = ["mirror_upper", "run_blocks", "num_threads", "single_threaded_blas"]


def mirror_upper(M, threads: int | None = None, tile: int = 64):
    """Copy the upper triangle of M onto the lower one in square tiles (cache- and TLB-friendly),
    so that M is exactly symmetric."""
    N = M.shape[0]

    def strip(i0):
        i1 = min(N, i0 + tile)
        for j0 in range(i1, N, tile):
            j1 = min(N, j0 + tile)
            M[j0:j1, i0:i1] = M[i0:i1, j0:j1].T
        blk = M[i0:i1, i0:i1]
        il = _tril(i1 - i0)
        blk[il] = blk.T[il]

    run_blocks(strip, range(0, N, tile), threads)


@functools.cache
def _tril(n: int):
    return np.tril_indices(n, -1)


def num_threads() -> int:
    """Worker threads for the blocked Gram-matrix paths: ``PERTURB_NUM_THREADS`` if set,
    otherwise the number of cores this process may run on (at most 8)."""
    env = os.environ.get("PERTURB_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise PerturbError(f"PERTURB_NUM_THREADS must be a positive integer, got {env!r}") from None
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:                               # not on Linux
        return max(1, min(8, os.cpu_count() or 1))


def run_blocks(fn, starts, threads: int | None = None) -> None:
    """Call ``fn(i0)`` for every block start, on a few threads when there are enough blocks
    (numpy ufuncs release the GIL; ``fn`` must write disjoint parts of its outputs)."""
    starts = list(starts)
    threads = min(num_threads() if threads is None else threads, len(starts))
    if threads <= 1 or len(starts) < 4:
        for i0 in starts:
            fn(i0)
        return
    with ThreadPoolExecutor(threads, initializer=_single_threaded_blas) as ex:
        for f in [ex.submit(fn, i0) for i0 in starts]:
            f.result()



@functools.cache
def _blas_local_setter():
    """numpy's OpenBLAS ``openblas_set_num_threads_local`` (per calling thread), or None."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            fn = getattr(ctypes.CDLL(path), "openblas_set_num_threads_local", None)
        except OSError:
            continue
        if fn is not None:
            fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
            return fn
    return None


def _single_threaded_blas() -> None:
    setter = _blas_local_setter()
    if setter is not None:
        setter(1)


@contextlib.contextmanager
def single_threaded_blas():
    """numpy's OpenBLAS on one thread in the calling thread for the duration (for many small
    matrix products, where waking BLAS threads costs more than it gains)."""
    setter = _blas_local_setter()
    previous = setter(1) if setter is not None else None
    try:
        yield
    finally:
        if setter is not None and previous is not None and previous > 0:
            setter(previous)
