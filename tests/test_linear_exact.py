"""Exact deep-linear NTK moments (perturb.linear_exact) against independent methods.

* brute force: the NTK of a tiny linear network written out as a polynomial in its Gaussian
  weights (SymPy differentiation of the actual network), averaged monomial by monomial with
  E w^{2k} = (2k−1)!!;
* Monte Carlo of real linear (and |z|) networks (perturb.montecarlo.sample_ntk, fixed seeds,
  z-scores);
* the values quoted in issue 13 (derived there independently).
"""

from __future__ import annotations

import math

import pytest
import sympy as sp

from perturb.errors import PerturbError
from perturb.linear_exact import ntk_moment_exact, ntk_moments_exact
from perturb.montecarlo import assert_agrees, central_moment, moment, sample_ntk
from perturb.network import Network

n = sp.Symbol("n", positive=True)


def _gauss_expect(poly: sp.Poly) -> sp.Expr:
    """E of a polynomial in iid N(0, 1) variables: Σ_monomials c Π (e−1)!! (0 for odd e)."""
    tot = sp.Integer(0)
    for exps, c in poly.terms():
        if any(e % 2 for e in exps):
            continue
        tot += c * math.prod(sp.factorial2(e - 1) for e in exps)
    return tot


def _brute_moments(widths, n0, scales, lam_W, lam_b, ps=(1, 2)):
    """E Θ^p of a linear network by brute force: x = (1, …, 1), W^{(ℓ)} = s_ℓ w, w iid N(0, 1)."""
    L1 = len(widths) + 1
    dims = [n0, *widths, 1]
    ws, bs = [], []
    for ell in range(L1):
        ws.append(sp.Matrix(dims[ell + 1], dims[ell],
                            lambda i, j, e=ell: sp.Symbol(f"w{e}_{i}_{j}")))
        bs.append(sp.Matrix(dims[ell + 1], 1, lambda i, j, e=ell: sp.Symbol(f"b{e}_{i}")))
    h = sp.Matrix([1] * n0)
    for ell in range(L1):
        h = scales[ell] * ws[ell] * h + bs[ell]
    z = sp.expand(h[0])
    zero_b = {b: 0 for B in bs for b in B}
    theta = sp.Integer(0)
    for ell in range(L1):
        for w in ws[ell]:
            # ∂z/∂W = (1/s) ∂z/∂w, per-parameter factor λ_W/n_{ℓ−1}
            theta += sp.Rational(lam_W[ell], dims[ell]) * (sp.diff(z, w) / scales[ell]) ** 2
        for b in bs[ell]:
            theta += lam_b[ell] * sp.diff(z, b) ** 2
    theta = sp.expand(theta.xreplace(zero_b))
    gens = [w for W in ws for w in W]
    return [_gauss_expect(sp.Poly(sp.expand(theta ** p), *gens)) for p in ps]


@pytest.mark.parametrize("widths, n0, scales, lam_W, lam_b", [
    ((1,), 1, (1, 1), (1, 1), (0, 0)),
    ((2,), 2, (sp.Rational(1, 2), 2), (3, sp.Rational(1, 2)), (0, 0)),
    ((2,), 1, (1, sp.Rational(1, 2)), (1, 1), (sp.Rational(1, 3), 2)),
    ((2, 1), 1, (1, sp.Rational(1, 2), 2), (1, 2, 3), (0, 1, sp.Rational(1, 2))),
    ((1, 2), 2, (sp.Rational(1, 2), 1, sp.Rational(1, 3)), (2, 1, 1), (1, 0, 0)),
    ((1, 1, 2), 1, (1, 2, 1, sp.Rational(1, 2)), (1, 1, 1, 1), (0, 0, 0, 0)),
])
def test_matches_brute_force_gaussian_moments(widths, n0, scales, lam_W, lam_b):
    m1, m2 = _brute_moments(widths, n0, scales, lam_W, lam_b)
    dims = [n0, *widths]
    C_W = [scales[ell] ** 2 * dims[ell] for ell in range(len(widths) + 1)]
    got = ntk_moments_exact(list(widths), 1, C_W=C_W, lambda_W=list(lam_W), lambda_b=list(lam_b))
    assert got["mean"] == m1
    assert got["second"] == m2


def test_third_moment_brute_force():
    (m3,) = _brute_moments((2,), 1, (1, 1), (1, 1), (0, 0), ps=(3,))
    assert ntk_moment_exact([2], 3, C_W=[1, 2], lambda_W=[1, 1]) == m3


def test_issue13_reference_values():
    # issue 13 ("Why"): C_W = 1, |x|²/n0 = 1, equal widths n, NTK parameterisation
    ref = {1: 4 / n, 2: 4 * (5 * n + 4) / n**2, 3: 4 * (14 * n**2 + 23 * n + 13) / n**3}
    for L, v in ref.items():
        got = ntk_moments_exact([n] * L)
        assert sp.simplify(got["var"] - v) == 0
        assert got["mean"] == L + 1


def test_symbolic_equals_integer_widths_and_general_layers():
    n1, n2, n3 = sp.symbols("n1:4", positive=True)
    cw, lw, lb = [2, sp.Rational(1, 3), 3, 1], [1, 2, 3, 4], [sp.Rational(1, 2), 0, 1, 2]
    sym = ntk_moments_exact([n1, n2, n3], sp.Rational(3, 2), C_W=cw, lambda_W=lw, lambda_b=lb)
    num = ntk_moments_exact([3, 5, 2], sp.Rational(3, 2), C_W=cw, lambda_W=lw, lambda_b=lb)
    for k in ("mean", "second", "var"):
        assert sym[k].subs({n1: 3, n2: 5, n3: 2}) == num[k]


