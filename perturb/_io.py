"""Output files: check before the work, write atomically.

Every file a command writes goes through here, so that a bad path is a one-line error *before*
minutes of computation (:func:`check_writable_file`, :func:`check_writable_dir`) and an
interrupted or failed write never leaves a partial file (:func:`atomic_write`: a temporary file
in the same folder, then ``os.replace``, which is atomic on POSIX and Windows).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(check_writable_file(d / "out.txt"), "hello\\n").read_text()
'hello\\n'
>>> check_writable_file(d / "missing" / "out.txt")
Traceback (most recent call last):
    ...
perturb.errors.PerturbError: cannot write '...out.txt': the folder '...missing' does not exist
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import PerturbError

__all__ = ["check_writable_file", "check_writable_dir", "atomic_write", "atomic_write_text"]


def check_writable_file(path: str | os.PathLike, what: str = "") -> Path:
    """Refuse (PerturbError) unless ``path`` can be created or replaced as a file; returns it as a Path.

    ``what`` names the option in the message (``"--out"``).
    """
    p = Path(path)
    label = f"{what} " if what else ""
    if str(path) == "" or p.name in ("", ".", ".."):
        raise PerturbError(f"{label}needs a file name, got {str(path)!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise PerturbError(f"cannot write {label}'{p}': it is a folder, not a file")
    if not parent.exists():
        raise PerturbError(f"cannot write {label}'{p}': the folder '{parent}' does not exist")
    if not parent.is_dir():
        raise PerturbError(f"cannot write {label}'{p}': '{parent}' is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PerturbError(f"cannot write {label}'{p}': the folder '{parent}' is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise PerturbError(f"cannot write {label}'{p}': the file exists and is not writable")
    return p


def check_writable_dir(path: str | os.PathLike, what: str = "") -> Path:
    """Refuse unless ``path`` is a writable folder or can be created (its nearest existing ancestor
    is a writable folder); returns it as a Path.  Nothing is created here."""
    p = Path(path)
    label = f"{what} " if what else ""
    if str(path) == "":
        raise PerturbError(f"{label}needs a folder name, got ''")
    if p.exists():
        if not p.is_dir():
            raise PerturbError(f"cannot write into {label}'{p}': it is a file, not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise PerturbError(f"cannot write into {label}'{p}': the folder is not writable")
        return p
    anc = p.absolute().parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise PerturbError(f"cannot create {label}'{p}': '{anc}' is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise PerturbError(f"cannot create {label}'{p}': the folder '{anc}' is not writable")
    return p


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path`` (same suffix, so that e.g. matplotlib
    infers the format), then rename it over ``path``; on any failure the temporary file is removed
    and ``path`` is left as it was."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{p.name}.", suffix=f".part{p.suffix}")
    except OSError as exc:
        raise PerturbError(f"cannot write '{p}': {exc.strerror}") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, (p.stat().st_mode & 0o777) if p.exists() else 0o644)
        os.replace(tmp, p)
    except OSError as exc:
        _remove(tmp)
        raise PerturbError(f"cannot write '{p}': {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise
    return p


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding=encoding))


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass
