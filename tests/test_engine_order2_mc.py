"""Monte Carlo of real networks against the derived order-1/n² NTK variance (slow).

For tanh (issue 13's C_W = 1.2, C_b = 0.1), GELU and ReLU at L = 2 and n = 8, 12, 16 (one input,
|x|²/n_0 = 1), 200 000 networks per width from the laboratory's ``sample_ntk`` (fixed seeds):

1. the order-2 prediction agrees with Var Θ at all three widths (99 %, Bonferroni) while the
   order-1 prediction is rejected: Σ z² over the widths is far larger for order 1;
2. the width extrapolation of n²·(MC − order 1) to n → ∞ (weighted fit c_2 + c_3/n,
   perturb.montecarlo.extrapolate_in_width) agrees with the derived order-2 coefficient n²·v_2
   (equal widths: r = 1, so v_2·n² does not depend on n).
"""

from __future__ import annotations

import numpy as np
import pytest

from perturb.engine.fold import ntk_series
from perturb.montecarlo import (
    Estimate,
    assert_agrees,
    cumulant,
    extrapolate_in_width,
    sample_ntk,
    verdict,
)
from perturb.network import Network

NS = (8, 12, 16)
L = 2
X = [1.0]
N = 200_000


@pytest.fixture(scope="module")
def measured():
    out = {}
    for k, (act, cw, cb) in enumerate((("tanh", 1.2, 0.1), ("gelu", 1.5, 0.05), ("relu", 2.0, 0.0))):
        rows = []
        for i, n in enumerate(NS):
            th = sample_ntk(Network(act, widths=(n,) * L, C_W=cw, C_b=cb), X, N, seed=9100 + 10 * k + i)[:, 0, 0]
            s = ntk_series(act, [n] * L, X, C_W=cw, C_b=cb, order=2)
            rows.append((n, cumulant(th, 2), [float(v) for v in s["var"]]))
        out[act] = rows
    return out


@pytest.mark.slow
@pytest.mark.parametrize("act", ["tanh", "gelu", "relu"])
def test_order2_agrees_and_order1_does_not(measured, act):
    rows = measured[act]
    est = Estimate(np.array([e.value for _, e, _ in rows]), np.array([e.stderr for _, e, _ in rows]), N)
    o1 = np.array([v[0] + v[1] for _, _, v in rows])
    o2 = np.array([sum(v) for _, _, v in rows])
    assert_agrees(o2, est, label=f"{act}: Var Θ at order 2, n = {NS}")
    z1, z2 = verdict(o1, est).z, verdict(o2, est).z
    assert np.sum(z1**2) > np.sum(z2**2) + 30, (z1, z2)
    assert not verdict(o1, est).passed


@pytest.mark.slow
@pytest.mark.parametrize("act", ["tanh", "gelu", "relu"])
def test_n2_times_order1_gap_extrapolates_to_the_order2_coefficient(measured, act):
    rows = measured[act]
    gaps = [Estimate(n**2 * (e.value - (v[0] + v[1])), n**2 * e.stderr, N) for n, e, v in rows]
    coeff = rows[0][2][2] * NS[0] ** 2
    assert all(abs(v[2] * n**2 - coeff) < 1e-9 * abs(coeff) for n, _, v in rows)     # r = 1: n-independent
    assert_agrees(coeff, extrapolate_in_width(NS, gaps, degree=1), label=f"{act}: n² v_2")