def test_order_one_over_n_equals_the_perturbative_engine():
    # the 1/n coefficients of E Θ and Var Θ must equal the order-1 fold of perturb.ntk (a
    # different derivation: conditional Gaussian laws and Price's rule), per-layer C's and λ's
    from perturb.ntk.chain import ntk_statistics_exact

    for L, cw, lw in ((1, 1, None), (3, 1, None), (2, [2, sp.Rational(1, 2), 3], [1, 2, 1])):
        exact = ntk_moments_exact([n] * L, 1, C_W=cw, lambda_W=lw)
        st = ntk_statistics_exact("linear", [n] * L, [1], C_W=cw, C_b=0, lambda_W=lw, lambda_b=0)
        assert sp.simplify(sp.limit(sp.cancel(exact["mean"]), n, sp.oo) - st.H) == 0
        assert sp.simplify(sp.limit(sp.cancel(n * (exact["mean"] - st.H)), n, sp.oo) - n * (st.mean - st.H)) == 0
        assert sp.simplify(sp.limit(sp.cancel(n * exact["var"]), n, sp.oo) - n * st.var) == 0


@pytest.mark.parametrize("act, widths, C_W, seed", [
    ("linear", (6, 6), 1.0, 11),
    ("linear", (4, 7, 5), (1.5, 0.5, 2.0, 1.0), 12),
    ("abs", (6, 6), 1.0, 13),     # |z|: D² = I, the same exact law as linear
])
def test_monte_carlo_real_networks(act, widths, C_W, seed):
    net = Network(act, widths=widths, C_W=C_W, lambda_b=0.0)
    x = [[0.6, -1.1, 0.9]]
    q = sp.Rational(str(sum(v * v for v in x[0]))) / 3
    cw = [sp.Rational(str(c)) for c in (C_W if isinstance(C_W, tuple) else [C_W] * (len(widths) + 1))]
    exact = ntk_moments_exact(list(widths), q, C_W=cw)
    th = sample_ntk(net, x, 40_000, seed=seed)[:, 0, 0]
    assert_agrees(float(exact["mean"]), moment(th, 1), label=f"{act} {widths} E Θ")
    assert_agrees(float(exact["var"]), central_moment(th, 2), label=f"{act} {widths} Var Θ")


def test_bad_input():
    with pytest.raises(PerturbError, match="widths must be >= 1"):
        ntk_moments_exact([0, 3])
    with pytest.raises(PerturbError, match="C_W has 2 entries"):
        ntk_moments_exact([3, 3], C_W=[1, 1])
    with pytest.raises(PerturbError, match="x_norm2_over_n0 must be > 0"):
        ntk_moments_exact([3], 0)
    with pytest.raises(PerturbError, match="largest moment order"):
        ntk_moment_exact([3], 9)
    with pytest.raises(PerturbError, match="no exact NTK chain"):
        from perturb.ntk_exact import ntk_moment
        ntk_moment("tanh", [3])


def test_one_neuron_network_is_chi_square_2():
    # L = 1, n_0 = n_1 = 1, C_W = 1: Θ = w_2² x² + w_1² x² = χ²_2, E Θ^p = 2·4⋯(2p)
    for p in (1, 2, 3, 4):
        assert ntk_moment_exact([1], p) == math.prod(2 + 2 * j for j in range(p))


def test_double_scaling_prefactor():
    # docs/relu_exact.md: E Θ²/(E Θ)² e^{−β} -> A(ξ) = 1/3 + 4/(3κξ) − 4(1 − e^{−κξ})/(3κ²ξ²) as
    # L, n -> ∞ at ξ = L/n, κ = 3 for linear nets (derived there from the transfer matrix's rates).
    # Exact values at n = 32, 64, 128, ξ = 1, extrapolated in 1/n (second-order Richardson).
    def scaled(nn):
        r = ntk_moment_exact([nn] * nn, 2) / ntk_moments_exact([nn] * nn)["mean"] ** 2
        return float(r / sp.Rational(nn + 2, nn) ** nn)

    v = [scaled(nn) for nn in (32, 64, 128)]
    r1 = [2 * v[1] - v[0], 2 * v[2] - v[1]]
    kappa = 3
    formula = 1 / 3 + 4 / (3 * kappa) - 4 * (1 - math.exp(-kappa)) / (3 * kappa**2)
    assert abs((4 * r1[1] - r1[0]) / 3 - formula) < 1e-5


def test_series_in_one_over_n():
    # the 1/n expansion of issue 13's closed forms, term by term (the shape of ntk-stats --series)
    from perturb.ntk_exact import ntk_series

    assert ntk_series("linear", 1, 2) == {"mean": [2, 0, 0], "var": [0, 4, 0]}
    assert ntk_series("linear", 2, 2) == {"mean": [3, 0, 0], "var": [0, 20, 16]}
    assert ntk_series("linear", 3, 3) == {"mean": [4, 0, 0, 0], "var": [0, 56, 92, 52]}
    with pytest.raises(PerturbError, match="order must be"):
        ntk_series("linear", 2, 9)
