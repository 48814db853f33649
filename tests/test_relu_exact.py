"""Exact ReLU statistics at one input (perturb.relu_exact), checked by independent methods:
REFERENCE §4 values, two independent routes to each moment (binomial sums vs factorial moments),
mpmath quadrature of the Meijer-G density at 30 digits, exact enumeration of Rademacher networks,
the §1 infinite-width NTK recursion and the §3 order-1/n recursions.  Monte Carlo checks are in
tests/test_relu_exact_mc.py.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp

from perturb.errors import PerturbError
from perturb.relu_exact import (
    WEIGHT_MU4,
    beta,
    beta_approx,
    chi2_binomial_moment,
    cumulants_from_moments,
    fourth_moment_nongaussian,
    layer_moment_symbolic,
    lognormal_error,
    moment_series,
    moment_symbolic,
    ntk_mean,
    relu_jacobian_law,
    relu_output_law,
)

N = sp.Symbol("n", positive=True)


def _mp(q: Fraction) -> mpmath.mpf:
    return mpmath.mpf(q.numerator) / q.denominator


# ---------------------------------------------------------------------------------------------
# moments
# ---------------------------------------------------------------------------------------------

# REFERENCE §4 ([LH §5]): m_k(n) = (2/n)^k E[B(B+2)⋯(B+2k−2)], B ~ Bin(n, ½).  Test data only.
REF_M = {
    1: lambda n: Fraction(1),
    2: lambda n: Fraction(n + 5, n),
    3: lambda n: Fraction((n + 4) * (n + 11), n ** 2),
    4: lambda n: Fraction((n + 9) * (n * n + 21 * n + 62), n ** 3),
}


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 50])
def test_layer_moment_matches_reference_m_k(n, k):
    assert Fraction(2, n) ** k * chi2_binomial_moment(n, k) == REF_M[k](n)


def _direct(n, k):
    """Σ_B C(n,B) 2^{−n} B(B+2)⋯(B+2k−2): the definition, summed directly."""
    return sum(Fraction(math.comb(n, b), 2 ** n) * math.prod(b + 2 * j for j in range(k))
               for b in range(n + 1))


@pytest.mark.parametrize("k", range(0, 8))
def test_layer_moment_three_routes(k):
    """Direct binomial sum == integer factorial-moment route == SymPy polynomial, at integer n."""
    poly = layer_moment_symbolic(k, N)
    for n in (1, 2, 3, 5, 13, 40):
        v = poly.subs(N, n)
        assert Fraction(int(v.p), int(v.q)) == chi2_binomial_moment(n, k) == _direct(n, k)


def test_symbolic_moment_equals_numeric_with_per_layer_cw():
    cws = [Fraction(3, 2), 2, Fraction(5, 2), 1]
    ws = [3, 5, 4]
    x = [1, Fraction(1, 2), Fraction(-3, 10)]
    law = relu_output_law(ws, x, C_W=cws)
    k1 = Fraction(3, 2) * sum(v * v for v in x) / 3
    for M in (2, 4, 6, 8):
        sym = moment_symbolic(M, ws, C_W=[sp.Rational(c) for c in cws], K1=sp.Rational(k1))
        assert sp.Rational(sym) == sp.Rational(law.moment(M).numerator, law.moment(M).denominator)


def test_kurtosis_identity_exact():
    """E z⁴ / (E z²)² = 3 Π (1 + 5/n_ℓ) exactly at criticality (REFERENCE §4)."""
    ws = [2, 7, 11, 30]
    law = relu_output_law(ws, [0.3, -1.2])
    assert law.moment(4) / law.moment(2) ** 2 == 3 * math.prod(Fraction(n + 5, n) for n in ws)
    assert law.moment(2) == Fraction(2) * Fraction(9 + 144, 100) / 2    # E z² = K^{(1)}


def test_cumulants_from_moments_known_laws():
    assert cumulants_from_moments([1, 0, 1, 0, 3, 0, 15, 0, 105]) == [0, 0, 1, 0, 0, 0, 0, 0, 0]
    # Poisson(1): Bell numbers as moments, all cumulants 1
    assert cumulants_from_moments([1, 1, 2, 5, 15, 52]) == [0, 1, 1, 1, 1, 1]


def test_cumulant_hierarchy_relation():
    """κ_{2k}(z) = (2k)!/(2^k k!) κ_k(Σ) (REFERENCE §3), κ_k(Σ) from the exact Σ-moments."""
    law = relu_output_law([3, 4], [1, 1], C_W=[1.5, 2, 2.5])
    sig = cumulants_from_moments([law.sigma_moment(j) for j in range(5)])
    for k in (1, 2, 3, 4):
        assert law.cumulant(2 * k) == Fraction(math.factorial(2 * k), 2 ** k * math.factorial(k)) * sig[k]


def test_p_zero_by_enumeration():
    """P[z=0] = P[some B_ℓ = 0], by enumerating all mask patterns of tiny layers."""
    ws = [1, 2, 3]
    dead = sum(1 for masks in itertools.product(*[itertools.product([0, 1], repeat=n) for n in ws])
               if any(sum(m) == 0 for m in masks))
    assert relu_output_law(ws, [1]).p_zero() == Fraction(dead, 2 ** sum(ws))


def test_jacobian_second_moment_lh124():
    """E (∂z/∂x_p)² = 2/n_0 at criticality [LH (124)], any widths."""
    for n0, ws in ((3, [5, 5]), (7, [1, 2, 9])):
        assert relu_jacobian_law(ws, n0).moment(2) == Fraction(2, n0)
    law = relu_jacobian_law([4, 4], 2, u=[3, 4])
    assert law.moment(2) == 25 * Fraction(2, 2)


def test_norm2_moment_multi_output():
    """‖J u‖⁴ over m outputs = m E(J u)⁴ + m(m−1) E[(J u)_1²(J u)_2²], the cross term E Σ² = E z⁴/3."""
    law = relu_jacobian_law([3, 5], 4, u=[1, 0, 2, -1])
    for m in (1, 2, 7):
        assert law.norm2_moment(2, n_out=m) == m * law.moment(4) + m * (m - 1) * law.moment(4) / 3
        assert law.norm2_moment(1, n_out=m) == m * law.moment(2)


# ---------------------------------------------------------------------------------------------
# 1/n series vs the order-1/n recursions of REFERENCE §3
# ---------------------------------------------------------------------------------------------


def _gauss(f, K):
    """<f>_K by mpmath quadrature, split at the ReLU kink (an independent evaluator)."""
    def g(z):
        return f(z) * mpmath.exp(-z * z / (2 * K)) / mpmath.sqrt(2 * mpmath.pi * K)
    return mpmath.quad(g, [-mpmath.inf, 0, mpmath.inf])


def test_series_matches_order_one_recursions():
    """κ4(z) = 3V/n and E z² = K + G1/n from the §3 recursions (critical ReLU, quadrature
    Gaussian expectations) equal the 1/n terms of the exact moments' series."""
    def relu(z):
        return max(z, 0)
    CW, K = 2, mpmath.mpf(1)
    with mpmath.workdps(30):
        s2, s4 = _gauss(lambda z: relu(z) ** 2, K), _gauss(lambda z: relu(z) ** 4, K)
        chi = CW * _gauss(lambda z: relu(z) ** 2 * (z * z - K), K) / (2 * K ** 2)
        g2 = CW * _gauss(lambda z: relu(z) ** 2 * (z ** 4 - 6 * K * z * z + 3 * K * K), K) / (8 * K ** 4)
        for L in (1, 2, 5):
            V, G1 = mpmath.mpf(0), mpmath.mpf(0)
            for _ in range(L):
                V, G1 = CW ** 2 * (s4 - s2 ** 2) + chi ** 2 * V, chi * G1 + g2 * V
            ser4 = moment_series(4, L, 1)
            ser2 = moment_series(2, L, 1)
            kappa4_coeff = sp.Rational(ser4.coeff(N, -1))          # E z⁴ 1/n term; (E z²)² has none
            assert abs(kappa4_coeff - 3 * V) < mpmath.mpf(10) ** -25
            assert abs(sp.Rational(ser2.coeff(N, -1)) - G1) < mpmath.mpf(10) ** -25


