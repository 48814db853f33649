"""Monte Carlo of actual finite random networks (explicit weights) against the infinite-width kernels.

Deep linear networks: E[z_a z_b] and E[Θ_ab] equal the infinite-width recursion at ANY width
(each layer's conditional mean is linear in the previous Gram matrix), so the comparison is
exact up to sampling error.  Nonlinear networks (tanh, ReLU) at width 512 differ from the
recursion by O(L/n) (≈ 0.4 % at n = 512, 0.8 % at n = 256): the sample sizes below make the statistical error several times
larger than that, and the verdict is the laboratory's 99 % z-test (Bonferroni over entries).
"""

from __future__ import annotations

import numpy as np
import pytest

from perturb.infinite import kernels
from perturb.montecarlo import assert_agrees, moment, sample_ntk, sample_outputs
from perturb.network import Network

X = np.array([[1.0, 0.3, -0.5], [0.2, -1.0, 0.7], [-0.8, 0.4, 0.1]])


def _empirical_nngp(z):
    prods = z[:, :, None] * z[:, None, :]            # (S, N, N)
    return moment(prods.reshape(len(z), -1), 1)


@pytest.mark.parametrize("act, width, S", [
    ("linear", 64, 4000),
    ("tanh", 256, 800),
    pytest.param("tanh", 512, 3000, marks=pytest.mark.slow),
    pytest.param("relu", 512, 3000, marks=pytest.mark.slow),
])
def test_nngp_monte_carlo(act, width, S):
    net = Network(act, widths=(width, width), C_W=1.5, C_b=0.1)
    z = sample_outputs(net, X, S, seed=11)
    est = _empirical_nngp(z)
    pred = kernels(net.replace(widths=None), X).nngp.reshape(-1)
    assert_agrees(pred, est, label=f"NNGP {act}")


@pytest.mark.parametrize("act, width, S", [("linear", 64, 300), ("tanh", 256, 200)])
def test_ntk_monte_carlo(act, width, S):
    net = Network(act, widths=(width, width), C_W=1.5, C_b=0.1)
    th = sample_ntk(net, X, S, seed=5)
    est = moment(th.reshape(S, -1), 1)
    pred = kernels(net.replace(widths=None), X).ntk.reshape(-1)
    assert_agrees(pred, est, label=f"NTK {act}")
