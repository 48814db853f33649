"""Standalone LaTeX documents from fragments (so every ``.tex`` file perturb writes compiles).

Some objects render themselves as LaTeX *fragments*: a display environment
(``symbolic_recursion(...).latex()``, ``FiniteWidth.latex()``) or bare equation lines
``lhs = rhs`` (``ClosedMaps.latex()``).  A fragment written to a file on its own does not
compile; :func:`standalone_document` wraps it in the same ``article``/``amsmath`` preamble as the
derivation documents (:func:`perturb.latex.to_latex`), turning bare lines into an ``align*``.

>>> tex = standalone_document("f' = f - \\\\eta r\\n\\\\lambda' = \\\\lambda", title="uv maps")
>>> tex.startswith("\\\\documentclass") and "\\\\begin{align*}" in tex and tex.rstrip().endswith("\\\\end{document}")
True
>>> print(equation_block("a = b\\nc = d"))
\\begin{align*}
a &= b \\\\
c &= d
\\end{align*}
"""

from __future__ import annotations

import re

__all__ = ["standalone_document", "equation_block"]

_DISPLAY = re.compile(r"\\begin\{(align|equation|gather|multline|eqnarray)\*?\}|\\\[|\$\$")


def equation_block(lines: str) -> str:
    """Bare equation lines ``lhs = rhs`` (one per line) as an ``align*`` aligned at the first ``=``."""
    rows = []
    for ln in (s.strip() for s in lines.splitlines()):
        if not ln or ln.startswith("%"):
            continue
        rows.append(ln.replace(" = ", " &= ", 1) if "&" not in ln else ln)
    return "\\begin{align*}\n" + " \\\\\n".join(rows) + "\n\\end{align*}"


def _text(s: str) -> str:
    return re.sub(r"([#$%&_{}])", r"\\\1", s)


def standalone_document(fragment: str, *, title: str, note: str = "") -> str:
    """A compilable document around a LaTeX fragment (display math, or bare ``lhs = rhs`` lines).

    ``title`` and ``note`` are plain text (escaped); the fragment is inserted as is when it
    already has a display environment, else as an :func:`equation_block`.
    """
    body = fragment.strip()
    if not _DISPLAY.search(body):
        body = equation_block(body)
    parts = [
        r"\documentclass[11pt]{article}",
        r"\usepackage{amsmath,amssymb}",
        r"\allowdisplaybreaks",
        r"\setlength{\textwidth}{6.5in}\setlength{\oddsidemargin}{0in}\setlength{\evensidemargin}{0in}",
        r"\begin{document}",
        rf"\section*{{{_text(title)}}}",
    ]
    if note:
        parts.append(_text(note))
    parts += [body, r"\end{document}", ""]
    return "\n".join(parts)
