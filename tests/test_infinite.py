"""Infinite-width NNGP/NTK: structure, exact facts, fidelities against each other, training, MC."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp

from perturb.errors import PerturbError
from perturb.gaussian import evaluate
from perturb.infinite import (
    gradient_descent,
    gradient_flow,
    kernels,
    nngp_posterior,
    propagate,
    symbolic_recursion,
    train_predictions,
)
from perturb.network import Network

RNG = np.random.default_rng(7)
X = RNG.standard_normal((6, 4))

ACTS = ["relu", "leaky_relu:0.2", "abs", "erf", "sin", "cos", "tanh", "softplus", "gelu", "linear",
        "z*tanh(log(1+exp(z)))"]


@pytest.mark.parametrize("act", ACTS)
def test_gram_symmetric_psd(act):
    k = kernels(Network(act, depth=4, C_W=1.4, C_b=0.1), X)
    for M in (k.nngp, k.ntk):
        assert np.array_equal(M, M.T)
        assert np.linalg.eigvalsh(M)[0] > -1e-10 * np.abs(M).max()


@pytest.mark.parametrize("L", [1, 3, 7])
def test_relu_critical_diagonal(L):
    # REFERENCE §2: ReLU at C_W = 2, C_b = 0: K^{(ℓ)}(x,x) = K^{(1)}(x,x); Θ(x,x) = (L+1) K (NTK param)
    k = kernels(Network("relu", depth=L, C_W=2.0, C_b=0.0), X)
    K1 = 2.0 * np.sum(X**2, 1) / X.shape[1]
    assert np.allclose(np.diag(k.nngp), K1, rtol=1e-14)
    assert np.allclose(np.diag(k.ntk), (L + 1) * K1, rtol=1e-14)


@pytest.mark.parametrize("act", ["relu", "erf", "sin", "abs"])
def test_float_vs_mpmath_closed_forms(act):
    net = Network(act, depth=3, C_W=1.3, C_b=0.2)
    Xs = X[:3]
    k, km = kernels(net, Xs), kernels(net, Xs, dps=30)
    assert np.allclose(k.nngp, km.nngp.astype(float), rtol=1e-13, atol=1e-15)
    assert np.allclose(k.ntk, km.ntk.astype(float), rtol=1e-13, atol=1e-15)


def test_closed_form_vs_mehler_path():
    """erf by the closed-form registry vs the same recursion by Mehler series (pair_gram)."""
    from perturb.activations import Z
    from perturb.gaussian import pair_gram

    net_c = Network("erf", depth=4, C_W=1.7, C_b=0.05)
    k = kernels(net_c, X)
    K = 1.7 * X @ X.T / 4 + 0.05
    T = K.copy()
    for _ in range(4):
        a = np.diag(K).copy()
        ss = pair_gram(sp.erf(Z), sp.erf(Z), a, a, K)
        dd = pair_gram(sp.diff(sp.erf(Z)), sp.diff(sp.erf(Z)), a, a, K)
        K, T = 0.05 + 1.7 * ss, 0.05 + 1.7 * ss + 1.7 * dd * T
    assert np.allclose(k.nngp, K, rtol=1e-10, atol=1e-12)
    assert np.allclose(k.ntk, T, rtol=1e-10, atol=1e-12)


def test_symbolic_recursion_matches_numeric():
    r = symbolic_recursion("generic")
    s = r.symbols
    Xs = X[:2]
    net = Network("tanh", depth=1, C_W=1.2, C_b=0.3, lambda_W=0.7, lambda_b=0.1)
    k = kernels(net, Xs)
    K1 = 0.3 + 1.2 * Xs @ Xs.T / 4
    T1 = 0.1 + 0.7 * Xs @ Xs.T / 4
    vals = {s["K_aa"]: K1[0, 0], s["K_bb"]: K1[1, 1], s["K_ab"]: K1[0, 1], s["Theta_ab"]: T1[0, 1],
            s["C_W"]: 1.2, s["C_b"]: 0.3, s["lambda_W"]: 0.7, s["lambda_b"]: 0.1}
    assert abs(float(evaluate(r.nngp, vals, activation="tanh")) - k.nngp[0, 1]) < 1e-12
    assert abs(float(evaluate(r.ntk, vals, activation="tanh")) - k.ntk[0, 1]) < 1e-12
    # ReLU closed form in the recursion: diagonal map K -> C_b + C_W K/2
    assert sp.simplify(symbolic_recursion("relu").nngp_diag - (s["C_b"] + s["C_W"] * s["K_aa"] / 2)) == 0
    assert "\\begin{align}" in r.latex()


# ---------------------------------------------------------------- training predictions


def _parts(act="tanh"):
    Xtr, Xte = X[:4], X[4:]
    net = Network(act, depth=2, C_W=1.5, C_b=0.1)
    k = kernels(net, np.vstack([Xtr, Xte]))
    N = 4
    Y = np.array([0.5, -1.0, 0.3, 0.8])
    return (k.ntk[:N, :N], k.nngp[:N, :N], Y, k.ntk[N:, :N], k.nngp[N:, :N], k.nngp[N:, N:]), net, Xtr, Xte


def test_gradient_flow_mean_against_ode():
    (T, K, Y, Tt, Kt, Ktt), *_ = _parts()
    eta, t = 0.7, 1.3
    # mean: f_train' = -η Θ (f - Y), f_test' = -η Θ(x,X)(f - Y), from f = 0
    def rhs(_, f):
        r = f[:4] - Y
        return np.concatenate([-eta * T @ r, -eta * Tt @ r])
    sol = solve_ivp(rhs, (0, t), np.zeros(6), rtol=1e-12, atol=1e-14)
    p = gradient_flow(T, K, Y, Tt, Kt, Ktt, t, eta=eta)
    assert np.allclose(p.mean, sol.y[4:, -1], rtol=1e-9, atol=1e-11)


def test_gradient_flow_covariance_against_linear_map():
    """f_t = f_0 + A_t(...) is linear in f_0 ~ GP(0, K): cov from the propagated map."""
    (T, K, Y, Tt, Kt, Ktt), *_ = _parts()
    eta, t = 0.7, 1.3
    # the map f_0 -> f_t(test) with Y = 0: integrate the ODE for each basis vector of f_0
    cols = []
    for e in np.eye(6):
        def rhs(_, f):
            r = f[:4]
            return np.concatenate([-eta * T @ r, -eta * Tt @ r])
        cols.append(solve_ivp(rhs, (0, t), e, rtol=1e-12, atol=1e-14).y[:, -1])
    Mmap = np.array(cols).T[4:]                       # (2, 6)
    Kall = np.block([[K, Kt.T], [Kt, Ktt]])
    cov = Mmap @ Kall @ Mmap.T
    p = gradient_flow(T, K, Y, Tt, Kt, Ktt, t, eta=eta)
    assert np.allclose(p.cov, cov, rtol=1e-8, atol=1e-11)


def test_gradient_descent_against_its_iteration():
    (T, K, Y, Tt, Kt, Ktt), *_ = _parts()
    eta = 1.0 / np.linalg.eigvalsh(T)[-1]
    steps = 37
    f, g = np.zeros(4), np.zeros(2)
    for _ in range(steps):
        r = f - Y
        f, g = f - eta * T @ r, g - eta * Tt @ r
    p = gradient_descent(T, K, Y, Tt, Kt, Ktt, steps, eta=eta)
    assert np.allclose(p.mean, g, rtol=1e-11, atol=1e-13)
    with pytest.raises(PerturbError, match="stable range"):
        gradient_descent(T, K, Y, Tt, Kt, Ktt, 3, eta=2.01 / np.linalg.eigvalsh(T)[-1])


def test_nngp_posterior_is_infinite_time_with_theta_replaced_by_k():
    (T, K, Y, Tt, Kt, Ktt), *_ = _parts()
    post = nngp_posterior(K, Y, Kt, Ktt)
    flow = gradient_flow(K, K, Y, Kt, Kt, Ktt, np.inf)
    assert np.allclose(post.mean, flow.mean, rtol=1e-9)
    assert np.allclose(post.cov, flow.cov, atol=1e-9)


def test_train_predictions_interpolates_training_points():
    _, net, Xtr, _ = _parts("relu")
    Y = np.array([0.5, -1.0, 0.3, 0.8])
    p = train_predictions(net, Xtr, Y, Xtr)
    assert np.allclose(p.mean, Y, atol=1e-8)
    assert np.allclose(p.cov, 0, atol=1e-8)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad, msg", [
    (np.array([[1.0, np.nan]]), "NaN"),
    (np.array([1.0, 2.0]), "list of vectors"),
    (np.zeros((0, 3)), "shape"),
    ([[1.0, 2.0], [1.0]], "equal-length|shape"),
])
def test_bad_inputs(bad, msg):
    with pytest.raises(PerturbError, match=msg):
        kernels(Network("relu", depth=1), bad)


def test_non_psd_kernel_refused():
    with pytest.raises(PerturbError, match="positive semi-definite"):
        propagate(Network("tanh", depth=1), np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(PerturbError, match="symmetric"):
        propagate(Network("tanh", depth=1), np.array([[1.0, 0.2], [0.1, 1.0]]))


def test_step_ntk_undefined():
    k = kernels(Network("step", depth=2), X[:2])
    assert k.ntk is None and np.all(np.isfinite(k.nngp))


def test_mpmath_precision_untouched():
    before = mpmath.mp.dps
    kernels(Network("erf", depth=1), X[:2], dps=40)
    assert mpmath.mp.dps == before


@pytest.mark.parametrize("name", ["relu", "leaky_relu:0.1", "abs"])
@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_relu_fused_blocked_layer_equals_unfused(name, block):
    """The cache-blocked fused ReLU layer map (used by kernels()) against the plain full-matrix
    arc-cosine formulas, including a zero-variance input; results exactly symmetric."""
    from perturb.activations import get_activation
    from perturb.infinite import _engine

    rng = np.random.default_rng(3)
    Xb = rng.standard_normal((150, 5))
    K = Xb @ Xb.T / 5 + 0.1
    K[7, :] = K[:, 7] = 0.0
    T = 1.3 * K + 0.05 * np.eye(150)
    eng = _engine(get_activation(name))
    ss, dd = eng(K, True)
    K2, T2 = eng.relu_layer(K, T, 2.0, 0.1, 1.5, 0.2, block=block)
    assert np.array_equal(K2, K2.T) and np.array_equal(T2, T2.T)
    np.testing.assert_allclose(K2, 0.1 + 2.0 * ss, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(T2, 0.2 + 1.5 * ss + 2.0 * dd * T, rtol=1e-14, atol=1e-14)
