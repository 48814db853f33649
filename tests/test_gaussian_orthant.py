"""Two-point closed forms of piecewise polynomials kinked at 0 (orthant moments, closed.py).

Every value is checked by a method that shares nothing with the polar-coordinate derivation:
scipy's adaptive 2-D quadrature split at the kinks, a 30-digit mpmath reference that integrates
the inner variable exactly (incomplete Gaussian moments) and the outer one by ``mpmath.quad``,
the registered arc-cosine kernels, Cho & Saul's J_n, and the one-variable closed form at ρ = ±1.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import dblquad

from perturb.activations import Z
from perturb.errors import PerturbError
from perturb.gaussian import closed_form, expect, zvars
from perturb.gaussian.closed import orthant_expr, orthant_moment, pair_kernel_expr

z1, z2 = zvars(2)
a_, b_, c_ = sp.symbols("a b c", positive=True)
KS = sp.ImmutableMatrix([[a_, c_], [c_, b_]])
relu, step = (lambda u: sp.Max(0, u)), sp.Heaviside

# (g, h) in Z; the first four are the brief's examples, the rest the several-input NTK's shapes
PAIRS = [
    (step(Z), relu(Z) ** 2),
    (relu(Z) ** 2, relu(Z) ** 2),
    (Z**2 * step(Z), relu(Z)),
    (relu(Z) ** 3, step(Z)),
    ((relu(Z) + sp.Min(0, Z) / 10) ** 3, sp.Min(0, Z)),               # leaky ReLU
    ((step(-Z) / 10 + step(Z)) ** 2, Z**2 * relu(Z)),
    (sp.Abs(Z) * Z, sp.sign(Z) * Z**3 + 2),                           # abs, sign, a constant
    (sp.Max(0, -2 * Z) ** 2 * Z, sp.Min(0, 3 * Z) + Z**2),             # scaled kinks, both sides
]
RHOS = [0.0, 0.5, -0.5, 0.99, -0.99]
VARS = [(1.0, 1.0), (0.7, 2.3)]


def _num(g):
    """g as a float function (H(0) = 1/2; the quadrature never evaluates on a kink)."""
    return sp.lambdify(Z, g, modules=[{"Heaviside": lambda x, h0=0.5: 1.0 if x > 0 else (0.0 if x < 0 else h0)},
                                      "math"])


def _cov(a, b, rho):
    c = rho * math.sqrt(a * b)
    return np.array([[a, c], [c, b]])


def _closed(g, h, a, b, rho):
    expr = closed_form(g.subs(Z, z1) * h.subs(Z, z2), KS)
    assert expr is not None
    return float(expr.subs({a_: a, b_: b, c_: rho * math.sqrt(a * b)}).evalf(30))


def _dblquad(g, h, a, b, rho):
    """E[g(z_1) h(z_2)] in Cholesky coordinates z_1 = √a x, z_2 = √b (ρx + s y), s = √(1−ρ²):
    four adaptive 2-D integrals split at the kinks x = 0 and y = −ρx/s."""
    gn, hn = _num(g), _num(h)
    s, L = math.sqrt(1 - rho * rho), 12.0
    sa, sb = math.sqrt(a), math.sqrt(b)

    def f(y, x):
        return gn(sa * x) * hn(sb * (rho * x + s * y)) * math.exp(-(x * x + y * y) / 2) / (2 * math.pi)

    def kink(x):
        return min(L, max(-L, -rho * x / s))

    total = 0.0
    for xa, xb in ((-L, 0.0), (0.0, L)):
        total += dblquad(f, xa, xb, lambda x: -L, kink, epsabs=1e-13, epsrel=1e-12)[0]
        total += dblquad(f, xa, xb, kink, lambda x: L, epsabs=1e-13, epsrel=1e-12)[0]
    return total


def _scale(g, h, a, b):
    """√(E g² E h²): the Cauchy–Schwarz bound on |E[g h]|, the unit of the tolerances."""
    eg = closed_form(g**2, sp.Float(a))
    eh = closed_form(h**2, sp.Float(b))
    return math.sqrt(float(eg) * float(eh))


@pytest.mark.parametrize("rho", RHOS)
@pytest.mark.parametrize("pair", range(len(PAIRS)))
def test_closed_form_vs_dblquad(pair, rho):
    g, h = PAIRS[pair]
    a, b = VARS[pair % 2]
    # dblquad asks for 1e-12 relative per piece; 1e-10 of the Cauchy–Schwarz scale leaves room
    # for the four pieces' cancellation and nothing for a wrong coefficient
    assert abs(_closed(g, h, a, b, rho) - _dblquad(g, h, a, b, rho)) <= 1e-10 * _scale(g, h, a, b)


def test_brief_example_through_expect():
    """``expect(..., method="closed")`` uses it (it raised "no closed form" before)."""
    K = np.array([[2.0, 1.2], [1.2, 2.0]])
    f = step(z1) * relu(z2) ** 2
    val = float(expect(f, K, method="closed"))
    assert abs(val - _dblquad(step(Z), relu(Z) ** 2, 2.0, 2.0, 0.6)) <= 1e-10 * _scale(step(Z), relu(Z) ** 2, 2, 2)
    # vectorised over a batch of covariances, like every closed form
    batch = np.stack([K, _cov(1.0, 3.0, -0.3)])
    out = expect(f, batch, method="closed")
    assert out.shape == (2,) and abs(out[0] - val) < 1e-15


# ---------------------------------------------------------------- 30 digits, independent


def _mp_reference(g, h, a, b, rho, dps=30):
    """E[g(z_1) h(z_2)] at ``dps`` digits: the inner variable exactly, the outer by mpmath.quad.

    z_2 | x = √b(ρx + s y): with h = P₊(z) on z > 0 and P₋(z) on z < 0 (polynomials in z),
    E_y[P(μ + σy) 1{μ + σy > 0}] = Σ_k [y^k]P(μ + σy) · T_k(−μ/σ), T_k(t) = ∫_t^∞ y^k φ(y) dy,
    T_0 = erfc(t/√2)/2, T_1 = φ(t), T_k = t^(k−1) φ(t) + (k−1) T_(k−2) (integration by parts).
    """
    t, y, mu, sig = sp.symbols("t y mu sigma")
    pos = sp.Symbol("tp", positive=True)
    sides = {}
    for sgn in (1, -1):   # P_sgn(z) = h(z) on sgn·z > 0, as a polynomial in z
        sides[sgn] = sp.Poly(sp.expand(sp.expand(h.subs(Z, sgn * pos)).subs(pos, sgn * t).subs(t, mu + sig * y)), y)
    with mpmath.workdps(dps + 10):
        gm = sp.lambdify(Z, g, modules=[{"Heaviside": lambda x, h0=0.5: mpmath.mpf(1) if x > 0 else
                                         (mpmath.mpf(0) if x < 0 else h0)}, "mpmath"])
        a, b, rho = (mpmath.mpf(v) for v in (a, b, rho))
        s = mpmath.sqrt(1 - rho**2)
        coeff_fns = {sgn: {k: sp.lambdify((mu, sig), cf, modules="mpmath") for (k,), cf in poly.terms()}
                     for sgn, poly in sides.items()}

        def upper(k, tt):
            phi = mpmath.npdf(tt)
            T = [mpmath.erfc(tt / mpmath.sqrt(2)) / 2, phi]
            for j in range(2, k + 1):
                T.append(tt ** (j - 1) * phi + (j - 1) * T[j - 2])
            return T

        def moments(k):   # E[y^j], standard normal
            return [mpmath.mpf(0) if j % 2 else mpmath.fac2(j - 1) for j in range(k + 1)]

        def inner(x):
            m, sd = mpmath.sqrt(b) * rho * x, mpmath.sqrt(b) * s
            tt = -m / sd
            total = mpmath.mpf(0)
            for sgn, fns in coeff_fns.items():
                coeffs = {k: fn(m, sd) for k, fn in fns.items()}
                kmax = max(coeffs, default=0)
                T, M = upper(kmax, tt), moments(kmax)
                for k, cf in coeffs.items():
                    total += cf * (T[k] if sgn == 1 else M[k] - T[k])
            return total

        val = mpmath.quad(lambda x: gm(mpmath.sqrt(a) * x) * inner(x) * mpmath.npdf(x),
                          [-mpmath.inf, 0, mpmath.inf])
    return val


@pytest.mark.parametrize("pair,a,b,rho", [
    (0, "2", "2", "0.6"),
    (1, "0.7", "2.3", "-0.9"),
    (4, "1.3", "0.4", "0.25"),
])
def test_mpmath_30_digits(pair, a, b, rho):
    g, h = PAIRS[pair]
    ref = _mp_reference(g, h, a, b, rho)
    with mpmath.workdps(40):
        am, bm, rm = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(rho)
        cm = rm * mpmath.sqrt(am * bm)
        # through the dispatcher's mpmath path (the compiled closed form evaluated by mpmath)
        val = expect(g.subs(Z, z1) * h.subs(Z, z2), [[am, cm], [cm, bm]], method="mpmath", dps=30)
        scale = _scale(g, h, float(a), float(b))
        assert abs(val - ref) <= mpmath.mpf(10) ** -28 * scale


# ---------------------------------------------------------------- registry kernels, Cho & Saul


@pytest.mark.parametrize("g,h", [
    (relu(Z), relu(Z)), (relu(Z), step(Z)), (step(Z), step(Z)), (relu(-Z), step(Z)),
    (step(-Z), relu(Z)), (relu(-Z), relu(-Z)), (Z, relu(Z)), (step(Z), sp.S.One),
])
def test_agrees_with_registered_kernels(g, h):
    """The orthant sum reproduces the arc-cosine J_0, J_1 (and Stein) kernels of the registry."""
    rho = sp.Symbol("rho_")
    reg = pair_kernel_expr(g, h, a_, b_, rho).subs(rho, c_ / sp.sqrt(a_ * b_))
    new = orthant_expr(g, h, a_, b_, c_)
    for a, b, r in [(1, 1, 0), (sp.Rational(7, 10), sp.Rational(23, 10), sp.Rational(-99, 100)),
                    (3, sp.Rational(1, 2), sp.Rational(1, 2)), (2, 2, 1), (2, 5, -1)]:
        pt = {a_: a, b_: b, c_: r * sp.sqrt(a * b)}
        assert abs(sp.N((reg - new).subs(pt), 50)) < sp.Float(10) ** -45


def test_existing_registry_path_is_unchanged():
    """relu·relu is still answered by the registry (its printed arc-cosine form), not the fallback."""
    rho = sp.Symbol("rho_")
    reg = pair_kernel_expr(relu(Z), relu(Z), a_, b_, rho).subs(rho, c_ / sp.sqrt(a_ * b_))
    assert closed_form(relu(z1) * relu(z2), KS) == reg


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_cho_saul_arc_cosine(n):
    """m_{n,n}(cos θ) = J_n(θ)/(2π) for unit variances.

    Cho & Saul, "Kernel Methods for Deep Learning", NIPS 2009, Sec. 2.1: the arc-cosine kernel
    k_n(x, y) = 2 E_w[Θ(w·x)Θ(w·y)(w·x)^n(w·y)^n] = ‖x‖^n‖y‖^n J_n(θ)/π (their eqs. 1–2), with
    J_n(θ) = (−1)^n (sin θ)^(2n+1) (1/sin θ ∂/∂θ)^n ((π − θ)/sin θ) (their eq. 4) — evaluated
    here by SymPy — and, printed in the paper, J_2(θ) = 3 sin θ cos θ + (π − θ)(1 + 2 cos² θ).
    """
    th = sp.Symbol("theta", positive=True)
    J = (sp.pi - th) / sp.sin(th)
    for _ in range(n):
        J = sp.diff(J, th) / sp.sin(th)
    J = (-1) ** n * sp.sin(th) ** (2 * n + 1) * J
    m = orthant_moment(n, n).subs(orthant_moment(0, 0).free_symbols.pop(), sp.cos(th))
    for val in (sp.Rational(1, 7), 1, 2, sp.Rational(31, 10)):
        assert abs(sp.N((m - J / (2 * sp.pi)).subs(th, val), 50)) < sp.Float(10) ** -45
    if n == 2:
        printed = 3 * sp.sin(th) * sp.cos(th) + (sp.pi - th) * (1 + 2 * sp.cos(th) ** 2)
        for val in (sp.Rational(1, 7), 2):
            diff = sp.N((m - printed / (2 * sp.pi)).subs(th, val), 40)
            print(f"Cho & Saul J_2 at θ = {val}: orthant {sp.N(m.subs(th, val), 20)}, "
                  f"printed/2π {sp.N((printed / (2 * sp.pi)).subs(th, val), 20)}")
            assert abs(diff) < sp.Float(10) ** -35


# ---------------------------------------------------------------- ρ → ±1 and bad input


@pytest.mark.parametrize("pair", range(len(PAIRS)))
@pytest.mark.parametrize("sign", [1, -1])
def test_rho_limits_equal_one_variable_closed_form(pair, sign):
    """At c = ±√(ab), z_2 = ±√(b/a) z_1: the two-point form equals <g(z) h(±√(b/a) z)>_a."""
    g, h = PAIRS[pair]
    a, b = sp.Rational(7, 10), sp.Rational(28, 10)            # √(b/a) = 2, exact
    two = closed_form(g.subs(Z, z1) * h.subs(Z, z2), KS).subs({a_: a, b_: b, c_: sign * sp.sqrt(a * b)})
    one = closed_form(g * h.subs(Z, sign * 2 * Z), a)
    assert abs(sp.N(two - one, 40)) < sp.Float(10) ** -35
    # and continuously: ρ = ±(1 − 1e-12) within √(1e-12) · scale (the √(1−ρ²) terms)
    near = sign * (1 - sp.Float("1e-12", 50))
    two_near = closed_form(g.subs(Z, z1) * h.subs(Z, z2), KS).subs({a_: a, b_: b, c_: near * sp.sqrt(a * b)})
    assert abs(sp.N(two_near - one, 40)) < 1e-5 * _scale(g, h, float(a), float(b))


def test_kink_elsewhere_has_no_closed_form():
    assert closed_form(sp.Max(0, z1 - 1) * relu(z2) ** 2, KS) is None
    assert closed_form(sp.tanh(z1) * relu(z2) ** 2, KS) is None
    with pytest.raises(PerturbError, match="no closed form"):
        expect(sp.Max(0, z1 - 1) * relu(z2) ** 2, np.eye(2), method="closed")
    with pytest.raises(PerturbError, match=r"integers >= 0.*\(-1, 2\)"):
        orthant_moment(-1, 2)


def test_ntk_multi_atoms_all_closed():
    """Every two-point atom of the several-input ReLU / leaky-ReLU NTK map has a closed form."""
    from perturb.gaussian import GaussianExpectation
    from perturb.ntk.multi import _compiled_atoms

    for name in ("relu", "leaky_relu:0.1"):
        _, atoms = _compiled_atoms(name, 2)
        assert all(isinstance(x, GaussianExpectation) for x in atoms)
        assert [x for x in atoms if closed_form(*x.args) is None] == []


# ---------------------------------------------------------------- random shapes vs quadrature

_FACTORS = {"step": lambda s: step(s * Z), "relu": lambda s: relu(s * Z), "min": lambda s: sp.Min(0, s * Z),
            "abs": lambda s: sp.Abs(Z)}


@settings(max_examples=8, deadline=None)
@given(p=st.integers(0, 3), q=st.integers(0, 3), k1=st.sampled_from(sorted(_FACTORS)),
       k2=st.sampled_from(sorted(_FACTORS)), s1=st.sampled_from([1, -1]), s2=st.sampled_from([1, -1]),
       rho=st.floats(-0.98, 0.98), a=st.floats(0.3, 3.0), b=st.floats(0.3, 3.0))
def test_random_shapes_vs_dblquad(p, q, k1, k2, s1, s2, rho, a, b):
    g, h = Z**p * _FACTORS[k1](s1), Z**q * _FACTORS[k2](s2)
    assert abs(_closed(g, h, a, b, rho) - _dblquad(g, h, a, b, rho)) <= 1e-10 * _scale(g, h, a, b)
