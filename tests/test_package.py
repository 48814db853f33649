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