def test_series_order_two_is_exact_expansion():
    n = N
    for L in (1, 3):
        exact = moment_symbolic(6, [n] * L, C_W=2, K1=1)
        ser = moment_series(6, L, 3)
        assert sp.simplify(sp.series((exact - ser).subs(n, 1 / N), N, 0, 4).removeO()) == 0


# ---------------------------------------------------------------------------------------------
# density, CDF, log-moments
# ---------------------------------------------------------------------------------------------


def _z_cutoff(law, digits: int) -> mpmath.mpf:
    """t with ∫_{|z|>t} (1 + z^6) f(z) dz < 10^-digits: Markov bound with the exact moments."""
    t = mpmath.mpf(2)
    while True:
        bound = min(_mp(law.moment(6 + 2 * j)) / t ** (2 * j) + _mp(law.moment(2 * j + 2)) / t ** (2 * j + 2)
                    for j in range(1, 30))
        if bound < mpmath.mpf(10) ** -digits:
            return t
        t *= mpmath.mpf(1.3)


def test_density_closed_form_one_layer_width_one():
    """widths [1], x = [1]: z = 2 ξ₁ ξ₂ with probability ½ → density K₀(|z|/2)/(4π)."""
    law = relu_output_law([1], [1])
    with mpmath.workdps(40):
        for z in ("0.1", "1", "3.7"):
            ref = mpmath.besselk(0, mpmath.mpf(z) / 2) / (4 * mpmath.pi)
            assert abs(law.density(z, dps=40) - ref) < mpmath.mpf(10) ** -38 * ref


