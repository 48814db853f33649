"""Exact leaky-ReLU NTK mean and variance (perturb.ntk_exact_leaky) against independent methods.

* α = ±1 is the linear / |z| network (perturb.ntk_exact, exact rationals); α → 0 tends to ReLU;
* one hidden layer: Θ is a sum of iid per-neuron terms with elementary moments;
* the order-1/n fold of perturb.ntk: n·Var Θ is a polynomial of degree L − 1 in 1/n (fitted
  exactly through L + 1 widths; the extra coefficient must vanish) whose constant term must
  equal the engine's (A + 2B);
* Monte Carlo of real leaky-ReLU networks, and a two-sample KS test of the scalar chain's law.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.stats as st
import sympy as sp

from perturb.errors import PerturbError
from perturb.montecarlo import assert_agrees, central_moment, moment, sample_ntk
from perturb.network import Network
from perturb.ntk_exact import ntk_moments, relu_ntk_moments
from perturb.ntk_exact_leaky import leaky_ntk_moments, sample_theta_leaky


def _close(a, b, tol=None):
    tol = mpmath.mpf(10) ** -22 if tol is None else tol
    return abs(mpmath.mpf(a) - mpmath.mpf(b)) <= tol * max(1, abs(mpmath.mpf(b)))


@pytest.mark.parametrize("alpha", [1, -1])
def test_alpha_one_is_the_linear_network(alpha):
    ex = ntk_moments("linear", [3, 4, 2], sp.Rational(5, 2), C_W=[1, 2, 1, 3], lambda_W=[1, 1, 2, 1])
    got = leaky_ntk_moments([3, 4, 2], [1, 2], alpha=alpha, C_W=[1, 2, 1, 3], lambda_W=[1, 1, 2, 1], dps=30)
    for k in ("mean", "second"):
        assert _close(got[k], mpmath.mpf(ex[k].p) / ex[k].q)


def test_small_alpha_tends_to_relu():
    ex = relu_ntk_moments([3, 4], [1], C_W=2)
    prev = None
    for a in ("1/100", "1/10000"):
        got = leaky_ntk_moments([3, 4], [1], alpha=sp.Rational(a), C_W=2, dps=30)
        err = abs(got["var"] - mpmath.mpf(ex["var"].p) / ex["var"].q)
        assert prev is None or err < prev / 100            # O(α²)
        prev = err
    assert prev < 1e-6
    zero = leaky_ntk_moments([3, 4], [1], alpha=0, C_W=2)  # α = 0 is routed to the ReLU result
    assert _close(zero["var"], mpmath.mpf(ex["var"].p) / ex["var"].q, mpmath.mpf(10) ** -14)


@pytest.mark.parametrize("width", [1, 2, 5])
def test_one_hidden_layer_is_a_sum_of_iid_neurons(width):
    # Θ = Σ_i s_i (a w_i² + b ξ_i²), s_i = 1 (ξ_i > 0) or α² (ξ_i < 0): E t = (1+α²)(a+b)/2,
    # E t² = (1+α⁴)(3a² + 2ab + 3b²)/2
    with mpmath.workdps(40):
        al, C1, C2, lw1, lw2, q = (mpmath.mpf(1) / 3, mpmath.mpf(2), mpmath.mpf(3), mpmath.mpf(1) / 2,
                                   mpmath.mpf(2), mpmath.mpf(5) / 2)
        a, b = C2 / width * lw1 * q, lw2 * C1 * q / width
        Et, Et2 = (1 + al**2) / 2 * (a + b), (1 + al**4) / 2 * (3 * a * a + 2 * a * b + 3 * b * b)
        mean = width * Et
        second = mean**2 + width * (Et2 - Et**2)
        got = leaky_ntk_moments([width], [1, 2], alpha="1/3", C_W=[2, 3], lambda_W=["1/2", 2], dps=40)
        assert _close(got["mean"], mean, mpmath.mpf(10) ** -30)
        assert _close(got["second"], second, mpmath.mpf(10) ** -30)


@pytest.mark.parametrize("L, ns", [(2, (2, 3, 4)), (3, (2, 3, 4, 6))])
def test_order_one_over_n_equals_the_perturbative_engine(L, ns):
    from perturb.ntk.chain import ntk_statistics

    eng = ntk_statistics("leaky_relu:0.5", [100] * L, [1.0], C_W=1.5, C_b=0.0, lambda_b=0.0, dps=30)
    with mpmath.workdps(40):
        vals = [n * leaky_ntk_moments([n] * L, [1], alpha=0.5, C_W=1.5, dps=40)["var"] for n in ns]
        A = mpmath.matrix([[mpmath.mpf(1) / n**k for k in range(len(ns))] for n in ns])
        coef = mpmath.lu_solve(A, mpmath.matrix(vals))
    assert abs(coef[len(ns) - 1]) < 1e-20                # n·Var Θ has degree L − 1 in 1/n
    assert _close(coef[0], eng.var * 100, mpmath.mpf(10) ** -18)


def test_monte_carlo_real_networks_and_chain_law():
    widths, alpha, cw = (6, 5, 6), 0.2, 1.7
    net = Network(f"leaky_relu:{alpha}", widths=widths, C_W=cw, lambda_b=0.0)
    x = [[1.0, -0.5]]
    ex = leaky_ntk_moments(list(widths), x[0], alpha=alpha, C_W=cw, dps=20)
    th = sample_ntk(net, x, 60_000, seed=61)[:, 0, 0]
    assert_agrees(float(ex["mean"]), moment(th, 1), label="leaky E Θ")
    assert_agrees(float(ex["var"]), central_moment(th, 2), label="leaky Var Θ")
    chain = sample_theta_leaky(list(widths), 60_000, seed=62, alpha=alpha, x_norm2_over_n0=0.625, C_W=cw)
    assert st.ks_2samp(th, chain).pvalue > 1e-3
    assert np.isfinite(chain).all() and math.isfinite(float(ex["second"]))


def test_depth_limit_is_e_beta_over_three():
    # as for ReLU and linear nets: E Θ²/(E Θ)² e^{−β} -> 1/3, e^β = (E X²/(E X)²)^L with
    # E X²/(E X)² = 1 + (6(1+α⁴)/(1+α²)² − 1)/n; Richardson extrapolation from L = 100, 200
    al, n = mpmath.mpf(1) / 2, 4
    g = 1 + (6 * (1 + al**4) / (1 + al**2) ** 2 - 1) / n

    def scaled(L):
        m = leaky_ntk_moments([n] * L, [1], alpha=0.5, dps=20)
        return m["second"] / m["mean"] ** 2 / g**L

    assert abs(2 * scaled(200) - scaled(100) - mpmath.mpf(1) / 3) < 1e-3


def test_bad_input():
    with pytest.raises(PerturbError, match="dps"):
        leaky_ntk_moments([3], [1], alpha=0.5, dps=2)
    with pytest.raises(PerturbError, match="widths must be"):
        leaky_ntk_moments([0], [1], alpha=0.5)
    with pytest.raises(PerturbError, match="alpha"):
        leaky_ntk_moments([3], [1], alpha="a")
