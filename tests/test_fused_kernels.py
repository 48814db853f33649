"""The fused closed-form layer map (perturb.gaussian.fused, ``_Engine.closed_layer``) against
independent evaluations:

* the unfused path (the registry's compiled closed forms of <σσ> and <σ'σ'> on the whole Gram
  matrix, ``_Engine.__call__``, then the layer map assembled separately), entry by entry to
  1e-13 relative, for every kind of closed form (erf, GELU, sin, cos, polynomials, products,
  a constant σ'), with zero-variance inputs and nearly parallel pairs, on 1 and 2 threads;
* the closed forms at 40 digits with mpmath (``Compiled.mpmath``) at selected entries;
* whole folds: ``kernels`` (intermediate layers upper-triangle only, mirrored on access)
  against eager layer-by-layer maps, exactly;
* the refusals: a kernel that overflows raises PerturbError, never returns inf/NaN.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

import perturb.infinite as inf
from perturb.activations import get_activation
from perturb.errors import PerturbError
from perturb.gaussian import closed_form_of
from perturb.gaussian.fused import fused_pair, separable_form
from perturb.infinite import kernels
from perturb.network import Network

ACTS = ["erf", "gelu", "sin", "cos", "z + z**2/4", "z**3", "z*erf(z)", "erf(z) + z/2",
        "sin(2*z) + cos(z)", "2*z + 1"]
PARAMS = (1.3, 0.1, 0.7, 0.2)          # C_W, C_b, λ_W, λ_b


def _gram(seed, N=120, n0=5, zeros=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, n0))
    X[3] = X[2] + 1e-7 * rng.standard_normal(n0)        # ρ -> 1
    X[5] = -X[4] + 1e-7 * rng.standard_normal(n0)       # ρ -> -1
    if zeros:
        X[7] = X[N // 2] = 0.0                          # zero variance (K = X Xᵀ/n0, no bias)
    K = X @ X.T / n0
    return K, 1.2 * K + 0.05


def _unfused(eng, K, T):
    C_W, C_b, lw, lb = PARAMS
    ss, dd = eng(K)
    return C_b + C_W * ss, (lb + lw * ss + C_W * dd * T if dd is not None else None)


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_layer_equals_unfused(name, threads):
    eng = inf._engine(get_activation(name))
    assert eng.fused is not None
    K, T = _gram(1)
    K2, T2 = eng.closed_layer(K, T, *PARAMS, threads=threads, block=8, cols=8 * threads)   # many tiles
    rK, rT = _unfused(eng, K, T)
    assert np.array_equal(K2, K2.T) and np.array_equal(T2, T2.T)
    for M, R in ((K2, rK), (T2, rT)):
        np.testing.assert_allclose(M, R, rtol=1e-13, atol=1e-13 * np.abs(R).max())
    assert np.all(np.isfinite(K2)) and np.all(np.isfinite(T2))


@pytest.mark.parametrize("name", ["erf", "gelu", "sin", "z**3", "z*erf(z)"])
def test_fused_layer_against_mpmath(name):
    """Entries (near-parallel, anti-parallel, generic, diagonal) against the registry's closed
    forms evaluated at 40 digits."""
    act = get_activation(name)
    eng = inf._engine(act)
    K, T = _gram(2, N=12, zeros=False)
    K2, T2 = eng.closed_layer(K, T, *PARAMS)
    cf = closed_form_of(inf._pair(act.expr), 2)
    cfd = closed_form_of(inf._pair(act.derivative()), 2)
    C_W, C_b, lw, lb = (mpmath.mpf(v) for v in PARAMS)
    for i, j in ((2, 3), (4, 5), (0, 1), (6, 6), (0, 9)):
        args = [mpmath.mpf(float(x)) for x in (K[i, i], K[j, j], K[i, j])]
        with mpmath.workdps(40):
            s = cf.mpmath(*args, dps=40)
            d = cfd.mpmath(*args, dps=40)
            rk = C_b + C_W * s
            rt = lb + lw * s + C_W * d * mpmath.mpf(float(T[i, j]))
        # 1-ρ² ~ 1e-13 at the near-parallel pairs: the float64 closed form is only as good as
        # the float64 covariance allows there, so compare relative to the diagonal scale
        scale_k = mpmath.sqrt(abs(mpmath.mpf(K2[i, i]) * mpmath.mpf(K2[j, j])))
        scale_t = mpmath.sqrt(abs(mpmath.mpf(T2[i, i]) * mpmath.mpf(T2[j, j])))
        assert abs(mpmath.mpf(float(K2[i, j])) - rk) <= 1e-13 * scale_k, (i, j)
        assert abs(mpmath.mpf(float(T2[i, j])) - rt) <= 1e-13 * scale_t, (i, j)


@pytest.mark.parametrize("name", ["erf", "gelu", "cos"])
def test_fold_equals_eager_layer_maps(name):
    """``kernels`` computes intermediate layers upper-triangle only; every layer it exposes is
    exactly the eager (mirrored) layer map's, and exactly symmetric."""
    net = Network(name, depth=4, C_W=1.4, C_b=0.1)
    X = np.random.default_rng(3).standard_normal((90, 4))
    K, T = inf.first_layer(net, X)
    ref = [(K, T)]
    for m in inf.layer_maps(net):
        K, T = m(K, T)
        ref.append((K, T))
    k = kernels(net, X)
    assert k.methods == ("closed form (registry)",)
    for (A, B), (rA, rB) in zip(k.layers, ref):
        assert np.array_equal(A, rA) and np.array_equal(B, rB)
        assert np.array_equal(A, A.T) and np.array_equal(B, B.T)