def _memo(fn):
    """Cache an mpmath integrand: the mass and the moments are integrated on the same nodes."""
    cache: dict = {}

    def g(z):
        if z not in cache:
            cache[z] = fn(z)
        return cache[z]
    return g


@pytest.mark.slow
@pytest.mark.parametrize("ws", [[1], [3], [1, 2]])
def test_density_normalisation_and_moments_30_digits(ws):
    """∫ f = 1 − P[z=0] and ∫ z^M f = E z^M (exact Fractions) at 30 digits, mpmath quadrature of
    the Meijer-G mixture; the range is cut where a Markov bound with exact moments is < 1e-34."""
    law = relu_output_law(ws, [1, 1])
    with mpmath.workdps(35):
        T = _z_cutoff(law, 34)
        pts = [0, 1, 4, 12, 30, 70, T]
        f = _memo(lambda z: law.density(z, dps=35))
        mass = 2 * mpmath.quad(f, pts)
        assert abs(mass - (1 - _mp(law.p_zero()))) < mpmath.mpf(10) ** -30
        for M in (2, 4, 6):
            mom = 2 * mpmath.quad(lambda z, M=M: z ** M * f(z), pts)
            assert abs(mom - _mp(law.moment(M))) < mpmath.mpf(10) ** -30 * _mp(law.moment(M))


def test_cdf_matches_integrated_density():
    """CDF (Meijer G^{m,1}_{1,m+1} mixture) differences equal the integrated density (G^{m,0}_{0,m})."""
    law = relu_output_law([2, 1], [1, 0.5])
    with mpmath.workdps(30):
        p0 = _mp(law.p_zero())
        assert abs(law.cdf(0, dps=30) - ((1 - p0) / 2 + p0)) < mpmath.mpf(10) ** -29
        a, b = mpmath.mpf("0.7"), mpmath.mpf("2.5")
        integ = mpmath.quad(lambda z: law.density(z, dps=30), [a, b])
        assert abs(law.cdf(b, dps=30) - law.cdf(a, dps=30) - integ) < mpmath.mpf(10) ** -28
        assert abs(law.cdf(-a, dps=30) - (1 - law.cdf(a, dps=30))) < mpmath.mpf(10) ** -28
        # far tail: 1 − F(t) ≤ ½ E z⁸ / t⁸ (Markov with the exact moment)
        t = mpmath.mpf(60)
        assert 0 < 1 - law.cdf(t, dps=30) < _mp(law.moment(8)) / t ** 8 / 2


