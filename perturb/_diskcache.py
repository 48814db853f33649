"""A persistent cache for symbolic derivations that are pure functions of perturb's own source.

Deriving a layer map (e.g. the NTK statistics, ~6 s; two inputs, ~10 s) is deterministic: its
result depends only on the arguments, perturb's source code and the SymPy version.  Every
process used to pay that cost again (each ``perturb ntk-stats`` call).  :func:`disk_cached`
stores the pickled result under a key made of the function's name, its arguments and a digest
of *every* ``.py`` file of the package plus the Python and SymPy versions — so any edit of
perturb invalidates every entry, and a cached result is always what the current code derives.

Location: ``$PERTURB_CACHE_DIR``, else ``$XDG_CACHE_HOME/perturb``, else ``~/.cache/perturb``.
Set ``PERTURB_CACHE=off`` to disable it.  Any failure to read or write (permissions, a
truncated file, an unpicklable result) falls back to computing: the cache never changes a result.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import sys
import tempfile
from pathlib import Path

__all__ = ["disk_cached", "disk_memo", "cache_dir", "source_digest"]

_PACKAGE = Path(__file__).resolve().parent


@functools.cache
def source_digest() -> str:
    """SHA-256 of perturb's source files (sorted by path) and the Python and SymPy versions."""
    import sympy

    h = hashlib.sha256(f"{sys.version_info[:3]}|sympy {sympy.__version__}".encode())
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(_PACKAGE)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_dir() -> Path | None:
    """The cache folder, or None when disabled (``PERTURB_CACHE=off``)."""
    if os.environ.get("PERTURB_CACHE", "").lower() in {"0", "off", "no", "false"}:
        return None
    root = os.environ.get("PERTURB_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "perturb"


def _path(name: str, args: tuple) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    key = hashlib.sha256(f"{source_digest()}|{name}|{args!r}".encode()).hexdigest()[:32]
    return folder / f"{name}-{key}.pickle"


def disk_cached(fn):
    """Cache ``fn(*args)`` (positional, hashable, repr-stable arguments) on disk across processes.

    >>> @disk_cached
    ... def square(x):
    ...     return x * x
    >>> square(3)
    9
    """
    name = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def wrapper(*args):
        return disk_memo(name, args, lambda: fn(*args))

    wrapper.uncached = fn
    return wrapper


def disk_memo(name: str, key: tuple, compute):
    """``compute()``, cached on disk under ``name`` and ``key`` (repr-stable) like
    :func:`disk_cached` — for results that are pure functions of ``key`` and perturb's source
    but are computed by a method rather than a module-level function.

    >>> disk_memo("doc.example", (2, 3), lambda: 2 ** 3)
    8
    """
    try:
        path = _path(name, key)
    except OSError:  # pragma: no cover - unreadable package files
        path = None
    if path is not None and path.is_file():
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except Exception:  # noqa: BLE001 - a damaged entry is recomputed and overwritten
            pass
    value = compute()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)          # atomic: readers never see a partial file
        except Exception:  # noqa: BLE001 - caching is best effort
            try:
                os.unlink(tmp)
            except Exception:  # noqa: BLE001
                pass
    return value
