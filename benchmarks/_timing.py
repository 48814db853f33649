"""The one wall-clock timer of the benchmark scripts (imported as ``from _timing import best``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best(fn: Callable, *args, repeat: int = 1, **kwargs) -> float:
    """The smallest wall time in seconds of ``repeat`` calls ``fn(*args, **kwargs)``."""
    out = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        out = min(out, time.perf_counter() - t0)
    return out