def test_numpy_density_agrees_with_meijer():
    law = relu_output_law([4, 3], [1, 0.5, -0.3])
    zs = [0.01, 0.2, 0.9, 2.0, 4.5]
    ref = np.array([float(law.density(z, dps=20)) for z in zs])
    np.testing.assert_allclose(law.density_numpy(zs), ref, rtol=1e-10, atol=1e-14)
    us = [-3.0, -1.0, 0.0, 1.0]
    refu = np.array([float(law.log_sigma_density(u, dps=20)) for u in us])
    np.testing.assert_allclose(law.log_sigma_density_numpy(us), refu, rtol=1e-10, atol=1e-14)


def test_numpy_density_normalisation_wide_deep():
    """L = 20, n = 20 (mixture of C(39,20) ≈ 7e10 Meijer terms): trapezoid mass = 1 − P[z=0]."""
    law = relu_output_law([20] * 20, [1, 1])
    u = np.linspace(-60, 15, 30001)
    dens = law.log_sigma_density_numpy(u)
    mass = np.sum(dens) * (u[1] - u[0])
    assert abs(mass - (1 - float(law.p_zero()))) < 1e-9
    mean = np.sum(u * dens) * (u[1] - u[0]) / mass
    m, v = law.log_moments(dps=20)
    assert abs(mean - float(m)) < 1e-8
    var = np.sum((u - mean) ** 2 * dens) * (u[1] - u[0]) / mass
    assert abs(var - float(v)) < 1e-8


def test_log_moments_by_quadrature_30_digits():
    """E[log Σ | Σ>0], Var[...] by quadrature of the Meijer-G density of log Σ (mpmath, 30 digits)."""
    law = relu_output_law([2, 1], [1, 2], C_W=[1.5, 2.5, 3])
    m, v = law.log_moments(dps=35)
    with mpmath.workdps(35):
        p = 1 - _mp(law.p_zero())
        f = _memo(lambda u: law.log_sigma_density(u, dps=35))
        top = mpmath.log(_mp(law.scale)) + 12      # Σ/(4 scale) = G1·G2 (Gammas): tail ~ e^{-2√y}
        pts = [-mpmath.inf, -10, 0, 2, 5, top]
        mass = mpmath.quad(f, pts)
        assert abs(mass - p) < mpmath.mpf(10) ** -30
        mean = mpmath.quad(lambda u: u * f(u), pts) / p
        var = mpmath.quad(lambda u: (u - m) ** 2 * f(u), pts) / p
        assert abs(mean - m) < mpmath.mpf(10) ** -30
        assert abs(var - v) < mpmath.mpf(10) ** -29
        assert abs(law.log_sigma_cdf(0, dps=30) - mpmath.quad(f, pts[:3])) < mpmath.mpf(10) ** -28


def test_bessel_shortcut_equals_meijerg():
    from perturb.relu_exact import _meijer_g0m
    with mpmath.workdps(40):
        for al in ([mpmath.mpf(1) / 2, 1], [mpmath.mpf(3) / 2, mpmath.mpf(1) / 2], [2, 3]):
            for x in ("0.01", "1.3", "40"):
                ref = mpmath.meijerg([[], []], [[a - 1 for a in al], []], mpmath.mpf(x))
                assert abs(_meijer_g0m(al, mpmath.mpf(x)) - ref) < mpmath.mpf(10) ** -36 * abs(ref)


# ---------------------------------------------------------------------------------------------
# log-normal limit
# ---------------------------------------------------------------------------------------------


def test_beta_and_lognormal_error_shrinks():
    assert beta([10] * 4) == pytest.approx(4 * math.log(1.5), rel=1e-15)
    assert beta_approx([10] * 4) == 2.0
    errs = [lognormal_error([n] * L) for n, L in ((200, 2), (50, 10), (20, 20))]
    ks = [e.ks for e in errs]
    assert ks == sorted(ks), ks                      # error grows with L/n
    assert errs[0].ks < 0.01 and errs[-1].ks > errs[0].ks
    # the log-variance agrees with β to O(L/n²): the residual is small relative to β at small L/n
    assert abs(errs[0].log_var_error) < 0.05 * errs[0].beta


# ---------------------------------------------------------------------------------------------
# NTK mean and non-Gaussian weights
# ---------------------------------------------------------------------------------------------


