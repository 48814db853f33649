"""Kink crossings of piecewise-linear networks in one GD step (perturb.dynamics.kinks).

Independent methods: the Gaussian reductions against direct numerical integration (scipy), the
one-hidden-layer drift against the direct count of tests/test_dntk_mc.py, and the total against
one step of gradient descent on real networks (train_gd), where the a.e. order-1/n prediction
alone is rejected.
"""

import math

import numpy as np
import pytest
from scipy import integrate

from perturb.dynamics.kinks import _abs_dev, _abs_moments, kink_drift, kink_slopes
from perturb.dynamics.ntk_move import measure_gd_step, ntk_move
from perturb.errors import PerturbError
from perturb.montecarlo import assert_agrees, verdict
from perturb.network import Network


@pytest.mark.parametrize("alpha, s_b2, s_c2", [(1.3, 0.4, 0.9), (0.0, 0.7, 0.2), (-2.0, 0.3, 0.0), (0.5, 1.0, 1.0)])
def test_gaussian_moments_against_quadrature(alpha, s_b2, s_c2):
    sb, sc = math.sqrt(s_b2), math.sqrt(s_c2)
    if sc == 0:
        def e(f):
            return integrate.quad(lambda b: f(b, 0.0) * math.exp(-b * b / (2 * s_b2)) / math.sqrt(2 * math.pi * s_b2),
                                  -12 * sb, 12 * sb, points=[0.0], limit=200)[0]
    else:
        def e(f):
            dens = 1 / (2 * math.pi * sb * sc)
            return integrate.dblquad(lambda c, b: f(b, c) * dens * math.exp(-b * b / (2 * s_b2) - c * c / (2 * s_c2)),
                                     -10 * sb, 10 * sb, -10 * sc, 10 * sc, epsabs=1e-11, epsrel=1e-9)[0]
    bb, bc = _abs_moments(alpha, s_b2, s_c2)
    assert bb == pytest.approx(e(lambda b, c: b * b * abs(alpha * b + c)), rel=1e-6)
    assert bc == pytest.approx(e(lambda b, c: b * c * abs(alpha * b + c)), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("K, y", [(1.0, 0.0), (2.5, 0.7), (0.3, -1.2)])
def test_abs_deviation_against_quadrature(K, y):
    want = integrate.quad(lambda z: abs(z - y) * math.exp(-z * z / (2 * K)) / math.sqrt(2 * math.pi * K),
                          -40, 40, points=[y], limit=200)[0]
    assert _abs_dev(K, y) == pytest.approx(want, rel=1e-10)


def test_one_hidden_layer_is_the_direct_count():
    # only active neurons cross: −n ρ_{K1}(0) H1² E|v|³ E|z| / 2 (tests/test_dntk_mc.py)
    n, C_W = 256, 2.0
    K1 = H1 = C_W
    K2 = C_W * K1 / 2
    abs_v3 = 2 * math.sqrt(2 / math.pi) * (C_W / n) ** 1.5
    count = -n * H1**2 / math.sqrt(2 * math.pi * K1) * abs_v3 * math.sqrt(2 * K2 / math.pi) / 2
    assert kink_drift("relu", [n], [1.0], C_W=C_W).total == pytest.approx(count, rel=1e-12)


def test_scaling_and_structure():
    a = kink_drift("relu", [100, 100, 100], [1.0], C_W=2.0)
    b = kink_drift("relu", [400, 400, 400], [1.0], C_W=2.0)
    assert a.per_sqrt_n == pytest.approx(b.per_sqrt_n, rel=1e-12)      # exactly O(1/√n)
    assert all(v < 0 for v in a.per_layer) and abs(a.per_layer[2]) > abs(a.per_layer[1]) > abs(a.per_layer[0])
    assert kink_slopes("leaky_relu:0.1") == (0.1, 1.0) and kink_slopes("abs") == (-1.0, 1.0)
    # the target enters only through E|z − y|
    c = kink_drift("relu", [100, 100, 100], [1.0], C_W=2.0, y=0.8)
    assert c.total / a.total == pytest.approx(_abs_dev(2.0, 0.8) / _abs_dev(2.0, 0.0), rel=1e-12)


def test_two_hidden_layers_against_gradient_descent():
    # Richardson slope of one train_gd step, 8000 ReLU networks, n = 128, L = 2, C_W = 2, y = 0
    n, L = 128, 2
    m = measure_gd_step(Network("relu", widths=(n,) * L, C_W=2.0), [1.0], 0.0, 0.01, 8000, seed=5)
    smooth = ntk_move("relu", [n] * L, [1.0], eta=1.0, C_W=2.0).delta_ntk_step      # −(P + 2Q)/n
    kink = kink_drift("relu", [n] * L, [1.0], C_W=2.0).total
    assert_agrees(smooth + kink, m.slope, label="ReLU L=2: dE[ΔΘ]/dη = −(P+2Q)/n + kink drift")
    assert not verdict(smooth, m.slope).passed


@pytest.mark.slow
@pytest.mark.parametrize("act, C_W, n, L, y", [
    ("leaky_relu:0.2", 2.0, 128, 2, 0.5),
    ("abs", 1.0, 128, 2, 0.0),
    ("relu", 2.0, 256, 3, 0.0),
])
def test_more_kinked_networks_against_gradient_descent(act, C_W, n, L, y):
    m = measure_gd_step(Network(act, widths=(n,) * L, C_W=C_W), [1.0], y, 0.01, 16_000, seed=5)
    smooth = ntk_move(act, [n] * L, [1.0], eta=1.0, y=y, C_W=C_W).delta_ntk_step
    kink = kink_drift(act, [n] * L, [1.0], y=y, C_W=C_W).total
    assert_agrees(smooth + kink, m.slope, label=f"{act} n={n} L={L}: smooth + kink drift")


def test_bad_input():
    with pytest.raises(PerturbError, match="piecewise-linear"):
        kink_drift("tanh", [10], [1.0])
    with pytest.raises(PerturbError, match="piecewise-linear"):
        kink_drift("step", [10], [1.0])
    with pytest.raises(PerturbError, match="y must be"):
        kink_drift("relu", [10], [1.0], y=float("nan"))
    with pytest.raises(PerturbError):
        kink_drift("relu", [0], [1.0])
    assert np.isfinite(kink_drift("relu", [10], [1.0], C_b=0.3).total)
