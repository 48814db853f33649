"""The public API: every re-exported name resolves, and the package imports light."""

import subprocess
import sys

import perturb


def test_every_public_name_resolves():
    for name in perturb.__all__:
        assert getattr(perturb, name) is not None, name


def test_import_does_not_load_the_engine():
    code = "import sys, perturb; print('perturb.finite' in sys.modules, 'perturb.montecarlo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_tour_only_that_matches_nothing_is_an_error(tmp_path, capsys):
    from perturb.cli import main

    assert main(["tour", "--out", str(tmp_path), "--only", "no_such_section"]) == 2
    err = capsys.readouterr().err
    assert "no_such_section" in err and "s10_kernels" in err      # names the bad value and the valid ones
    assert not list(tmp_path.iterdir())                           # nothing run, nothing written