def test_ntk_mean_equals_infinite_width_recursion():
    """REFERENCE §1 NTK recursion with ReLU Gaussian expectations <σ²>_K = K/2, <σ'²>_K = 1/2.

    Exact for the weight part; the bias part of the finite-width mean carries the probability
    that no earlier layer is entirely off, so the comparison is at widths where 2^{-n} < 1e-30
    (and λ_b = 0 at small widths).  The finite-width bias part is checked by Monte Carlo."""
    cw = [Fraction(3, 2), 2, Fraction(5, 2), Fraction(7, 4)]
    lw = [1, Fraction(1, 3), 2, Fraction(1, 2)]
    lb = [Fraction(1, 5), 0, 1, Fraction(2, 3)]
    x = [1, Fraction(-1, 2)]
    K = cw[0] * sum(v * v for v in x) / 2
    theta = lb[0] + lw[0] * sum(v * v for v in x) / 2
    for ell in range(1, 4):
        theta = lb[ell] + lw[ell] * K / 2 + cw[ell] * Fraction(1, 2) * theta
        K = cw[ell] * K / 2
    wide = ntk_mean([120, 130, 140], x, C_W=cw, lambda_W=lw, lambda_b=lb)
    assert abs(wide - theta) < Fraction(1, 10 ** 30)
    assert wide != theta
    # λ_b = 0: equal at any width
    K = cw[0] * sum(v * v for v in x) / 2
    theta = lw[0] * sum(v * v for v in x) / 2
    for ell in range(1, 4):
        theta = lw[ell] * K / 2 + cw[ell] * Fraction(1, 2) * theta
        K = cw[ell] * K / 2
    assert ntk_mean([1, 9, 2], x, C_W=cw, lambda_W=lw, lambda_b=0) == theta


def _rademacher_z4_enumeration(n0_x, widths, C_W):
    """E z⁴ over all ±1 weight patterns (exact; W = √(C_W/n) w with √(C_W/n) rational here)."""
    dims = [len(n0_x)] + list(widths) + [1]
    shapes = [(dims[i + 1], dims[i]) for i in range(len(dims) - 1)]
    total, count = Fraction(0), 0
    sizes = [a * b for a, b in shapes]
    for signs in itertools.product([-1, 1], repeat=sum(sizes)):
        v = [Fraction(t) for t in n0_x]
        pos = 0
        for li, (a, b) in enumerate(shapes):
            scale = Fraction(C_W, b)
            r = math.isqrt(scale.numerator), math.isqrt(scale.denominator)
            assert Fraction(r[0] ** 2, r[1] ** 2) == scale
            s = Fraction(*r)
            w = signs[pos:pos + a * b]
            pos += a * b
            z = [s * sum(w[i * b + j] * v[j] for j in range(b)) for i in range(a)]
            v = [max(t, 0) for t in z] if li < len(shapes) - 1 else z
        total += v[0] ** 4
        count += 1
    return total / count


def test_nongaussian_fourth_moment_rademacher_enumeration():
    """μ4 = 1: exact E z⁴ equals the average over all 2^10 Rademacher networks (n0=2, widths 2,2)."""
    x = [1, Fraction(1, 2)]
    ref = _rademacher_z4_enumeration(x, [2, 2], 8)     # C_W = 8: √(8/2) = 2 rational
    assert fourth_moment_nongaussian([2, 2], x, mu4="rademacher", C_W=8) == ref
    assert fourth_moment_nongaussian([2, 2], x, mu4=1, C_W=8) == ref
    # and differs from the Gaussian value
    assert ref != relu_output_law([2, 2], x, C_W=8).moment(4)


def test_nongaussian_reduces_to_gaussian():
    for ws, x in (([3, 5], [1, 2, 3]), ([1], [0.4])):
        assert fourth_moment_nongaussian(ws, x, mu4=3) == relu_output_law(ws, x).moment(4)
    assert WEIGHT_MU4["uniform"] == Fraction(9, 5)


