"""The fast Gram-matrix paths of the infinite-width kernels (issue 2, speed), each against an
independent method:

* the checked Chebyshev interpolant of Mehler's series (perturb.gaussian.pairs, used for tanh,
  GELU, SiLU, softplus, sigmoid, user expressions) against direct 2-D quadrature
  (``expect_numeric`` on 2×2 covariances) and against mpmath at 30 digits, 1e-10 relative;
* whole networks through it against the same recursion with every entry by direct quadrature;
* the fused, blocked, threaded ReLU layer map against the registry's compiled arc-cosine closed
  form entry by entry (1e-13) and the exact invariants.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import perturb.infinite as inf
from perturb.activations import Z, get_activation
from perturb.gaussian import closed_form_of, expect_mpmath, expect_numeric, zvars
from perturb.gaussian.pairs import gram_expectations
from perturb.infinite import kernels
from perturb.network import Network

Z1, Z2 = zvars(2)
TOL = 1e-10


def _inputs(seed, N, n0=5, equal_norm=False, near=()):
    """Random inputs; ``near`` = pairs (i, j, ε): x_j = x_i + ε·noise (|ρ| -> 1), or -x_i for ε < 0."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, n0))
    for i, j, eps in near:
        X[j] = np.sign(eps) * X[i] + abs(eps) * rng.standard_normal(n0)
    if equal_norm:
        X *= np.sqrt(n0) / np.linalg.norm(X, axis=1, keepdims=True)
    return X


def _pair_quadrature(g, K, pairs):
    """E[g(u_i) g(u_j)] by direct 2-D quadrature on each 2×2 covariance (the independent method)."""
    Ks = np.array([[[K[i, i], K[i, j]], [K[j, i], K[j, j]]] for i, j in pairs])
    return expect_numeric(g.subs(Z, Z1) * g.subs(Z, Z2), Ks)


def _scale(g, K, pairs):
    d = expect_numeric(g**2, np.diag(K))
    return np.array([np.sqrt(d[i] * d[j]) for i, j in pairs])


GS = {
    "tanh": sp.tanh(Z),
    "sech2": 1 - sp.tanh(Z) ** 2,
    "gelu": get_activation("gelu").expr,
    "silu'": get_activation("silu").derivative(),
    "softplus": get_activation("softplus").expr,
    "mish": get_activation("z*tanh(log(1+exp(z)))").expr,
}


@pytest.mark.parametrize("name", list(GS))
@pytest.mark.parametrize("equal_norm", [False, True])
def test_interpolant_against_direct_quadrature(name, equal_norm):
    g = GS[name]
    X = _inputs(1, 40, equal_norm=equal_norm, near=[(0, 1, 0.02), (2, 3, -0.03), (4, 5, 1e-3)])
    K = 0.1 + 1.3 * X @ X.T / X.shape[1]
    (F,), err = gram_expectations([g], K)
    assert err <= 1e-12
    assert np.array_equal(F, F.T)
    pairs = [(0, 1), (2, 3), (4, 5), (0, 2), (6, 7), (10, 39), (3, 3), (17, 17)]
    rho = [K[i, j] / np.sqrt(K[i, i] * K[j, j]) for i, j in pairs]
    assert max(abs(r) for r in rho[:3]) > 0.999            # the hard end is really tested
    ref = _pair_quadrature(g, K, pairs)
    got = np.array([F[i, j] for i, j in pairs])
    np.testing.assert_array_less(np.abs(got - ref), TOL * _scale(g, K, pairs))


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), N=st.integers(2, 5), cw=st.floats(0.3, 3.0), cb=st.floats(0.0, 0.5))
def test_interpolant_random_gram(seed, N, cw, cb):
    g = sp.tanh(Z)
    X = _inputs(seed, N, n0=3)
    K = cb + cw * X @ X.T / 3
    res = gram_expectations([g, 1 - g**2], K)
    if res is None:                          # refused only where Mehler's series is too long
        assert np.max(np.diag(K)) > 8
        return
    pairs = [(i, j) for i in range(N) for j in range(i, N)]
    for h, F in zip((g, 1 - g**2), res[0]):
        ref = _pair_quadrature(h, K, pairs)
        got = np.array([F[i, j] for i, j in pairs])
        np.testing.assert_array_less(np.abs(got - ref), TOL * _scale(h, K, pairs))


# (a, b, c): equal and unequal diagonals, |ρ| >= 0.999, an interior point; mpmath at 30 digits
MP_ENTRIES = [(1.0, 1.0, 0.9995), (0.4, 2.5, -0.9991 * np.sqrt(0.4 * 2.5)), (0.7, 1.9, 0.3)]


