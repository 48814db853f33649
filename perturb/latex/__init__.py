"""Derivations as documents: the model (:mod:`~perturb.latex.document`) and its writers
(:mod:`~perturb.latex.writers`: standalone LaTeX for pdflatex, Markdown with math, JSON),
plus :func:`compile_pdf`, which runs ``pdflatex`` when it is installed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import PerturbError
from .document import Check, Derivation, Equation, Step
from .writers import equation_lines, latex_of, to_json, to_latex, to_markdown

__all__ = ["Check", "Derivation", "Equation", "Step", "to_latex", "to_markdown", "to_json",
           "latex_of", "equation_lines", "compile_pdf", "pdflatex_available"]


def pdflatex_available() -> bool:
    """True when a ``pdflatex`` executable is on the PATH."""
    return shutil.which("pdflatex") is not None


def compile_pdf(tex: str, out_pdf: str | Path | None = None, *, timeout: float = 120) -> bytes:
    """Compile a LaTeX source with ``pdflatex`` (non-interactive) and return the PDF bytes.

    Raises:
        PerturbError: pdflatex is missing, or the compilation failed (the message quotes the
            first LaTeX error line of the log).
    """
    exe = shutil.which("pdflatex")
    if exe is None:
        raise PerturbError("pdflatex is not installed (Debian: apt-get install texlive-latex-base "
                           "texlive-latex-recommended texlive-fonts-recommended)")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "doc.tex"
        src.write_text(tex, encoding="utf-8")
        proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp,
                              capture_output=True, text=True, timeout=timeout, check=False)
        pdf = Path(tmp) / "doc.pdf"
        if proc.returncode != 0 or not pdf.exists():
            log = (Path(tmp) / "doc.log").read_text(errors="replace") if (Path(tmp) / "doc.log").exists() else proc.stdout
            err = next((ln for ln in log.splitlines() if ln.startswith("!")), "unknown error")
            raise PerturbError(f"pdflatex failed: {err}")
        data = pdf.read_bytes()
    if out_pdf is not None:
        Path(out_pdf).write_bytes(data)
    return data
