"""``--out FILE.npz`` / ``--out FILE.npy``: Gram matrices as binary numpy files.

For large N the matrices are written in numpy's own format instead of printed: exact float64
values, no text conversion, one file read back with ``numpy.load``.

* ``FILE.npz`` — a zip of named arrays: ``"nngp"`` (N, N) and ``"ntk"`` (N, N); ``"ntk"`` is
  absent when the NTK is undefined (an activation whose derivative is a Dirac delta, e.g.
  ``step``).
* ``FILE.npy`` — one array, so the two matrices are stacked: shape (2, N, N), ``[0]`` the NNGP
  and ``[1]`` the NTK.  Refused, before any work, when the NTK is undefined (nothing to stack:
  use ``.npz``).

The path is checked (suffix, folder exists and is writable) before the computation, and the file
is written atomically (a temporary file in the same folder renamed over the target), so a failed
run never leaves a partial file.  ``--dps`` results are mpmath numbers and are refused here
(write them with ``--json``).

>>> import numpy as np, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> p = write_gram(check_gram_out(d / "k.npz"), np.eye(2), 2 * np.eye(2))
>>> sorted(np.load(p).files)
['nngp', 'ntk']
>>> np.load(write_gram(check_gram_out(d / "k.npy"), np.eye(2), 2 * np.eye(2))).shape
(2, 2, 2)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._io import atomic_write, check_writable_file
from ..errors import PerturbError

__all__ = ["check_gram_out", "write_gram", "write_gram_and_report"]

SUFFIXES = (".npz", ".npy")


def check_gram_out(path: str | os.PathLike, *, dps: int | None = None, ntk_defined: bool = True) -> Path:
    """Refuse (PerturbError) an ``--out`` path that cannot hold the result; returns it as a Path."""
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES:
        raise PerturbError(f"--out '{p}': the file name must end in .npz (arrays 'nngp' and 'ntk') or .npy "
                           "(the stacked array [nngp, ntk] of shape (2, N, N))")
    if dps:
        raise PerturbError("--out writes float64 arrays; --dps results are mpmath numbers: use --json instead")
    if p.suffix.lower() == ".npy" and not ntk_defined:
        raise PerturbError(f"--out '{p}': the NTK is undefined for this activation (its derivative is a Dirac "
                           "delta), so there is no [nngp, ntk] stack for a .npy file; use a .npz file (array 'nngp')")
    return check_writable_file(p, "--out")


def write_gram(path: Path, nngp: np.ndarray, ntk: np.ndarray | None) -> Path:
    """Write the Gram matrices to ``path`` (.npz or .npy, see the module docstring), atomically."""
    nngp = np.asarray(nngp, dtype=float)
    arrays = {"nngp": nngp} if ntk is None else {"nngp": nngp, "ntk": np.asarray(ntk, dtype=float)}
    if path.suffix.lower() == ".npy":
        if ntk is None:
            raise PerturbError(f"--out '{path}': the NTK is undefined, nothing to stack; use a .npz file")

        def write(tmp):                               # stacked on disk, no (2, N, N) copy in memory
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=float, shape=(2,) + nngp.shape)
            out[0], out[1] = arrays["nngp"], arrays["ntk"]
            out.flush()
            del out
    else:
        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    return atomic_write(path, write)


def write_gram_and_report(path: Path, nngp: np.ndarray, ntk: np.ndarray | None, *, json_mode: bool) -> Path:
    """:func:`write_gram`, then say what was written (on stderr when stdout carries JSON)."""
    import sys

    write_gram(path, nngp, ntk)
    N = np.shape(nngp)[0]
    print(f"perturb: wrote {'nngp, ntk' if ntk is not None else 'nngp'} ({N}×{N}) to {path}",
          file=sys.stderr if json_mode else sys.stdout)
    return path
