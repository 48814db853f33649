"""The derivation engine (perturb.engine): contraction rule, order-1 map, fold, against independent routes.

* The row contraction (Gaussian integration by parts over weight rows) is checked against exact
  Gaussian moments of an explicit small layer (m = 2 neurons, rational M and σ): every monomial in
  the independent Gaussians b, W_1, W_2 is integrated by its own moments (Isserlis), no IBP.
* The order-1 layer map is PDLT's (REFERENCE §3) — tests/test_ntk_stats.py compares
  perturb.ntk.derive (now a front end over the engine) with the typed recursions; here the engine's
  own map is compared with it directly.
* The fold's output assembly (mean, var, Cov(z², Θ)) is compared with perturb.ntk.chain.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from perturb.activations import Z
from perturb.engine.layermap import derive_layer_map, moment_symbol, ref_symbol
from perturb.engine.wick import contract_graph, hermite_weight
from perturb.gaussian.atom import atom_canonical

# ----------------------------------------------------------------------------- an explicit layer

m = 2
c = sp.Rational(3, 5)            # C_W/m
C_b = sp.Rational(1, 4)
sig = sp.Matrix([sp.Rational(1, 2), sp.Rational(-2, 3)])
M = sp.Matrix([[sp.Rational(3, 2), sp.Rational(1, 3)], [sp.Rational(1, 3), sp.Rational(5, 7)]])
Sigma = C_b + c * (sig.T * sig)[0]


def _gauss_moment(k: int, var) -> sp.Expr:
    return sp.S.Zero if k % 2 else sp.factorial2(k - 1) * var ** sp.Rational(k, 2)


def _exact_expectation(expr: sp.Expr, rows: int) -> sp.Expr:
    """E over independent b_r ~ N(0, C_b), W_{r,j} ~ N(0, c), monomial by monomial."""
    bs = sp.symbols(f"b0:{rows}")
    Ws = [sp.symbols(f"W{r}_0:{m}") for r in range(rows)]
    gens = list(bs) + [w for row in Ws for w in row]
    poly = sp.Poly(sp.expand(expr), *gens)
    out = sp.S.Zero
    for powers, coef in poly.terms():
        t = coef
        for g, k in zip(gens, powers):
            t *= _gauss_moment(k, C_b if g in bs else c)
        out += t
    return out, bs, Ws


def _bilinear(Wa, Wb, normal: bool):
    q = (sp.Matrix([Wa]) * M * sp.Matrix(Wb))[0]
    return q - c * M.trace() if normal else q


def _engine_value(rows: int, edges, powers) -> sp.Expr:
    """Σ over contractions of Π_r E[(z^p_r)^{(d_r)}] × Π cycles c^a tr M^a × Π chains c^{a+1} σᵀM^aσ."""
    out = sp.S.Zero
    for (ds, cycles, chains), mult in contract_graph(rows, edges).items():
        t = sp.Integer(mult)
        for p, d in zip(powers, ds):
            t *= _gauss_moment(p - d, Sigma) * sp.ff(p, d) if d <= p else 0   # E[(z^p)^{(d)}]
        for a in cycles:
            t *= c**a * (M**a).trace()
        for a in chains:
            t *= c ** (a + 1) * (sig.T * M**a * sig)[0]
        out += t
    return sp.nsimplify(out)


@pytest.mark.parametrize("powers, edges", [
    ((0,), ((0, 0, True),)),
    ((2,), ((0, 0, True),)),
    ((2,), ((0, 0, True), (0, 0, True))),
    ((4,), ((0, 0, True), (0, 0, False))),
    ((3,), ((0, 0, True), (0, 0, True), (0, 0, True))),
])
def test_one_row_contraction_equals_exact_gaussian_moments(powers, edges):
    def expr(bs, Ws):
        z = bs[0] + (sp.Matrix([Ws[0]]) * sig)[0]
        out = z ** powers[0]
        for _, _, normal in edges:
            out *= _bilinear(Ws[0], Ws[0], normal)
        return out

    bs = sp.symbols("b0:1")
    Ws = [sp.symbols(f"W0_0:{m}")]
    exact, _, _ = _exact_expectation(expr(bs, Ws), 1)
    assert sp.nsimplify(exact - _engine_value(1, edges, powers)) == 0


@pytest.mark.parametrize("powers, edges", [
    ((1, 1), ((0, 1, False),)),
    ((0, 0), ((0, 1, False), (0, 1, False))),
    ((2, 2), ((0, 1, False), (0, 1, False))),
    ((2, 1), ((0, 0, True), (0, 1, False))),
    ((1, 3), ((0, 1, False), (1, 1, True), (0, 1, False))),
])
def test_two_row_contraction_equals_exact_gaussian_moments(powers, edges):
    bs = sp.symbols("b0:2")
    Ws = [sp.symbols(f"W{r}_0:{m}") for r in range(2)]
    zs = [bs[r] + (sp.Matrix([Ws[r]]) * sig)[0] for r in range(2)]
    e = zs[0] ** powers[0] * zs[1] ** powers[1]
    for ra, rb, normal in edges:
        e *= _bilinear(Ws[ra], Ws[rb], normal)
    exact, _, _ = _exact_expectation(e, 2)
    assert sp.nsimplify(exact - _engine_value(2, edges, powers)) == 0


def test_contraction_check_can_fail():
    """A wrong rule (dropping the normal ordering) is detected by the same comparison."""
    bs = sp.symbols("b0:1")
    Ws = [sp.symbols(f"W0_0:{m}")]
    z = bs[0] + (sp.Matrix([Ws[0]]) * sig)[0]
    exact, _, _ = _exact_expectation(z**2 * _bilinear(Ws[0], Ws[0], True), 1)
    assert sp.nsimplify(exact - _engine_value(1, ((0, 0, False),), (2,))) != 0


@pytest.mark.parametrize("d", range(5))
def test_hermite_weights_are_steins_lemma(d):
    """E[F h_d] = E[F^{(d)}] for F = z^p, z ~ N(0, S) (symbolic S): the form used for kinked σ."""
    S = sp.Symbol("S", positive=True)
    for p in range(d, d + 5):
        lhs = sum(coef * _gauss_moment(k, S) for (k,), coef in
                  sp.Poly(sp.expand(Z**p * hermite_weight(d, S) * S**d), Z).terms()) / S**d
        rhs = sp.ff(p, d) * _gauss_moment(p - d, S)
        assert sp.simplify(lhs - rhs) == 0


# ----------------------------------------------------------------------------- the order-1 map


def test_engine_order1_map_is_ntk_derive():
    from perturb.ntk.derive import derive_ntk_layer_map

    lm = derive_layer_map(1)
    rec = derive_ntk_layer_map()
    st = rec.syms.stats
    keys = {"G1": (("S", 1),), "V": (("S", 2),), "H1": (("O", 1),), "A": (("O", 2),), "D": (("S", 1), ("O", 1))}
    sub = {moment_symbol(a, 1): st[k] for k, a in keys.items()}
    sub.update({ref_symbol("T2"): st["B"], ref_symbol("R1"): st["F"]})
    assert sorted(lm.words) == ["O", "R1", "S", "T2"]        # the closure at order 1: (Σ, Ω | T, R)
    for k, a in keys.items():
        assert atom_canonical(lm.moments[a][1].xreplace(sub) - rec[k]) == 0
    for k, w in (("K", "S"), ("H", "O"), ("B", "T2"), ("F", "R1")):
        assert atom_canonical(lm.refs[w].xreplace(sub) - rec[k]) == 0


def test_fold_order1_equals_ntk_chain():
    from perturb.engine.fold import ntk_series
    from perturb.ntk.chain import ntk_statistics

    s = ntk_series("tanh", [8, 12, 10], [1.0, 0.3], C_W=1.2, C_b=0.1, order=1)
    st = ntk_statistics("tanh", [8, 12, 10], [1.0, 0.3], C_W=1.2, C_b=0.1)
    assert sum(s["mean"]) == pytest.approx(float(st.mean), rel=1e-13)
    assert sum(s["var"]) == pytest.approx(float(st.var), rel=1e-13)
    assert sum(s["cov_z2_ntk"]) == pytest.approx(float(st.cov_z2_ntk), rel=1e-13)
    assert s["var"][0] == 0 and s["mean"][0] == pytest.approx(float(st.H), rel=1e-14)
    # Cov(Σ, Θ) = D/n_L at order 1
    assert s["cov_sigma_ntk"][1] == pytest.approx(float(st.last("D")) / 10, rel=1e-13)
    assert np.isfinite(s["cov_sigma_ntk"][1])


def test_orders_beyond_the_limit_are_refused():
    from perturb.errors import NotImplementedOrderError, PerturbError

    with pytest.raises(NotImplementedOrderError, match="order 3"):
        derive_layer_map(3)
    with pytest.raises(PerturbError, match="non-negative"):
        derive_layer_map(-1)


def test_partial_matchings_are_counted_by_the_telephone_numbers():
    """q legs of one row have T(q) = 1, 1, 2, 4, 10, 26, 76 partial matchings (OEIS A000085)."""
    from perturb.engine.wick import contract_row_legs

    assert [len(contract_row_legs(q, ())) for q in range(7)] == [1, 1, 2, 4, 10, 26, 76]