def test_fused_nngp_only_when_ntk_not_wanted():
    eng = inf._engine(get_activation("gelu"))
    K, T = _gram(4)
    K2, T2 = eng.closed_layer(K, None, *PARAMS)
    assert T2 is None
    full = eng.closed_layer(K, T, *PARAMS)[0]
    np.testing.assert_allclose(K2, full, rtol=1e-13, atol=1e-14 * np.abs(full).max())


def test_overflow_is_refused():
    """σ = z³ at C_W = 50: the variance grows like K ↦ 750 K³ and overflows within a few layers;
    the fused path refuses it (as the unfused path does) instead of returning inf or NaN."""
    net = Network("z**3", depth=8, C_W=50.0, C_b=0.0)
    X = np.random.default_rng(5).standard_normal((20, 3))
    with pytest.raises(PerturbError, match="not finite"):
        kernels(net, X)
    eng = inf._engine(net.activation)
    K = np.full((3, 3), 1e200) + np.eye(3) * 1e200
    with pytest.raises(PerturbError, match="not finite"):
        eng.closed_layer(K, K, 1.0, 0.0, 1.0, 0.0)
    with pytest.raises(PerturbError, match="not finite"):
        eng(K)


def test_separable_form_is_exact():
    """The rewriting used before compiling is an identity (checked symbolically and at random
    points), and it separates what it should."""
    a, b = sp.symbols("a_ b_", positive=True)
    c = sp.Symbol("c_", real=True)
    gelu = inf._engine(get_activation("gelu")).cf.expr
    gelu = gelu.xreplace({s: {"a_": a, "b_": b, "c_": c}[s.name] for s in gelu.free_symbols})
    rng = np.random.default_rng(6)
    out = separable_form(gelu)
    for _ in range(5):
        av, bv = rng.uniform(0.1, 3, 2)
        cv = rng.uniform(-1, 1) * np.sqrt(av * bv)
        at = {a: sp.Float(av, 40), b: sp.Float(bv, 40), c: sp.Float(cv, 40)}
        assert abs(sp.N(gelu.xreplace(at) - out.xreplace(at), 40)) < 1e-35
    assert separable_form(sp.exp(-a / 2 - b / 2)) == sp.exp(-a / 2) * sp.exp(-b / 2)
    assert separable_form(sp.acos(-c) + sp.acos(c)) == sp.pi


def test_fused_pair_call_returns_both_closed_forms():
    a, b, c = sp.symbols("a_ b_ c_", real=True)
    pair = fused_pair(sp.exp(-a / 2 - b / 2) * sp.sinh(c), sp.exp(-a / 2 - b / 2) * sp.cosh(c))
    A, B, C = np.array([[0.5], [2.0]]), np.array([[1.0, 3.0]]), np.array([[0.3, -0.9], [1.1, 0.2]])
    ss, dd = pair(A, B, C)
    np.testing.assert_allclose(ss, np.exp(-(A + B) / 2) * np.sinh(C), rtol=1e-15)
    np.testing.assert_allclose(dd, np.exp(-(A + B) / 2) * np.cosh(C), rtol=1e-15)


@pytest.mark.parametrize("name", ["step", "sign(z)", "Heaviside(z) + z/2"])
def test_step_like_exact_on_the_diagonal_and_against_mpmath(name):
    """Activations whose kernel is arccos(ρ): on the diagonal (ρ = 1 exactly) the fused layer
    uses the one-variable closed form <σ²>_K (the two-point form is a rounding of ρ away from 1
    there, where arccos costs ~1e-8); off the diagonal the closed form at 40 digits."""
    act = get_activation(name)
    eng = inf._engine(act)
    X = np.random.default_rng(7).standard_normal((30, 4))
    K = X @ X.T / 4
    K2, _ = eng.closed_layer(K, None, 1.0, 0.0, 1.0, 0.0)
    one = closed_form_of(act.expr**2, 1)
    np.testing.assert_array_equal(np.diag(K2), np.broadcast_to(np.asarray(one(np.diag(K)), float), (30,)))
    cf = closed_form_of(inf._pair(act.expr), 2)
    for i, j in ((0, 1), (2, 9), (5, 29)):
        ref = cf.mpmath(*(mpmath.mpf(float(x)) for x in (K[i, i], K[j, j], K[i, j])), dps=40)
        assert abs(mpmath.mpf(float(K2[i, j])) - ref) < 1e-13
