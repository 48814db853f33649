"""Simulation of real networks: reproducibility, exact gradients, and known finite-width facts.

The statistical checks compare Monte Carlo of explicit random networks with exact results
through the verdict API (confidence 0.99, Bonferroni over arrays).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from perturb.errors import PerturbError
from perturb.montecarlo import (
    assert_agrees,
    cumulant,
    jackknife,
    moment,
    sample_jacobian,
    sample_ntk,
    sample_outputs,
    sample_preactivations,
    standardized_moment,
    train_gd,
    verdict,
)
from perturb.montecarlo._simulate import _draw_params, _forward
from perturb.network import Network

X3 = np.array([1.0, 0.5, -0.3])
K1 = 2.0 * float(X3 @ X3) / 3  # K^{(1)} = C_b + C_W x·x/n0 at C_W = 2, C_b = 0


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_same_bits_and_workers_do_not_matter():
    net = Network("tanh", widths=(6, 5), C_W=1.5, C_b=0.1)
    a = sample_outputs(net, X3, 700, seed=11, chunk=100)
    b = sample_outputs(net, X3, 700, seed=11, chunk=100)
    c = sample_outputs(net, X3, 700, seed=11, chunk=100, workers=2)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    assert not np.array_equal(a, sample_outputs(net, X3, 700, seed=12, chunk=100))


def test_outputs_preactivations_jacobian_ntk_share_networks():
    net = Network("tanh", widths=(7, 4), C_W=1.3, C_b=0.2)
    out = sample_outputs(net, X3, 50, seed=3)
    pre = sample_preactivations(net, X3, 50, seed=3)
    assert [p.shape for p in pre] == [(50, 7, 1), (50, 4, 1), (50, 1, 1)]
    assert np.allclose(pre[-1][:, 0, :], out, rtol=1e-13, atol=1e-15)
    # several inputs at once see the same networks as one input at a time
    two = sample_outputs(net, np.stack([X3, -X3]), 50, seed=3)
    assert np.allclose(two[:, :1], out, rtol=1e-13, atol=1e-15)


def test_jacobian_matches_finite_differences():
    net = Network("tanh", widths=(6, 5), C_W=1.7, C_b=0.3)
    J = sample_jacobian(net, X3, 20, seed=5)
    eps = 1e-6
    Xs = np.stack([X3 + eps * e for e in np.eye(3)] + [X3 - eps * e for e in np.eye(3)])
    z = sample_outputs(net, Xs, 20, seed=5)  # same networks: chunking does not depend on inputs
    fd = (z[:, :3] - z[:, 3:]) / (2 * eps)
    assert np.allclose(J, fd, rtol=1e-6, atol=1e-8)


def _explicit_ntk(net, X, seed, parameterization):
    """Θ from explicitly materialised per-parameter gradients by central finite differences."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    params = _draw_params(rng, net, X.shape[1], 1, "gaussian")
    f = np.tanh

    def out(ps):
        return _forward(ps, X, net, f, keep=False)[2][0, 0, :]

    grads, lams = [], []
    for ell, (W, b) in enumerate(params, start=1):
        for arr, lam in ((W, net.lambda_W[ell - 1] / W.shape[2]), (b, net.lambda_b[ell - 1])):
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + 1e-6
                up = out(params)
                arr[idx] = old - 1e-6
                dn = out(params)
                arr[idx] = old
                grads.append((up - dn) / 2e-6)
                lams.append(lam if parameterization == "ntk" else 1.0)
    G = np.array(grads)  # (n_params, N)
    return (G * np.array(lams)[:, None]).T @ G


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_ntk_equals_explicit_per_parameter_sum(parameterization):
    net = Network("tanh", widths=(4, 3), C_W=1.4, C_b=0.3, lambda_W=0.7, lambda_b=0.2)
    X = np.array([[1.0, -0.4], [0.3, 0.8], [-0.5, 0.1]])
    theta = sample_ntk(net, X, 1, seed=9, parameterization=parameterization)[0]
    assert np.allclose(theta, _explicit_ntk(net, X, 9, parameterization), rtol=1e-6, atol=1e-9)
    assert np.allclose(theta, theta.T)


