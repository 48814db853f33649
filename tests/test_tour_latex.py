"""Every .tex file the tour writes is a standalone document that pdflatex compiles.

The tour used to write LaTeX *fragments* (an ``align`` environment, or bare ``f' = ...`` lines)
that do not compile on their own; they are now wrapped by
:func:`perturb.latex.standalone.standalone_document`.  The derivation documents of tour section
s80 are :func:`perturb.latex.to_latex` output, compiled in tests/test_derivations.py.
"""

from __future__ import annotations

import io

import pytest

from perturb.errors import PerturbError
from perturb.latex import compile_pdf, pdflatex_available
from perturb.latex.standalone import standalone_document

needs_pdflatex = pytest.mark.skipif(not pdflatex_available(), reason="pdflatex not installed")


def _fragments():
    from perturb.dynamics.hierarchy import uv_maps
    from perturb.finite import FiniteWidth
    from perturb.infinite import symbolic_recursion

    # the same objects the tour sections s10, s50 and s60 render
    return {
        "kernels_relu": symbolic_recursion("relu").latex(),
        "kernels_generic": symbolic_recursion("generic").latex(),
        "finite_layer_map_order1": FiniteWidth("generic", depth=3, order=1).latex(),
        "catapult_uv_maps": uv_maps().latex(),
    }


@needs_pdflatex
def test_the_fragments_compile_once_wrapped():
    bare = _fragments()
    with pytest.raises(PerturbError, match="pdflatex failed"):   # a bare fragment is not a document
        compile_pdf(bare["catapult_uv_maps"])
    for name, frag in bare.items():
        assert compile_pdf(standalone_document(frag, title=name))[:4] == b"%PDF", name


@needs_pdflatex
def test_tour_writes_only_compilable_tex(tmp_path):
    from perturb.tour import run_tour

    ctx = run_tour(tmp_path, quick=True, only=["s10"], stream=io.StringIO())
    tex = [f for f in ctx.files if f.endswith(".tex")]
    assert tex
    for name in tex:
        assert compile_pdf((tmp_path / name).read_text(encoding="utf-8"))[:4] == b"%PDF", name
