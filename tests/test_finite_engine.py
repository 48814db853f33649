"""The finite-width engine against exact results (symbolic) and mpmath (numeric).

Independent references, none of which the engine's code contains:

* ReLU at C_W = 2, C_b = 0: the matrix-model law of [LH §5] as implemented by
  :mod:`perturb.relu_exact` (binomial moments of χ², exact rational functions of the widths);
* deep linear networks: Σ^{(L)} = K Π_ℓ χ²_{n_ℓ}/n_ℓ, E[(χ²_n/n)^m] = Π_{i<m} (1 + 2i/n)
  (moments of the chi-square law);
* a quadratic activation, whose chain is polynomial: the exact moments of Σ^{(L)} composed
  layer by layer without any expansion (conditional cumulants of a sum of n iid terms, Wick
  moments), then expanded in 1/n — this exercises the Taylor/closure steps that ReLU and
  linear networks (with <σ²>_K linear in K) leave untested.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import sympy as sp

from perturb.errors import NotImplementedOrderError, PerturbError
from perturb.finite import FiniteWidth
from perturb.gaussian import wick
from perturb.relu_exact import moment_symbolic

EPS = sp.Symbol("epsilon", positive=True)


def truncate(expr: sp.Expr, widths, order: int) -> sp.Expr:
    """Taylor-expand in 1/n_ℓ (all widths scaled together) to total order ``order``."""
    scaled = expr.subs({n: n / EPS for n in widths}, simultaneous=True)
    return sp.expand(sp.series(scaled, EPS, 0, order + 1).removeO().subs(EPS, 1))


def assert_equal(a, b):
    assert sp.simplify(sp.together(a - b)) == 0, sp.simplify(a - b)


def engine_moments(activation, L, order, **kw):
    fw = FiniteWidth(activation, depth=L, order=order)
    return fw.symbolic(**kw)


# ------------------------------------------------------------------------------ ReLU


@pytest.mark.parametrize("depth,order", [(2, 1), (2, 2), pytest.param(3, 3, marks=pytest.mark.slow),
                                         pytest.param(3, 4, marks=pytest.mark.slow)])
def test_relu_series_equals_exact_law(depth, order):
    widths = sp.symbols(f"n_1:{depth + 1}", positive=True)
    K = sp.Symbol("K_1", positive=True)
    st = engine_moments("relu", depth, order, C_W=2, C_b=0)
    for M in (2, 4, 6, 8):
        exact = moment_symbolic(M, list(widths), C_W=2, K1=K)
        assert_equal(sp.together(st.total_moment(M)), truncate(exact, widths, order))


def test_relu_cumulants_vanish_below_their_order():
    """κ_{2j}(z) = (2j−1)!! κ_j(Σ) = O(n^{-(j-1)}) [H22]: exact zeros, not small numbers."""
    st = engine_moments("relu", 2, 2, C_W=2, C_b=0)
    assert st.cumulants[6].get(0, 0) == 0 and st.cumulants[6].get(1, 0) == 0
    assert st.cumulants[8] == {} or all(v == 0 for v in st.cumulants[8].values())
    K = sp.Symbol("K_1", positive=True)
    n1, n2 = sp.symbols("n_1 n_2", positive=True)
    # κ4 at order 1 for ReLU: 3 K² · 5 (1/n1 + 1/n2)  (LH §5: E z⁴/(E z²)² = 3Π(1 + 5/n))
    assert sp.simplify(st.cumulants[4][1] - 15 * K**2 * (1 / n1 + 1 / n2)) == 0


# ------------------------------------------------------------------------------ deep linear


@pytest.mark.parametrize("order", [1, 2, 3])
def test_deep_linear_equals_chi_square_product(order):
    widths = sp.symbols("n_1:3", positive=True)
    K, C = sp.Symbol("K_1", positive=True), sp.Symbol("C", positive=True)
    st = engine_moments("linear", 2, order, C_W=C, C_b=0)
    for m in (1, 2, 3, 4):
        exact = sp.factorial2(2 * m - 1) * (K * C**2) ** m
        for n in widths:
            exact *= sp.Mul(*[1 + sp.Integer(2 * i) / n for i in range(m)])
        assert_equal(sp.together(st.total_moment(2 * m)), truncate(exact, widths, order))


# ------------------------------------------------------------------------------ polynomial σ


def _exact_polynomial_chain(sigma, L, widths, C_W, C_b, K1, max_m):
    """E[(Σ^{(L)})^m], m <= max_m, exactly, for a polynomial activation σ(z)."""
    z, S = sp.Symbol("z", real=True), sp.Symbol("S", positive=True)
    u = sp.Poly(sp.expand(sigma(z) ** 2), z)

    @functools.cache
    def mu(i):  # E[u^i | S], u = σ(z)², z ~ N(0, S)
        p = sp.Poly(sp.expand(u.as_expr() ** i), z)
        return sp.expand(sum(c * wick((k,), S) for (k,), c in p.terms()))

    def cumulant_u(q):
        # κ_q from moments μ_1..μ_q
        kap = []
        for j in range(1, q + 1):
            v = mu(j) - sum(math.comb(j - 1, i - 1) * kap[i - 1] * mu(j - i) for i in range(1, j))
            kap.append(sp.expand(v))
        return kap[q - 1]

    @functools.cache
    def cond_moment(m, n):  # E[Σ^m | S], Σ = C_b + (C_W/n) Σ_j u_j
        kap = [n * cumulant_u(q) for q in range(1, m + 1)]  # cumulants of U = Σ_j u_j
        mom = [sp.S.One]
        for j in range(1, m + 1):  # moments of U from cumulants
            mom.append(sp.expand(sum(math.comb(j - 1, i - 1) * kap[i - 1] * mom[j - i] for i in range(1, j + 1))))
        return sp.expand(sum(math.comb(m, j) * C_b ** (m - j) * (C_W / n) ** j * mom[j] for j in range(m + 1)))

    @functools.cache
    def moment(layer, m):  # E[(Σ^{(layer)})^m]
        if layer == 0:
            return K1**m
        poly = sp.Poly(cond_moment(m, widths[layer - 1]), S)
        return sp.expand(sum(c * moment(layer - 1, d) for (d,), c in poly.terms()))

    return [moment(L, m) for m in range(1, max_m + 1)]


@pytest.mark.parametrize("order,max_m", [(1, 4), (2, 4), pytest.param(3, 3, marks=pytest.mark.slow)])
def test_quadratic_activation_equals_exact_chain(order, max_m):
    """σ(z) = z + z²/4: <σ²>_K is quadratic in K, so every Taylor order of the engine matters."""
    widths = sp.symbols("n_1:3", positive=True)
    K1, C_W, C_b = sp.Rational(1, 2), sp.Rational(3, 2), sp.Rational(1, 5)
    exact = _exact_polynomial_chain(lambda z: z + z**2 / 4, 2, widths, C_W, C_b, K1, max_m)
    st = engine_moments("z + z**2/4", 2, order, K1=K1, C_W=C_W, C_b=C_b)
    for m in range(1, max_m + 1):
        # E z^{2m} = (2m−1)!! E[Σ^m] (conditional Gaussianity of the output)
        assert_equal(st.total_moment(2 * m), truncate(sp.factorial2(2 * m - 1) * exact[m - 1], widths, order))


# ------------------------------------------------------------------------------ numerics


@pytest.mark.parametrize("activation", ["tanh", "gelu", "erf"])
def test_mpmath_equals_numpy(activation):
    fw = FiniteWidth(activation, depth=3, order=2)
    kw = dict(K1=0.8, widths=[12, 20, 16], C_W=[1.0, 1.3, 1.1, 0.9], C_b=0.05)
    fast = fw.evaluate(**kw)
    precise = fw.evaluate(**kw, dps=30)
    for m in (2, 4, 6):
        a, b = float(fast.total_cumulant(m)), precise.total_cumulant(m)
        assert abs(a - float(b)) <= 1e-12 * abs(float(b)), (m, a, b)


def test_vectorised_over_grids_equals_pointwise():
    fw = FiniteWidth("tanh", depth=2, order=2)
    cw = np.array([0.8, 1.0, 1.6])[:, None]
    n = np.array([8.0, 32.0])[None, :]
    grid = fw.evaluate(K1=1.0, widths=[n, n], C_W=cw, C_b=0.1)
    k4 = grid.total_cumulant(4)
    assert k4.shape == (3, 2)
    for i, c in enumerate(cw[:, 0]):
        for j, w in enumerate(n[0]):
            pt = fw.evaluate(K1=1.0, widths=[w, w], C_W=c, C_b=0.1).total_cumulant(4)
            assert abs(k4[i, j] - pt) <= 1e-14 * abs(pt)


def test_graph_contains_only_what_the_output_needs():
    fw = FiniteWidth("tanh", depth=3, order=1)
    g = fw.graph()
    moments = {n for n in g if n[0] == "M"}
    # order 1 needs only E Σ (a=(1,)) and Var Σ (a=(2,)) at order 1, plus (a=(3,),(4,)) not at all
    assert moments == {("M", ell, (t,), 1) for ell in (1, 2, 3) for t in (1, 2)}
    import networkx as nx

    assert nx.is_directed_acyclic_graph(g)
    # V at layer 2 depends on V at layer 1 and on the kernel K_2
    assert ("M", 1, (2,), 1) in g.predecessors(("M", 2, (2,), 1))


# ------------------------------------------------------------------------------ bad input


def test_bad_input():
    with pytest.raises(PerturbError, match="order"):
        FiniteWidth("tanh", depth=2, order=-1)
    with pytest.raises(NotImplementedOrderError, match="not implemented"):
        FiniteWidth("tanh", depth=2, order=3, n_inputs=2)
    with pytest.raises(PerturbError, match="depth"):
        FiniteWidth("tanh", depth=0)
    fw = FiniteWidth("tanh", depth=2, order=1)
    with pytest.raises(PerturbError, match="expected 2 hidden widths"):
        fw.evaluate(K1=1.0, widths=[10])
    with pytest.raises(PerturbError, match=">= 1"):
        fw.evaluate(K1=1.0, widths=[10, 0.5])
    with pytest.raises(PerturbError, match="K1"):
        fw.evaluate(K1=0.0, widths=[10, 10])
    with pytest.raises(PerturbError, match="diverges"):
        FiniteWidth("exp(z**2)", depth=1, order=1).evaluate(K1=1.0, widths=[10])
