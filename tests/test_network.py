"""Network spec: defaults (NTK parameterisation), per-layer broadcasting, validation."""

from __future__ import annotations

import pytest

from perturb.errors import PerturbError
from perturb.network import Network


def test_defaults_ntk_parameterisation():
    net = Network("relu", widths=(8, 8), C_W=2.0, C_b=0.5)
    assert net.depth == 2 and net.lambda_W == (2.0,) * 3 and net.lambda_b == (0.5,) * 3


def test_per_layer_values_and_replace():
    net = Network("tanh", depth=2, C_W=[1.0, 1.5, 2.0], C_b=0.1, lambda_W=0.3)
    assert net.C_W == (1.0, 1.5, 2.0) and net.lambda_W == (0.3,) * 3
    assert net.is_infinite
    assert net.replace(widths=(4, 4)).widths == (4, 4)


@pytest.mark.parametrize("kwargs, msg", [
    (dict(widths=(8, 0)), "positive integers"),
    (dict(depth=0), "positive integer"),
    (dict(depth=2, C_W=-1.0), "C_W must be > 0"),
    (dict(depth=2, C_b=-0.1), "C_b must be >= 0"),
    (dict(depth=2, C_W=[1.0, 2.0]), "one per layer"),
    (dict(), "give the hidden widths"),
    (dict(depth=2, C_W=float("nan")), "finite"),
])
def test_bad_networks(kwargs, msg):
    with pytest.raises(PerturbError, match=msg):
        Network("relu", **kwargs)
