"""Every registered derivation builds from the engine, its embedded checks pass, and it compiles."""

from __future__ import annotations

import pytest

import derivations
from perturb.errors import PerturbError
from perturb.latex import compile_pdf, pdflatex_available, to_json, to_latex, to_markdown

#: derivations whose embedded checks take long under load (run with -m slow)
SLOW = {"ntk_variance", "order_k", "ntk_order2"}
FAST = [n for n in derivations.REGISTRY if n not in SLOW]


@pytest.fixture(scope="module")
def built():
    return {}


def _build(cache, name):
    if name not in cache:
        cache[name] = derivations.build(name)
    return cache[name]


def _check(doc):
    doc.assert_checks()
    assert doc.checks, f"{doc.name} has no embedded checks"
    assert doc.steps and doc.result
    to_markdown(doc), to_json(doc)
    if pdflatex_available():
        assert compile_pdf(to_latex(doc))[:4] == b"%PDF"


@pytest.mark.parametrize("name", FAST)
def test_builds_checks_pass_and_compiles(name, built):
    _check(_build(built, name))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW & set(derivations.REGISTRY)))
def test_slow_derivations(name, built):
    _check(_build(built, name))


def test_order_k_without_checks_compiles():
    doc = derivations.build("order_k", order=1, checks=False)
    assert doc.parameters["order"] == 1
    if pdflatex_available():
        compile_pdf(to_latex(doc))


def test_results_are_the_engines_expressions():
    """The printed V recursion is the engine's layer map, not a typed string."""
    from derivations._order1 import recursion

    doc = derivations.build("V", checks=False)
    assert doc.result[0].rhs.expand() == recursion("V").expand() or \
        (doc.result[0].rhs - recursion("V")).expand() == 0


def test_concrete_activation_substitutes_closed_forms():
    doc = derivations.build("nngp", activation="relu", checks=False)
    assert "acos" in str(doc.result[0].rhs)


@pytest.mark.parametrize("bad, kw", [("nope", {}), ("catapult", {"activation": "tanh"}), ("V", {"order": 3})])
def test_bad_input(bad, kw):
    with pytest.raises(PerturbError):
        derivations.build(bad, **kw)


def test_skip_reason_is_explicit():
    if not pdflatex_available():
        pytest.skip("pdflatex is not installed: LaTeX compilation not tested here (CI installs TeX)")
