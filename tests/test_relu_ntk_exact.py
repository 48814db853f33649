"""The exact finite-width ReLU NTK at one input (perturb.ntk_exact) against independent methods.

* the exact NTK mean of perturb.relu_exact (derived separately, by the N_ℓ-counting argument);
* one hidden layer: Θ is a sum of iid per-neuron terms, whose moments are elementary;
* the order-1/n fold of perturb.ntk (conditional Gaussian laws, a different derivation): the
  1/n coefficients of E Θ and Var Θ must agree exactly;
* Monte Carlo of real ReLU networks (perturb.montecarlo.sample_ntk, fixed seeds). The standard
  error of the sample mean of Θ² is the exact one, √((E Θ⁴ − (E Θ²)²)/N), from the same
  derivation (the jackknife error of a heavy-tailed mean is itself unreliable);
* the whole law: a two-sample Kolmogorov–Smirnov test between the scalar chain's samples and
  real networks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
import sympy as sp

from perturb.errors import PerturbError
from perturb.montecarlo import Estimate, assert_agrees, sample_ntk
from perturb.network import Network
from perturb.ntk_exact import (
    layer_moment,
    ntk_moment,
    relu_ntk_moments,
    sample_theta,
    transfer_growth,
)
from perturb.relu_exact import ntk_mean

n = sp.Symbol("n", positive=True)


@pytest.mark.parametrize("widths, x, C_W, lw, lb", [
    ([8, 8], [1, 0], 2, None, 0),
    ([3, 5, 2], [1, 2, -1], [2, 1, 3, sp.Rational(1, 2)], [1, 2, 3, 4], 0),
    ([1, 2], [1], 2, 1, 1),
    ([2, 1, 3], [0.5, 1], [1, 2, 2, 3], [1, 0, 2, 1], [1, sp.Rational(1, 2), 2, 3]),
])
def test_mean_equals_the_independent_exact_mean(widths, x, C_W, lw, lb):
    got = relu_ntk_moments(widths, x, C_W=C_W, lambda_W=lw, lambda_b=lb)["mean"]
    to_f = (lambda v: [str(t) for t in v]) if isinstance(C_W, list) else str
    ref = ntk_mean(widths, x, C_W=to_f(C_W), lambda_W=None if lw is None else (to_f(lw) if isinstance(lw, list) else lw),
                   lambda_b=to_f(lb) if isinstance(lb, list) else lb)
    assert got == sp.Rational(ref.numerator, ref.denominator)


@pytest.mark.parametrize("width", [1, 2, 5, 8])
def test_one_hidden_layer_is_a_sum_of_iid_neurons(width):
    # Θ = λb₂ + Σ_i 1{ξ_i > 0} (a w_i² + b ξ_i²), w_i, ξ_i iid N(0, 1) (weights of layer 2, and
    # layer-1 preactivations / √(C₁q)); per neuron E t = (a+b)/2, E t² = (3a² + 2ab + 3b²)/2
    C1, C2, lw1, lw2, lb1, lb2, q = 2, 3, sp.Rational(1, 2), 2, 1, sp.Rational(1, 3), sp.Rational(5, 2)
    a = sp.Rational(C2, width) * (lb1 + lw1 * q)
    b = lw2 * C1 * q / width
    Et, Et2 = (a + b) / 2, (3 * a**2 + 2 * a * b + 3 * b**2) / 2
    mean = lb2 + width * Et
    second = mean**2 + width * (Et2 - Et**2)
    x = [1, 2]                                    # |x|²/n0 = 5/2
    got = relu_ntk_moments([width], x, C_W=[C1, C2], lambda_W=[lw1, lw2], lambda_b=[lb1, lb2])
    assert (got["mean"], got["second"]) == (mean, second)


def test_layer_moments_against_direct_binomial_sums():
    for nn in (1, 3, 6):
        for a, b in ((0, 0), (1, 0), (2, 0), (1, 1), (0, 2), (2, 2)):
            direct = sum(sp.binomial(nn, B) * sp.Rational(1, 2**nn) * sp.rf(sp.Rational(B, 2), a) * 2**a
                         * (sp.rf(sp.Rational(B - 1, 2), b) * 2**b) for B in range(1, nn + 1))
            assert layer_moment("relu", nn, a, b) == direct
            assert layer_moment("relu", n, a, b).subs(n, nn) == direct


def test_order_one_over_n_equals_the_perturbative_engine():
    from perturb.ntk.chain import ntk_statistics_exact

    for L in (1, 2, 3, 4):
        ex = relu_ntk_moments([n] * L, [1], C_W=2, lambda_W=1)
        drop = {sp.Pow(2, -n): 0}                                  # exponentially small in n
        eng = ntk_statistics_exact("relu", [n] * L, [1], C_W=2, C_b=0, lambda_W=1, lambda_b=0)
        assert sp.limit(sp.cancel(ex["mean"].subs(drop)), n, sp.oo) == eng.H
        assert sp.simplify(sp.limit(sp.cancel(n * ex["var"].subs(drop)), n, sp.oo) - n * eng.var) == 0
    # general layers: per-layer C_W and λ's
    cw, lw = [2, 1, 3], [1, 2, sp.Rational(1, 2)]
    ex = relu_ntk_moments([n, n], [1, 1], C_W=cw, lambda_W=lw)
    eng = ntk_statistics_exact("relu", [n, n], [1, 1], C_W=cw, C_b=0, lambda_W=lw, lambda_b=0)
    assert sp.simplify(sp.limit(sp.cancel(n * ex["var"].subs({sp.Pow(2, -n): 0})), n, sp.oo) - n * eng.var) == 0


def test_symbolic_widths_equal_integer_widths():
    n1, n2 = sp.symbols("n1:3", positive=True)
    sym = relu_ntk_moments([n1, n2], [1, 1], C_W=[2, 1, 3], lambda_W=[1, 2, 1], lambda_b=[0, 1, 2])
    num = relu_ntk_moments([3, 5], [1, 1], C_W=[2, 1, 3], lambda_W=[1, 2, 1], lambda_b=[0, 1, 2])
    for k in ("mean", "second", "var"):
        assert sp.simplify(sym[k].subs({n1: 3, n2: 5}) - num[k]) == 0


def test_exponential_growth_in_depth():
    # E Θ²/(E Θ)² grows by E X²/(E X)² = 1 + 5/n per layer at large depth (ReLU), 1 + 2/n (linear)
    assert transfer_growth("relu", n) == (n + 5) / n
    assert transfer_growth("linear", n) == (n + 2) / n

    def ratio(L):
        return ntk_moment("relu", [8] * L, 2, C_W=2) / ntk_moment("relu", [8] * L, 1, C_W=2) ** 2

    steps = [float(ratio(L + 1) / ratio(L)) for L in (5, 10, 20, 40)]
    gaps = [13 / 8 - s for s in steps]
    assert all(g > 0 for g in gaps) and all(g2 < g1 / 1.8 for g1, g2 in zip(gaps, gaps[1:], strict=False))


def test_depth_limit_is_e_beta_over_three():
    # derived in docs/relu_exact.md: E Θ²/(E Θ)² = (1/3) e^β (1 + O(1/L)) with e^β = (E X²/(E X)²)^L:
    # each copy's backward window weighs 1/3 against the other copy's forward factor, the output
    # layer gives E (χ²_1)² = 3.  Richardson extrapolation in 1/L from L = 100, 200.
    for kind, nn, cw in (("relu", 8, 2), ("linear", 3, 1)):
        g = transfer_growth(kind, nn)

        def scaled(L, kind=kind, nn=nn, cw=cw, g=g):
            r = ntk_moment(kind, [nn] * L, 2, C_W=cw) / ntk_moment(kind, [nn] * L, 1, C_W=cw) ** 2
            return float(r / g**L)

        assert abs(2 * scaled(200) - scaled(100) - 1 / 3) < 1e-3, kind


@pytest.mark.slow
def test_double_scaling_prefactor():
    # A(ξ) = 1/3 + 4/(3κξ) − 4(1 − e^{−κξ})/(3κ²ξ²), κ = 6 (derived in docs/relu_exact.md), against
    # the exact values at n = 32, 64, 128, L = ξn, extrapolated in 1/n (second-order Richardson)
    for xi in (sp.Rational(1, 2), 1):
        v = []
        for nn in (32, 64, 128):
            L = int(xi * nn)
            r = ntk_moment("relu", [nn] * L, 2, C_W=2) / ntk_moment("relu", [nn] * L, 1, C_W=2) ** 2
            v.append(float(r / sp.Rational(nn + 5, nn) ** L))
        r1 = [2 * v[1] - v[0], 2 * v[2] - v[1]]
        k, x = 6, float(xi)
        formula = 1 / 3 + 4 / (3 * k * x) - 4 * (1 - math.exp(-k * x)) / (3 * k * k * x * x)
        assert abs((4 * r1[1] - r1[0]) / 3 - formula) < 1e-4


def _check_moments_mc(widths, N, seed):
    x = [[1.0, 0.0]]
    mom = relu_ntk_moments(widths, [1, 0], C_W=2, p_max=4)["moments"]
    m1, m2, m4 = (float(mom[p]) for p in (1, 2, 4))
    th = sample_ntk(Network("relu", widths=tuple(widths), C_W=2.0), x, N, seed=seed)[:, 0, 0]
    # exact standard errors of the sample means of Θ and Θ² (E Θ⁴ from the same derivation)
    assert_agrees(m1, Estimate(th.mean(), math.sqrt((m2 - m1**2) / N), N), label=f"E Θ {widths}")
    assert_agrees(m2, Estimate((th**2).mean(), math.sqrt((m4 - m2**2) / N), N), label=f"E Θ² {widths}")
    return th.var() / th.mean() ** 2, (m2 - m1**2) / m1**2


@pytest.mark.parametrize("L, N, seed", [(1, 40_000, 21), (2, 60_000, 22), (3, 100_000, 23)])
def test_monte_carlo_real_relu_networks_n8(L, N, seed):
    _check_moments_mc([8] * L, N, seed)


def test_monte_carlo_ragged_widths_and_biases():
    widths, cw, lw, lb = (5, 3, 7), [2.0, 1.5, 2.5, 1.0], [1.0, 2.0, 0.5, 1.0], [0.5, 1.0, 0.0, 2.0]
    net = Network("relu", widths=widths, C_W=cw, C_b=0.0, lambda_W=lw, lambda_b=lb)
    x = [[0.5, -1.0, 2.0]]
    mom = relu_ntk_moments(list(widths), x[0], C_W=cw, lambda_W=lw, lambda_b=lb, p_max=4)["moments"]
    m1, m2, m4 = (float(mom[p]) for p in (1, 2, 4))
    N = 60_000
    th = sample_ntk(net, x, N, seed=31)[:, 0, 0]
    assert_agrees(m1, Estimate(th.mean(), math.sqrt((m2 - m1**2) / N), N), label="E Θ ragged")
    assert_agrees(m2, Estimate((th**2).mean(), math.sqrt((m4 - m2**2) / N), N), label="E Θ² ragged")


def test_chain_sampler_has_the_law_of_real_networks():
    # the derivation gives the whole law, not only moments: two-sample KS against real networks
    for act, widths, cw in (("relu", (4, 6, 3), 2.0), ("linear", (3, 4), 1.0), ("abs", (3, 4), 1.0)):
        net = Network(act, widths=widths, C_W=cw, lambda_b=0.5)
        real = sample_ntk(net, [[1.0, -0.5]], 20_000, seed=41)[:, 0, 0]
        chain = sample_theta(act if act != "abs" else "linear", list(widths), 20_000, seed=42,
                             x_norm2_over_n0=0.625, C_W=cw, lambda_b=0.5)
        assert st.ks_2samp(real, chain).pvalue > 1e-3, act


@pytest.mark.slow
@pytest.mark.parametrize("widths, N, seed", [
    ([8] * 4, 300_000, 51), ([8] * 5, 600_000, 52), ([8] * 6, 1_500_000, 53),
    ([16] * 2, 100_000, 54), ([16] * 4, 200_000, 55), ([16] * 6, 300_000, 56),
])
def test_monte_carlo_real_relu_networks_deep(widths, N, seed):
    # issue 15's Monte Carlo at n = 8 found Var Θ/(E Θ)² ≈ 3.5, 5.8, 9.7 for L = 4, 5, 6; exact:
    # 3.526, 5.939, 9.733 (the heavy tail makes sample variances low more often than high)
    mc, exact = _check_moments_mc(widths, N, seed)
    assert np.isfinite(mc) and exact > 0


def test_bad_input():
    with pytest.raises(PerturbError, match="C_b must be 0"):
        relu_ntk_moments([4], [1], C_b=0.1)
    with pytest.raises(PerturbError, match="x = 0"):
        relu_ntk_moments([4], [0, 0])
    with pytest.raises(PerturbError, match="widths must be >= 1"):
        relu_ntk_moments([4, 0], [1])
    with pytest.raises(PerturbError, match="no exact NTK chain.*ntk_exact_leaky"):
        ntk_moment("leaky_relu:0.1", [4])
    with pytest.raises(PerturbError, match="p_max"):
        relu_ntk_moments([4], [1], p_max=1)
    with pytest.raises(PerturbError, match="integers for sampling"):
        sample_theta("relu", [n], 10, seed=0)


def _cli(capsys, *args):
    from perturb.cli import main

    try:
        rc = main(["relu-exact", *args])
    except SystemExit as exc:          # argparse usage errors
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cli_ntk_keys(capsys):
    import json

    rc, out, err = _cli(capsys, "--widths", "8,8,8", "--x", "1,0", "--moment", "2", "--ntk", "--json")
    assert rc == 0, err
    d = json.loads(out)
    ref = relu_ntk_moments([8, 8, 8], [1, 0])
    assert d["ntk_mean"] == float(ref["mean"]) == 4.0
    assert d["ntk_var"] == pytest.approx(float(ref["var"]), rel=1e-15)
    assert d["ntk_var_exact"] == str(ref["var"]) == "1017/32"     # Var/(E)² = 1017/512 = 1.986
    rc, out, err = _cli(capsys, "--widths", "3,2", "--x", "1", "--cw", "2,1,3", "--moment", "2", "--ntk",
                        "--lambda-w", "1,2,0.5", "--lambda-b", "1,0.5,2", "--dps", "30", "--json")
    assert rc == 0, err
    d = json.loads(out)
    ref = relu_ntk_moments([3, 2], [1], C_W=[2, 1, 3], lambda_W=[1, 2, sp.Rational(1, 2)],
                           lambda_b=[1, sp.Rational(1, 2), 2])
    assert d["ntk_mean_exact"] == str(ref["mean"]) and d["ntk_var_exact"] == str(ref["var"])
    rc, out, _ = _cli(capsys, "--widths", "8", "--x", "1", "--moment", "2", "--json")
    assert rc == 0 and "ntk_mean" not in json.loads(out)


@pytest.mark.parametrize("args, match", [
    (("--lambda-w", "1"), "add --ntk"),
    (("--ntk", "--lambda-w", "1,2,3"), "lambda_W has 3 entries"),
    (("--ntk", "--lambda-b", "-1"), "lambda_b must be >= 0"),
])
def test_cli_ntk_bad_input(capsys, args, match):
    rc, out, err = _cli(capsys, "--widths", "8", "--x", "1", "--moment", "2", *args)
    assert rc == 2 and match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