# ---------------------------------------------------------------------------------------------
# bad input and CLI
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call, match", [
    (lambda: relu_output_law([4], [1]).moment(3), "even"),
    (lambda: relu_output_law([4], [1]).moment(0), "positive even"),
    (lambda: relu_output_law([4], [1]).moment(-2), "positive even"),
    (lambda: relu_output_law([4, 0], [1]), "widths must be >= 1"),
    (lambda: relu_output_law([], [1]), "empty"),
    (lambda: relu_output_law([4], [0, 0]), "x = 0"),
    (lambda: relu_output_law([4], [1], C_W=0), "C_W must be > 0"),
    (lambda: relu_output_law([4], [1], C_W=-2), "C_W must be > 0"),
    (lambda: relu_output_law([4], [1], C_W=[1, 2, 3]), "one per layer"),
    (lambda: relu_output_law([4], [1], C_b=0.1), "C_b must be 0"),
    (lambda: relu_output_law([4], [float("nan")]), "finite"),
    (lambda: relu_jacobian_law([4], 0), "n0"),
    (lambda: fourth_moment_nongaussian([4], [1], mu4="cauchy"), "unknown weight law"),
    (lambda: fourth_moment_nongaussian([4], [1], mu4=0.5), "mu4"),
    (lambda: relu_output_law([4], [1]).density(0), "infinite"),
])
def test_bad_input(call, match):
    with pytest.raises(PerturbError, match=match):
        call()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "perturb", "relu-exact", *args],
                          capture_output=True, text=True, timeout=120)


def _cli_inproc(capsys, *args):
    from perturb.cli import main

    try:
        rc = main(["relu-exact", *args])
    except SystemExit as exc:          # argparse usage errors
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cli_json_contract():
    r = _cli("--widths", "8,8,8", "--x", "1,0.5,-0.3", "--moment", "4", "--density", "0.5,1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"moment", "moment_exact", "cumulant", "p_zero", "log_mean", "log_var", "beta",
                        "density"}
    law = relu_output_law([8, 8, 8], [1, 0.5, -0.3])
    assert Fraction(out["moment_exact"]) == law.moment(4)
    assert out["moment"] == float(law.moment(4))
    assert out["cumulant"] == float(law.cumulant(4))
    assert out["p_zero"] == 1 - (1 - 2 ** -8) ** 3
    assert out["beta"] == pytest.approx(3 * math.log(13 / 8), rel=1e-15)
    assert out["density"] == pytest.approx(list(law.density_numpy([0.5, 1.0])), rel=1e-10)


def test_cli_dps_strings(capsys):
    rc, stdout, err = _cli_inproc(capsys, "--widths", "3,4", "--x", "1", "--cw", "2", "--moment", "6",
                                  "--dps", "40", "--json")
    assert rc == 0, err
    out = json.loads(stdout)
    assert isinstance(out["log_mean"], str) and len(out["log_mean"].lstrip("-").replace(".", "")) >= 39
    m, _ = relu_output_law([3, 4], [1]).log_moments(dps=45)
    with mpmath.workdps(45):
        assert abs(mpmath.mpf(out["log_mean"]) - m) < mpmath.mpf(10) ** -38


@pytest.mark.parametrize("args", [
    ["--moment", "3"], ["--moment", "0"], ["--moment", "-4"],
    ["--moment", "2", "--widths", "4,0"], ["--moment", "2", "--x", "0,0"],
    ["--moment", "2", "--cw", "0"], ["--moment", "2", "--cw", "-1"], ["--moment", "2", "--cb", "1"],
])
def test_cli_bad_input_exit_2(args, capsys):
    base = {"--widths": "4,4", "--x": "1,2"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    rc, out, err = _cli_inproc(capsys, *[t for kv in base.items() for t in kv])
    assert rc == 2 and out == ""
    assert "Traceback" not in err and "error" in err


def test_cli_bad_input_subprocess_no_traceback():
    r = _cli("--widths", "4", "--x", "0", "--moment", "2")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "x = 0" in r.stderr


def test_finite_width_engine_relu_series_equals_exact_expansion():
    """The finite-width engine's (perturb.finite) derived ReLU series, order by order in 1/n,
    equals the 1/n expansion of the exact moments (critical ReLU, equal widths)."""
    finite = pytest.importorskip("perturb.finite")
    for L, order in ((2, 2), (3, 2)):
        st = finite.FiniteWidth("relu", depth=L, order=order).symbolic(K1=1, widths=[N] * L, C_W=2, C_b=0)
        for m in (2, 4, 6, 8):
            engine = sp.expand(sum(st.series("moments", m)))
            assert sp.simplify(engine - moment_series(m, L, order)) == 0, (L, m)