@pytest.mark.parametrize("entry", MP_ENTRIES)
def test_interpolant_against_mpmath(entry):
    a, b, c = entry
    # a 3-input Gram matrix whose (0, 1) entry is the tested covariance
    K = np.array([[a, c, 0.1], [c, b, 0.2], [0.1, 0.2, 1.0]])
    (F,), err = gram_expectations([sp.tanh(Z)], K)
    ref = expect_mpmath(sp.tanh(Z1) * sp.tanh(Z2), [[a, c], [c, b]], dps=30)
    with mpmath.workdps(30):
        scale = mpmath.sqrt(expect_mpmath(sp.tanh(Z) ** 2, a, dps=30) * expect_mpmath(sp.tanh(Z) ** 2, b, dps=30))
        assert abs(mpmath.mpf(float(F[0, 1])) - ref) / scale < TOL


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gelu", "softplus", "mish"])
@pytest.mark.parametrize("entry", MP_ENTRIES)
def test_interpolant_against_mpmath_other_activations(name, entry):
    a, b, c = entry
    g = GS[name]
    K = np.array([[a, c, 0.1], [c, b, 0.2], [0.1, 0.2, 1.0]])
    (F,), _ = gram_expectations([g], K)
    ref = expect_mpmath(g.subs(Z, Z1) * g.subs(Z, Z2), [[a, c], [c, b]], dps=30)
    scale = np.sqrt(float(expect_mpmath(g**2, a, dps=30)) * float(expect_mpmath(g**2, b, dps=30)))
    assert abs(float(F[0, 1]) - float(ref)) / scale < TOL


def test_zero_variance_rows_and_single_input():
    g = sp.tanh(Z) + 0.3                     # g(0) != 0: the zero row is g(0) E g(u_β)
    X = _inputs(2, 12)
    X[4] = 0.0
    K = X @ X.T / X.shape[1]
    (F,), _ = gram_expectations([g], K)
    mean = expect_numeric(g, np.diag(K))
    np.testing.assert_allclose(F[4], 0.3 * mean, rtol=1e-13, atol=1e-15)
    assert F[4, 4] == pytest.approx(0.09, abs=1e-15)
    ref = _pair_quadrature(g, K, [(0, 1), (2, 11)])
    np.testing.assert_allclose([F[0, 1], F[2, 11]], ref, rtol=TOL)
    (F1,), _ = gram_expectations([g], K[:1, :1])
    assert F1[0, 0] == pytest.approx(float(expect_numeric(g**2, K[0, 0])), rel=1e-14)


def test_not_certified_returns_none():
    """A kink (algebraic Hermite decay) or a huge variance (Mehler's series not converged by
    order 1024) is refused, so that the caller integrates directly."""
    K = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert gram_expectations([sp.Max(Z, 0) * sp.tanh(Z)], K) is None
    assert gram_expectations([sp.tanh(Z)], 1e4 * K) is None


@pytest.mark.parametrize("act", ["tanh", "softplus"])
def test_network_against_direct_quadrature(act, monkeypatch):
    """A whole depth-4 recursion through the interpolant against the same recursion with every
    two-point expectation by Mehler's series and direct 2-D quadrature."""
    net = Network(act, depth=4, C_W=1.6, C_b=0.1)
    X = _inputs(3, 30, near=[(0, 1, 0.01), (2, 3, -0.01)])
    fast = kernels(net, X)
    assert fast.methods == (inf._FAST,)
    monkeypatch.setattr(inf, "gram_expectations", lambda *a, **k: None)
    slow = kernels(net, X)
    assert slow.methods == (inf._SLOW,)
    for A, B in ((fast.nngp, slow.nngp), (fast.ntk, slow.ntk)):
        assert np.array_equal(A, A.T)
        np.testing.assert_allclose(A, B, rtol=0, atol=TOL * np.abs(B).max())


def test_kinked_user_activation_falls_back():
    net = Network("Max(z, 0)*tanh(z)", depth=2)
    k = kernels(net, _inputs(4, 5))
    assert k.methods == (inf._SLOW,)


# ----------------------------------------------------------------------------- ReLU fused path


def _relu_closed_layer(name, K, T, C_W, C_b, lw, lb):
    """One layer by the registry's compiled two-point closed forms, entry by entry."""
    act = get_activation(name)
    cf = closed_form_of(inf._pair(act.expr), 2)
    ds = act.derivative()
    cfd = closed_form_of(inf._pair(ds), 2)
    a = np.diag(K)
    A, B = np.meshgrid(a, a, indexing="ij")
    lim = np.sqrt(A * B)
    C = np.clip(K, -lim, lim)
    ss, dd = np.asarray(cf(A, B, C), float), np.asarray(cfd(A, B, C), float)
    return C_b + C_W * ss, lb + lw * ss + C_W * dd * T


@pytest.mark.parametrize("name", ["relu", "leaky_relu:0.1", "abs", "linear"])
@pytest.mark.parametrize("threads", [1, 2])
def test_relu_layer_against_closed_form(name, threads):
    X = _inputs(5, 300, near=[(0, 1, 1e-2), (2, 3, -1e-2)])
    K = 0.1 + X @ X.T / X.shape[1]
    T = 1.3 * K
    eng = inf._engine(get_activation(name))
    K2, T2 = eng.relu_layer(K, T, 1.7, 0.1, 1.2, 0.05, threads=threads)
    rK, rT = _relu_closed_layer(name, K, T, 1.7, 0.1, 1.2, 0.05)
    assert np.array_equal(K2, K2.T) and np.array_equal(T2, T2.T)
    np.testing.assert_allclose(K2, rK, rtol=1e-13, atol=1e-13 * np.abs(rK).max())
    np.testing.assert_allclose(T2, rT, rtol=1e-13, atol=1e-13 * np.abs(rT).max())


