"""Activation registry and parser: names, parameters, expressions, derivatives, bad specs."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from perturb.activations import Z, activation_names, get_activation
from perturb.errors import PerturbError

NAMES = ["relu", "abs", "step", "erf", "tanh", "sigmoid", "softplus", "silu", "gelu", "sin", "cos", "linear"]


@pytest.mark.parametrize("name", NAMES)
def test_registered_numeric_matches_sympy(name):
    act = get_activation(name)
    zs = np.array([-2.3, -0.7, 0.4, 1.9])
    ref = np.array([float(act.expr.subs(Z, v)) for v in zs])
    assert np.allclose(act(zs), ref, rtol=1e-14, atol=1e-15)


def test_leaky_relu_parameter_and_derivative():
    act = get_activation("leaky_relu:0.1")
    assert float(act(-2.0)) == pytest.approx(-0.2)
    assert float(act.numpy(1)(-1.0)) == pytest.approx(0.1)
    assert act.kinks == (0.0,)


def test_expression_and_symbolic_derivative():
    mish = get_activation("z*tanh(log(1+exp(z)))")
    d = mish.derivative()
    h = 1e-6
    fd = (float(mish(0.3 + h)) - float(mish(0.3 - h))) / (2 * h)
    assert float(sp.N(d.subs(Z, 0.3))) == pytest.approx(fd, rel=1e-8)
    assert mish.is_smooth


def test_registered_names_inside_expressions():
    act = get_activation("relu(z) - 0.1*z")
    assert float(act(-1.0)) == pytest.approx(0.1)


@pytest.mark.parametrize("spec, msg", [
    ("foo", "unknown activation 'foo'; valid names: relu"),
    ("z+(", "cannot parse"),
    ("z*y", "free symbols"),
    ("3", "does not depend on z"),
    ("relu:2", "takes no parameter"),
    ("log(z)", "cannot be evaluated|not real|not finite"),
])
def test_bad_specs(spec, msg):
    with pytest.raises(PerturbError, match=msg):
        get_activation(spec)


def test_names_listed():
    names = activation_names()
    assert "leaky_relu:A" in names and "tanh" in names


def test_gaussian_growth_detected():
    assert get_activation("exp(z**2)").growth == pytest.approx(1.0, rel=1e-3)
    assert get_activation("tanh").growth == 0.0