def test_train_gd_first_step_is_minus_eta_theta_r():
    net = Network("tanh", widths=(10, 10), C_W=1.2, C_b=0.1)
    X = np.array([[1.0, 0.0], [0.6, -0.8]])
    Y = np.array([0.5, -0.5])
    eta = 1e-5
    r = train_gd(net, X, Y, eta, 1, seed=4)
    resid = r.outputs[0] - Y
    step = r.outputs[1] - r.outputs[0]
    # f' − f = −η Θ r + O(η²)
    assert np.allclose(step, -eta * r.ntk_initial @ resid, rtol=1e-4, atol=1e-12)


def test_train_gd_converges_and_ensemble_shapes():
    net = Network("relu", widths=(64,), C_W=2.0)
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    r = train_gd(net, X, [0.4, -0.3], 0.2, 200, seed=1)
    assert r.loss[-1] < 1e-6 * r.loss[0]
    e = train_gd(net, X, [0.4, -0.3], 0.2, 3, seed=1, ensemble=5)
    assert e.outputs.shape == (5, 4, 2) and e.loss.shape == (5, 4) and e.ntk_final.shape == (5, 2, 2)
    with pytest.raises(PerturbError, match="diverged"):
        train_gd(Network("linear", widths=(64,)), X, [0.4, -0.3], 50.0, 400, seed=1)


# --------------------------------------------------------------------------- exact finite-width facts


def test_deep_linear_kurtosis_exact():
    # deep linear network: E z⁴/(E z²)² = 3 Π_ℓ (1 + 2/n_ℓ) (issue 3; Gaussian product of matrices)
    widths = (4, 6, 5)
    net = Network("linear", widths=widths, C_W=1.0)
    z = sample_outputs(net, X3, 200_000, seed=21)[:, 0]
    pred = 3 * math.prod(1 + 2 / n for n in widths)
    assert_agrees(pred, standardized_moment(z, 4), label="deep linear kurtosis")


def test_relu_kurtosis_exact():
    # ReLU at criticality: E z⁴/(E z²)² = 3 Π(1 + 5/n_ℓ) (REFERENCE §4, LH Prop. 5.2); E z² = K^{(1)}
    widths = (6, 8)
    net = Network("relu", widths=widths, C_W=2.0, C_b=0.0)
    z = sample_outputs(net, X3, 200_000, seed=22)[:, 0]
    assert_agrees(3 * math.prod(1 + 5 / n for n in widths), standardized_moment(z, 4), label="relu kurtosis")
    assert_agrees(K1, moment(z, 2), label="relu E z^2")


def test_relu_kurtosis_test_has_power():
    # the check above can fail: a prediction off by a 1/n-sized amount (4/n instead of 5/n) is
    # rejected by the same verdict on the same samples
    widths = (6, 8)
    net = Network("relu", widths=widths, C_W=2.0)
    z = sample_outputs(net, X3, 200_000, seed=22)[:, 0]
    wrong = 3 * math.prod(1 + 4 / n for n in widths)
    assert not verdict(wrong, standardized_moment(z, 4)).passed


@pytest.mark.parametrize("law", ["gaussian", "uniform", "rademacher"])
def test_weight_laws_have_the_stated_variance(law):
    # one-hidden-layer linear net: E z² = C_b + C_W (C_b + C_W x·x/n0), whatever the weight law
    net = Network("linear", widths=(5,), C_W=1.5, C_b=0.2)
    z = sample_outputs(net, X3, 100_000, seed=7, weight_law=law)[:, 0]
    assert_agrees(0.2 + 1.5 * (0.2 + 1.5 * float(X3 @ X3) / 3), moment(z, 2), label=law)


def test_relu_ntk_mean_exact_and_jacobian_second_moment():
    # ReLU, C_W = λ_W = 2, C_b = 0: E Θ(x,x) = (L+1) K^{(1)} at any width (sign symmetry of each
    # neuron's incoming weights decouples σ'² from Θ); E (∂z/∂x_p)² = C_W^{L+1}/(2^L n0) = 2/n0
    # [LH (124)]
    net = Network("relu", widths=(8, 8, 8), C_W=2.0)
    theta = sample_ntk(net, X3, 40_000, seed=8)[:, 0, 0]
    assert_agrees(4 * K1, moment(theta, 1), label="relu NTK mean")
    J = sample_jacobian(net, X3, 40_000, seed=8)
    assert_agrees(np.full(3, 2 / 3), moment(J, 2), label="relu Jacobian second moment")


# --------------------------------------------------------------------------- infinite-width limit


def _gauss_avg(fn, K, nodes=120):
    t, w = np.polynomial.hermite_e.hermegauss(nodes)  # ∫ f(t) e^{−t²/2} dt
    return float(np.sum(w * fn(math.sqrt(K) * t)) / math.sqrt(2 * math.pi))


