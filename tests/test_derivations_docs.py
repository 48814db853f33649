"""The documentation site builds (strict) when MkDocs is installed; the CLI writes documents."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from perturb.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
                    reason="MkDocs not installed (pip install -e '.[docs]')")
def test_site_builds_strict(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "derivations" / "four_point_vertex" / "index.html").exists()


def test_every_derivation_has_a_page():
    import derivations

    for name in derivations.REGISTRY:
        assert (ROOT / "docs" / "derivations" / f"{name}.md").exists(), f"run python docs/gen_pages.py ({name})"


def test_derive_cli(tmp_path, capsys):
    out = tmp_path / "c.tex"
    assert main(["derive", "catapult", "--out", str(out)]) == 0
    assert out.read_text().startswith("\\documentclass")
    assert main(["derive", "--list"]) == 0
    assert "four_point_vertex" in capsys.readouterr().out
    assert main(["derive", "nope"]) == 2
    assert main(["derive", "catapult", "--json", "--no-checks"]) == 0
    assert '"name": "catapult"' in capsys.readouterr().out


def test_tour_section_quick(tmp_path):
    from perturb.tour import TourContext
    from perturb.tour import s80_derivations as s

    ctx = TourContext(out=tmp_path, quick=True)
    lines = s.run(ctx)
    assert any("not equal" in ln for ln in lines) and (tmp_path / "derivation_catapult.tex").exists()
