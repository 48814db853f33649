"""Exact ReLU statistics vs Monte Carlo of actual random networks (perturb.montecarlo).

Every comparison goes through the laboratory's verdict (z-score with jackknife errors); the seeds
are fixed, and each check uses confidence 0.999 so that the handful of checks in this file has a
small family-wise false-alarm rate.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from perturb.montecarlo import (
    assert_agrees,
    log_moment,
    moment,
    sample_jacobian,
    sample_ntk,
    sample_outputs,
    verdict,
)
from perturb.network import Network
from perturb.relu_exact import (
    fourth_moment_nongaussian,
    ntk_mean,
    relu_jacobian_law,
    relu_output_law,
)

CONF = 0.999
X = np.array([1.0, 0.5, -0.3])


def _f(q: Fraction) -> float:
    return float(q)


@pytest.mark.parametrize("widths, cw", [((3, 4), 2.0), ((5, 2, 6), (1.5, 2.5, 2.0, 3.0))])
def test_output_moments_up_to_z6(widths, cw):
    net = Network("relu", widths=widths, C_W=cw, C_b=0.0)
    z = sample_outputs(net, X, 400_000, seed=11)[:, 0]
    law = relu_output_law(widths, X, C_W=cw)
    for M in (2, 4, 6):
        assert_agrees(_f(law.moment(M)), moment(z, M), confidence=CONF, label=f"E z^{M} {widths}")


def test_p_zero_tiny_widths():
    widths = (1, 2)
    net = Network("relu", widths=widths, C_W=2.0, C_b=0.0)
    z = sample_outputs(net, X, 200_000, seed=12)[:, 0]
    est = moment((z == 0).astype(float), 1)
    assert_agrees(_f(relu_output_law(widths, X).p_zero()), est, confidence=CONF, label="P[z=0]")


def test_log_moments():
    """log|z| = ½(log Σ + log ξ²) given z ≠ 0: E log ξ² = ψ(½) + log 2, Var = π²/2."""
    widths = (4, 3, 5)
    net = Network("relu", widths=widths, C_W=2.0, C_b=0.0)
    z = sample_outputs(net, X, 300_000, seed=13)[:, 0]
    m, v = relu_output_law(widths, X).log_moments(dps=20)
    mean = (float(m) + float(mpmath.digamma(0.5)) + math.log(2)) / 2
    var = (float(v) + math.pi ** 2 / 2) / 4
    assert_agrees(mean, log_moment(z, 1, zeros="drop"), confidence=CONF, label="E log|z|")
    assert_agrees(var + mean ** 2, log_moment(z, 2, zeros="drop"), confidence=CONF, label="E log²|z|")


def test_jacobian_moments():
    widths = (3, 4)
    net = Network("relu", widths=widths, C_W=2.0, C_b=0.0)
    J = sample_jacobian(net, X, 300_000, seed=14)
    law = relu_jacobian_law(widths, n0=3)
    for M in (2, 4):
        for p in range(3):
            assert_agrees(_f(law.moment(M)), moment(J[:, p], M), confidence=CONF, label=f"E J_{p}^{M}")
    u = np.array([0.6, -0.8, 0.0])               # ‖J u‖² for one output = (J·u)²
    lu = relu_jacobian_law(widths, n0=3, u=u)
    assert_agrees(_f(lu.moment(4)), moment(J @ u, 4), confidence=CONF, label="E (J u)^4")


@pytest.mark.parametrize("law_name", ["uniform", "rademacher"])
def test_nongaussian_fourth_moment(law_name):
    widths = (3, 4)
    net = Network("relu", widths=widths, C_W=2.0, C_b=0.0)
    z = sample_outputs(net, X, 400_000, seed=15, weight_law=law_name)[:, 0]
    pred = fourth_moment_nongaussian(widths, X, mu4=law_name)
    assert_agrees(_f(pred), moment(z, 4), confidence=CONF, label=f"E z^4 {law_name}")
    # the Gaussian value is rejected for Rademacher weights (the μ4 dependence is visible)
    if law_name == "rademacher":
        gauss = relu_output_law(widths, X).moment(4)
        assert not verdict(_f(gauss), moment(z, 4), confidence=CONF).passed


def test_ntk_mean():
    widths = (3, 5)
    net = Network("relu", widths=widths, C_W=2.0, C_b=0.0, lambda_W=1.0, lambda_b=0.5)
    th = sample_ntk(net, X, 100_000, seed=16)[:, 0, 0]
    pred = ntk_mean(widths, X, C_W=2, lambda_W=1, lambda_b=0.5)
    assert_agrees(_f(pred), moment(th, 1), confidence=CONF, label="E Θ")


@pytest.mark.slow
def test_ntk_second_moment_grows_exponentially():
    """E Θ² / (E Θ)² − 1 at fixed n grows faster than linearly in L (Monte Carlo only: the exact
    second moment is not derived)."""
    n = 6
    ratios = []
    for L in (2, 4, 8, 12):
        net = Network("relu", widths=(n,) * L, C_W=2.0, C_b=0.0, lambda_W=2.0, lambda_b=0.0)
        th = sample_ntk(net, X, 60_000, seed=17 + L)[:, 0, 0]
        ratios.append(float(np.mean(th ** 2) / np.mean(th) ** 2 - 1))
    growth = np.diff(np.log(ratios)) / np.diff([2, 4, 8, 12])
    assert all(r2 > r1 for r1, r2 in zip(ratios, ratios[1:], strict=False)), ratios
    assert ratios[-1] / ratios[0] > 6, ratios          # linear growth would give 12/2 = 6
    assert np.all(np.isfinite(growth))


def test_tour_section_writes_figure_and_json(tmp_path):
    """The tour section (quick mode) writes a non-empty PNG and the JSON with exact values."""
    import json

    pytest.importorskip("matplotlib")
    from perturb.tour import TourContext
    from perturb.tour import s40_relu_exact as sec

    ctx = TourContext(out=tmp_path, quick=True)
    lines = sec.run(ctx)
    png = tmp_path / "relu_exact_density.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    data = json.loads((tmp_path / "relu_exact.json").read_text())
    law = relu_output_law((8, 8, 8), (1.0, 0.5, -0.3))
    assert Fraction(data["example"]["moments_exact"]["E z^4"]) == law.moment(4)
    assert any("figure" in line for line in lines)