def _tanh_kernels(x, C_W, C_b, L):
    """Single-input NNGP K and NTK Θ (λ = C) of REFERENCE §1 by 120-node Gauss–Hermite."""
    K = C_b + C_W * float(x @ x) / x.size
    T = C_b + C_W * float(x @ x) / x.size
    for _ in range(L):
        s2 = _gauss_avg(lambda z: np.tanh(z) ** 2, K)
        sp2 = _gauss_avg(lambda z: (1 - np.tanh(z) ** 2) ** 2, K)
        K, T = C_b + C_W * s2, C_b + C_W * s2 + C_W * sp2 * T
    return K, T


def _kernels(net, X):
    try:  # the foundation's infinite-width kernels, when present
        from perturb.infinite import kernels  # type: ignore[import-not-found]
    except ImportError:
        return None
    return kernels(net.replace(widths=None), X)


def test_large_width_tanh_matches_nngp_and_ntk():
    net = Network("tanh", widths=(128, 128), C_W=1.5, C_b=0.1)
    K, T = _tanh_kernels(X3, 1.5, 0.1, 2)
    ker = _kernels(net, X3[None, :])
    if ker is not None:
        assert np.allclose([ker.nngp[0, 0], ker.ntk[0, 0]], [K, T], rtol=1e-8)
    theta = sample_ntk(net, X3, 3000, seed=31)[:, 0, 0]
    z = sample_outputs(net, X3, 3000, seed=31)[:, 0]
    # finite-width corrections are O(1/n) ≈ 1%, below these errors (≈3%)
    assert_agrees(K, cumulant(z, 2), label="NNGP variance")
    assert_agrees(T, moment(theta, 1), label="NTK mean")


def test_large_width_relu_covariance_matches_arccos_kernel():
    # two inputs: the arc-cosine recursion (REFERENCE §1) at C_W = 2, C_b = 0
    X = np.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.4]])
    K = 2.0 * X @ X.T / 3
    for _ in range(2):
        d = np.sqrt(np.outer(np.diag(K), np.diag(K)))
        th = np.arccos(np.clip(K / d, -1, 1))
        K = 2.0 * d / (2 * np.pi) * (np.sin(th) + (np.pi - th) * np.cos(th))
    net = Network("relu", widths=(128, 128), C_W=2.0)
    z = sample_outputs(net, X, 4000, seed=32)
    est = jackknife(z, lambda s: (s.T @ s) / s.shape[0])
    assert_agrees(K, est, label="ReLU NNGP covariance")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: sample_outputs(Network("relu", widths=(4,)), X3, 0, 1), "n_samples"),
        (lambda: sample_outputs(Network("relu", widths=(4,)), X3, -5, 1), "n_samples"),
        (lambda: sample_outputs(Network("relu", widths=(4,)), X3, 10, 1.5), "seed"),
        (lambda: sample_outputs(Network("relu", widths=(4,)), X3, 10, "7"), "seed"),
        (lambda: sample_outputs(Network("relu", widths=(4,)), [1.0, np.nan], 10, 1), "NaN"),
        (lambda: sample_outputs(Network("relu", depth=2), X3, 10, 1), "infinitely wide"),
        (lambda: sample_outputs(Network("relu", widths=(4,)), X3, 10, 1, weight_law="cauchy"), "weight_law"),
        (lambda: sample_outputs(Network("relu", widths=(4,)), X3, 10**12, 1), "GiB"),
        (lambda: sample_outputs(Network("exp(z)", widths=(8,) * 6, C_W=40.0), X3, 100, 1), "overflowed"),
        (lambda: sample_ntk(Network("relu", widths=(4,)), X3, 10, 1, parameterization="mup"), "parameterization"),
        (lambda: sample_jacobian(Network("relu", widths=(4,)), np.ones((2, 3)), 10, 1), "one input"),
        (lambda: train_gd(Network("relu", widths=(4,)), X3, [1.0, 2.0], 0.1, 5, 0), "targets"),
        (lambda: train_gd(Network("relu", widths=(4,)), X3, [1.0], -0.1, 5, 0), "eta"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(PerturbError, match=match):
        call()


def test_bad_widths_are_refused_by_the_network():
    for w in ((0, 4), (-3,), (2.5,)):
        with pytest.raises(PerturbError):
            Network("relu", widths=w)
