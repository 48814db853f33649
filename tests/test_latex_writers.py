"""The document model and writers: SymPy-printed results, escaping, splitting, and pdflatex."""

from __future__ import annotations

import json

import pytest
import sympy as sp

from perturb.errors import PerturbError
from perturb.latex import (
    Check,
    Derivation,
    Equation,
    Step,
    compile_pdf,
    pdflatex_available,
    to_json,
    to_latex,
    to_markdown,
)
from perturb.latex.writers import equation_lines

K = sp.Symbol("K", positive=True)


def _doc(passed=True):
    long = sum(sp.Symbol(f"a_{i}") * K**i for i in range(40))
    return Derivation(name="demo", title="Demo 50% & co", statement="Uses C_W and x^2 < y.",
                      steps=[Step("One", "rule_with_underscore", "", [Equation("f", long)])],
                      result=[Equation("g", K**2 / 2)], checks=[Check("c^2", "1", "1", passed, "d")])


def test_rhs_must_be_sympy():
    with pytest.raises(PerturbError):
        Equation("x", "K^2")


def test_latex_contains_sympy_printing_and_escapes():
    tex = to_latex(_doc())
    assert sp.latex(K**2 / 2) in tex
    assert r"50\% \& co" in tex and r"C\_W" in tex and r"x\^{}2" in tex


def test_long_sums_are_split_and_rejoin_to_the_same_terms():
    eq = Equation("f", sum(sp.Symbol(f"a_{i}") * K**i for i in range(40)))
    lines = equation_lines(eq)
    assert len(lines) > 2
    assert all(r"\quad" in ln for ln in lines[1:])


def test_markdown_and_json():
    md = to_markdown(_doc(False))
    assert "$$" in md and "**FAILED**" in md
    data = json.loads(to_json(_doc()))
    assert data["result"][0]["rhs"] == "K**2/2" and data["checks_passed"] is True


def test_failed_checks_raise():
    with pytest.raises(AssertionError, match="c\\^2"):
        _doc(False).assert_checks()


@pytest.mark.skipif(not pdflatex_available(), reason="pdflatex is not installed (CI installs it via .ci/install-tex)")
def test_demo_compiles():
    assert compile_pdf(to_latex(_doc()))[:4] == b"%PDF"


@pytest.mark.skipif(not pdflatex_available(), reason="pdflatex is not installed")
def test_compile_error_is_reported():
    with pytest.raises(PerturbError, match="pdflatex failed"):
        compile_pdf("\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}")