@pytest.mark.parametrize("name", ["relu", "leaky_relu:0.1", "abs"])
def test_relu_layer_nearly_parallel_against_mpmath(name):
    """|ρ| = 1 - O(1e-9): 1-ρ² is formed as (1-ρ)(1+ρ), so the fused layer stays at ~1e-15
    where the float64 closed form √(ab - c²) loses ~1e-12; reference: the closed form at 40 digits."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((4, 5))
    X[1] = X[0] + 1e-4 * rng.standard_normal(5)
    X[3] = -X[2] + 1e-5 * rng.standard_normal(5)
    K = 0.1 + X @ X.T / 5
    act = get_activation(name)
    cf = closed_form_of(inf._pair(act.expr), 2)
    K2, _ = inf._engine(act).relu_layer(K, K, 1.7, 0.1, 1.2, 0.05)
    for i, j in ((0, 1), (2, 3), (0, 2)):
        with mpmath.workdps(40):
            ref = 0.1 + mpmath.mpf(1.7) * cf.mpmath(mpmath.mpf(K[i, i]), mpmath.mpf(K[j, j]), mpmath.mpf(K[i, j]), dps=40)
            scale = mpmath.sqrt(mpmath.mpf(K2[i, i]) * mpmath.mpf(K2[j, j]))   # K' may cancel to ~0
            assert abs(mpmath.mpf(float(K2[i, j])) - ref) / scale < 1e-14


def test_relu_threads_do_not_change_results():
    X = _inputs(6, 257)
    net = Network("relu", depth=5, C_W=2.0, C_b=0.0)
    K, T = inf.first_layer(net, X)
    eng = inf._engine(net.activation)
    one = eng.relu_layer(K, T, 2.0, 0.0, 2.0, 0.0, threads=1)
    two = eng.relu_layer(K, T, 2.0, 0.0, 2.0, 0.0, threads=2, block=8)
    assert all(np.array_equal(p, q) for p, q in zip(one, two))


def test_relu_critical_invariants_large():
    """Critical ReLU (C_W = 2, C_b = 0) on inputs of several norms, with a zero input: diagonal
    of K constant in depth (exactly), diag Θ = (L+1) K, symmetric, PSD."""
    X = _inputs(7, 400) * np.linspace(0.5, 2.0, 400)[:, None]
    X[9] = 0.0
    L = 6
    k = kernels(Network("relu", depth=L, C_W=2.0, C_b=0.0), X)
    d1 = np.diag(k.layers[0][0])
    for K, _ in k.layers:
        assert np.array_equal(np.diag(K), d1)
    np.testing.assert_allclose(np.diag(k.ntk), (L + 1) * d1, rtol=1e-14)
    assert np.array_equal(k.nngp, k.nngp.T) and np.array_equal(k.ntk, k.ntk.T)
    assert np.all(k.nngp[9] == 0.0)
    for M in (k.nngp, k.ntk):
        assert np.linalg.eigvalsh(M)[0] > -1e-12 * np.abs(M).max()


def test_relu_intermediate_layers_symmetric_on_every_access():
    """The ReLU fold computes intermediate layers upper-triangle only and mirrors them when first
    looked at: every way of reading ``Kernels.layers`` sees exactly the eager layer maps."""
    import pickle

    net = Network("relu", depth=4, C_W=1.8, C_b=0.1)
    X = _inputs(9, 150)
    K, T = inf.first_layer(net, X)
    ref = [(K, T)]
    for m in inf.layer_maps(net):
        K, T = m(K, T)
        ref.append((K, T))

    def same(layers):
        layers = list(layers)
        assert len(layers) == len(ref)
        for (A, B), (rA, rB) in zip(layers, ref):
            assert np.array_equal(A, rA) and np.array_equal(B, rB)
            assert np.array_equal(A, A.T) and np.array_equal(B, B.T)

    same(kernels(net, X).layers)                                  # iteration
    k = kernels(net, X)
    same([k.layers[i] for i in range(-5, 0)])                     # negative indices
    k = kernels(net, X)
    same(k.layers[0:2] + k.layers[2:])                            # slices, concatenation
    k = kernels(net, X)
    same(reversed(list(reversed(k.layers))))
    k = kernels(net, X)
    same(pickle.loads(pickle.dumps(k.layers)))
    k = kernels(net, X)
    assert np.array_equal(np.array([lay[0] for lay in k.layers]), np.array([r[0] for r in ref]))
    assert np.array_equal(k.nngp, ref[-1][0]) and np.array_equal(k.ntk, ref[-1][1])
