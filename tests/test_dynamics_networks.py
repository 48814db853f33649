"""The catapult on finite networks trained by the Monte Carlo laboratory's GD (train_gd)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("perturb.montecarlo._train")

from perturb.dynamics.catapult import uv_iterate  # noqa: E402
from perturb.dynamics.gd_experiments import (  # noqa: E402
    default_data,
    network_catapult,
    network_lambda0,
    network_upper_threshold,
)
from perturb.errors import PerturbError  # noqa: E402
from perturb.montecarlo import train_gd  # noqa: E402
from perturb.network import Network  # noqa: E402


@pytest.mark.parametrize("R", [1.5, 3.0, 3.9])
def test_linear_two_layer_network_is_the_uv_model(R):
    # A two-layer linear network (C_b = λ_b = 0, NTK parameterisation) on one input with
    # |x|² = n_0 is f = v·(w x/√n_0)/√n: its GD is exactly the uv map derived by the engine
    # (the closed two-layer maps with x·x/n_0 = 1 sum to the uv λ-map).  train_gd's
    # trajectory of f and its final NTK must equal the iterated maps to float64 rounding.
    X, Y = default_data(1, 8, seed=0)
    n = 256
    net = Network("linear", widths=(n,), C_W=1.0, C_b=0.0)
    lam0 = network_lambda0(net, X, Y, seed=3)
    res = train_gd(net, X, Y, R / lam0, 40, 3)
    F, L, dead = uv_iterate(res.outputs[0, 0], lam0, R / lam0, n, 40)
    assert dead == 41
    scale = np.abs(res.outputs[:, 0]).max()
    np.testing.assert_allclose(F, res.outputs[:, 0], rtol=0, atol=1e-13 * scale)
    assert L[-1] == pytest.approx(res.ntk_final[0, 0], rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_network_upper_threshold_is_four(seed):
    # measured by bisection on real GD runs; the uv theory says exactly 4 (within the bisection
    # tolerance: just below 4 the catapult is slower than 300 steps, which reads as divergent)
    X, Y = default_data(1, 8, seed=0)
    net = Network("linear", widths=(256,), C_W=1.0, C_b=0.0)
    thr = network_upper_threshold(net, X, Y, seed, steps=300, lo=1.0, hi=8.0, tol=1e-3)
    assert abs(thr - 4.0) <= 2e-3


def test_relu_two_layer_phases():
    X, Y = default_data(4, 8, seed=0)
    net = Network("relu", widths=(512,), C_W=2.0, C_b=0.0)
    lam0 = network_lambda0(net, X, Y, seed=0)
    lazy = network_catapult(net, X, Y, 1.0, 200, 0, lambda0=lam0)
    cat = network_catapult(net, X, Y, 3.0, 200, 0, lambda0=lam0)
    div = network_catapult(net, X, Y, 12.0, 200, 0, lambda0=lam0)
    assert lazy.phase == "lazy" and abs(lazy.lambda_end / lam0 - 1) < 0.05
    assert cat.phase == "catapult" and cat.loss_max > 2 * cat.loss[0]
    assert cat.lambda_end * cat.eta < 2                     # λ fell below 2/η, as in the uv model
    assert cat.loss[-1] < 1e-10 * cat.loss[0]
    assert div.phase == "divergent"


def test_relu_upper_threshold_beyond_uv_value():
    # [LEW] report that ReLU networks train beyond ηλ_0 = 4 (the uv/linear value)
    X, Y = default_data(4, 8, seed=0)
    net = Network("relu", widths=(512,), C_W=2.0, C_b=0.0)
    thr = [network_upper_threshold(net, X, Y, s, steps=200, lo=1.0, hi=40.0, tol=0.05) for s in (0, 1)]
    assert all(t > 4.1 for t in thr)


@pytest.mark.slow
def test_deep_relu_threshold_exceeds_shallow():
    # [LEW] Fig. 1/§3: the maximal ηλ_0 grows with depth for ReLU nets (up to ~12)
    X, Y = default_data(4, 8, seed=0)
    shallow = network_upper_threshold(Network("relu", widths=(512,), C_W=2.0), X, Y, 0, steps=200, tol=0.1)
    deep = network_upper_threshold(Network("relu", widths=(512,) * 3, C_W=2.0), X, Y, 0, steps=200, tol=0.1)
    assert deep > shallow + 2


def test_network_bad_input():
    X, Y = default_data(1, 8, seed=0)
    net = Network("linear", widths=(8,))
    with pytest.raises(PerturbError, match="eta"):
        network_catapult(net, X, Y, 0.0, 10, 0)
    with pytest.raises(PerturbError, match="steps"):
        network_catapult(net, X, Y, 1.0, 0, 0)
