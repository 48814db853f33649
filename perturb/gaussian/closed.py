"""Closed-form Gaussian expectations: a registry of two-point kernels and exact rules.

What has a closed form here:

* pure polynomials — Wick/Isserlis (done by the atom itself);
* one-variable piecewise polynomials with their only kink at 0 (ReLU, step, leaky ReLU, abs,
  times any powers of z): exact half-line Gaussian moments
  ``∫_0^∞ t^k φ_K(t) dt = (2K)^{k/2} Γ((k+1)/2) / (2√π)``;
* products ``g(z_1) h(z_2)`` (or ``g(z) h(z)`` on the diagonal) where g and h are linear
  combinations of registered *primitives* — ``1, z, relu(±z), step(±z), erf(a z),
  exp(-a z²)`` (erf's derivative), ``sin(a z), cos(a z)`` — through the two-point kernel
  registry :data:`PAIR_KERNELS` (docs/reference.md §1: arc-cosine kernels, Williams' erf kernel, ...);
* products ``g(z_1) h(z_2)`` of two piecewise polynomials with their only kink at 0 (any powers
  and products of z, relu, step, leaky ReLU, abs, sign, ...), the fallback when the registry has
  no answer: sums of *orthant moments* ``E[z_1^p z_2^q 1{z_1 > 0} 1{z_2 > 0}]`` derived by
  SymPy in polar coordinates (:func:`orthant_moment`).

Everything is a SymPy expression in the covariance entries, so the same closed form serves
symbolic derivations, compiled numpy and mpmath.  The registry is keyed by the unordered pair
of primitive kinds; :func:`register_pair_kernel` adds one.

>>> import sympy as sp
>>> from perturb.activations import Z
>>> K = sp.Symbol("K", positive=True)
>>> closed_form(sp.Max(Z, 0)**2 * Z**2, K)
3*K**2/2
>>> closed_form(sp.erf(Z)**2, K)
2*asin(2*K/(2*K + 1))/pi
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from ..activations import Z
from ..errors import PerturbError
from .atom import integration_vars

__all__ = ["Primitive", "PAIR_KERNELS", "register_pair_kernel", "closed_form", "decompose",
           "pair_kernel_expr", "orthant_moment", "orthant_expr"]

_pi = sp.pi


@dataclass(frozen=True)
class Primitive:
    """A registered elementary function ``kind(scale * u)``."""

    kind: str  # one, lin, relu, step, erf, gauss, sin, cos, lin_erf (u·erf), lin_gauss (u·exp(-s u²))
    scale: sp.Expr = sp.S.One


# ---------------------------------------------------------------- decomposition into primitives


def decompose(expr: sp.Expr, u: sp.Symbol) -> list[tuple[sp.Expr, Primitive]] | None:
    """Write ``expr(u)`` as Σ c_i p_i(u) over primitives, or return None."""
    out: list[tuple[sp.Expr, Primitive]] = []
    for term in sp.Add.make_args(sp.expand(expr)):
        coeff, rest = sp.S.One, []
        for factor in sp.Mul.make_args(term):
            if u in factor.free_symbols:
                rest.append(factor)
            else:
                coeff *= factor
        if len(rest) == 2 and u in rest:      # u·erf(s u), u·exp(-s u²): the "lin_" kinds
            prims = _primitive(rest[1] if rest[0] == u else rest[0], u)
            if prims is None or len(prims) != 1 or prims[0][1].kind not in ("erf", "gauss"):
                return None
            c, p = prims[0]
            out.append((coeff * c, Primitive("lin_" + p.kind, p.scale)))
            continue
        if len(rest) > 1:
            return None
        if not rest:
            out.append((coeff, Primitive("one")))
            continue
        prims = _primitive(rest[0], u)
        if prims is None:
            return None
        out.extend((coeff * c, p) for c, p in prims)
    return out


def _linear_scale(arg: sp.Expr, u: sp.Symbol) -> sp.Expr | None:
    """a if arg == a*u with a a nonzero number, else None."""
    a = sp.simplify(arg / u)
    if a.free_symbols or a == 0:
        return None
    return a


def _primitive(f: sp.Expr, u: sp.Symbol) -> list[tuple[sp.Expr, Primitive]] | None:
    if f == u:
        return [(sp.S.One, Primitive("lin"))]
    if isinstance(f, (sp.Max, sp.Min)) and len(f.args) == 2 and 0 in f.args:
        other = f.args[0] if f.args[1] == 0 else f.args[1]
        a = _linear_scale(other, u)
        if a is None or not a.is_real:
            return None
        s = sp.sign(a)
        if isinstance(f, sp.Max):  # Max(0, a u) = |a| relu(sign(a) u)
            return [(abs(a), Primitive("relu", s))]
        return [(-abs(a), Primitive("relu", -s))]  # Min(0, a u) = -|a| relu(-sign(a) u)
    if isinstance(f, sp.Abs):
        a = _linear_scale(f.args[0], u)
        if a is None:
            return None
        return [(abs(a), Primitive("relu", sp.S.One)), (abs(a), Primitive("relu", -sp.S.One))]
    if isinstance(f, sp.Heaviside):
        a = _linear_scale(f.args[0], u)
        if a is None:
            return None
        return [(sp.S.One, Primitive("step", sp.sign(a)))]
    if isinstance(f, sp.sign):
        a = _linear_scale(f.args[0], u)
        if a is None:
            return None
        s = sp.sign(a)
        return [(sp.S.One, Primitive("step", s)), (-sp.S.One, Primitive("step", -s))]
    if isinstance(f, sp.erf):
        a = _linear_scale(f.args[0], u)
        return None if a is None else [(sp.S.One, Primitive("erf", a))]
    if isinstance(f, (sp.sin, sp.cos)):
        a = _linear_scale(f.args[0], u)
        return None if a is None else [(sp.S.One, Primitive(type(f).__name__, a))]
    if isinstance(f, sp.exp):
        a = sp.simplify(-f.args[0] / u**2)
        if a.free_symbols or not (a.is_positive):
            return None
        return [(sp.S.One, Primitive("gauss", a))]
    return None


# ---------------------------------------------------------------- the two-point kernel registry
# Each entry maps (s1, s2, a, b, rho) -> E[p(s1 u1) q(s2 u2)], (u1, u2) ~ N(0, [[a, c], [c, b]]),
# rho = c / sqrt(a b).  Provenance: docs/reference.md §1 (Cho & Saul arc-cosine kernels; Williams 1997 erf
# kernel); the mixed entries follow by Stein's lemma E[u1 g(u2)] = c E[g'(u2)].

PairFn = Callable[[sp.Expr, sp.Expr, sp.Expr, sp.Expr, sp.Expr], sp.Expr]
PAIR_KERNELS: dict[tuple[str, str], PairFn] = {}
MEANS: dict[str, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {}
MEAN_DERIVATIVES: dict[str, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {}


def register_pair_kernel(kind1: str, kind2: str, fn: PairFn) -> None:
    """Register E[kind1(s1 u1) kind2(s2 u2)] as ``fn(s1, s2, a, b, rho)``."""
    PAIR_KERNELS[(kind1, kind2)] = fn
    if kind1 != kind2:
        PAIR_KERNELS[(kind2, kind1)] = lambda s1, s2, a, b, r: fn(s2, s1, b, a, r)


def _theta(r):
    return sp.acos(r)


def _tilt(s, a, b, c):
    """Weight exp(-s u²) on (u, v) ~ N(0, [[a, c], [c, b]]): (its mean, a', b', c').

    E[exp(-s u²) F(u, v)] = n · E'[F] with n = (1 + 2sa)^(-1/2) and E' the expectation over the
    Gaussian of covariance (K^-1 + diag(2s, 0))^-1 = K - 2s (a, c)ᵀ(a, c) / (1 + 2sa).
    """
    d = 1 + 2 * s * a
    return 1 / sp.sqrt(d), a / d, b - 2 * s * c**2 / d, c / d


# E[p(s u)], u ~ N(0, v)
MEANS.update({
    "one": lambda s, v: sp.S.One,
    "lin": lambda s, v: sp.S.Zero,
    "relu": lambda s, v: sp.sqrt(v / (2 * _pi)),
    "step": lambda s, v: sp.S.Half,
    "erf": lambda s, v: sp.S.Zero,
    "gauss": lambda s, v: 1 / sp.sqrt(1 + 2 * s * v),
    "sin": lambda s, v: sp.S.Zero,
    "cos": lambda s, v: sp.exp(-s**2 * v / 2),
})
# E[d/du p(s u)], u ~ N(0, v)  (Stein's lemma partner of "lin")
MEAN_DERIVATIVES.update({
    "one": lambda s, v: sp.S.Zero,
    "lin": lambda s, v: sp.S.One,
    "relu": lambda s, v: s / 2,
    "step": lambda s, v: sp.sign(s) / sp.sqrt(2 * _pi * v),
    "erf": lambda s, v: s * 2 / sp.sqrt(_pi) / sp.sqrt(1 + 2 * s**2 * v),
    "gauss": lambda s, v: sp.S.Zero,
    "sin": lambda s, v: s * sp.exp(-s**2 * v / 2),
    "cos": lambda s, v: sp.S.Zero,
})

# u·erf(s u) and u·exp(-s u²): E[u X(s u)] = v E[X'] (Stein); E[d/du (u X)] = E[X] + v E[X'']
MEANS["lin_erf"] = lambda s, v: v * MEAN_DERIVATIVES["erf"](s, v)
MEANS["lin_gauss"] = lambda s, v: sp.S.Zero                       # odd
MEAN_DERIVATIVES["lin_erf"] = lambda s, v: sp.S.Zero              # derivative of an even function
# E[exp(-s u²)] - 2s E[u² exp(-s u²)] = n - 2s n a'  (tilted variance a')
MEAN_DERIVATIVES["lin_gauss"] = lambda s, v: _tilt(s, v, v, v)[0] * (1 - 2 * s * _tilt(s, v, v, v)[1])

for _k in MEANS:
    register_pair_kernel("one", _k, lambda s1, s2, a, b, r, k=_k: MEANS[k](s2, b))
for _k in MEAN_DERIVATIVES:
    if _k != "one":
        register_pair_kernel(
            "lin", _k, lambda s1, s2, a, b, r, k=_k: r * sp.sqrt(a * b) * MEAN_DERIVATIVES[k](s2, b))

register_pair_kernel(
    "relu", "relu",
    lambda s1, s2, a, b, r: sp.sqrt(a * b) / (2 * _pi)
    * (sp.sqrt(1 - (s1 * s2 * r) ** 2) + (_pi - _theta(s1 * s2 * r)) * s1 * s2 * r))
register_pair_kernel("step", "step", lambda s1, s2, a, b, r: (_pi - _theta(s1 * s2 * r)) / (2 * _pi))
register_pair_kernel(
    "relu", "step", lambda s1, s2, a, b, r: sp.sqrt(a) * (1 + s1 * s2 * r) / (2 * sp.sqrt(2 * _pi)))
register_pair_kernel(
    "erf", "erf",
    lambda s1, s2, a, b, r: 2 / _pi
    * sp.asin(2 * s1 * s2 * r * sp.sqrt(a * b) / sp.sqrt((1 + 2 * s1**2 * a) * (1 + 2 * s2**2 * b))))
register_pair_kernel(
    "gauss", "gauss",
    lambda s1, s2, a, b, r: 1 / sp.sqrt((1 + 2 * s1 * a) * (1 + 2 * s2 * b) - 4 * s1 * s2 * r**2 * a * b))
register_pair_kernel("erf", "gauss", lambda s1, s2, a, b, r: sp.S.Zero)  # odd x even
register_pair_kernel(
    "sin", "sin",
    lambda s1, s2, a, b, r: sp.exp(-(s1**2 * a + s2**2 * b) / 2) * sp.sinh(s1 * s2 * r * sp.sqrt(a * b)))
register_pair_kernel(
    "cos", "cos",
    lambda s1, s2, a, b, r: sp.exp(-(s1**2 * a + s2**2 * b) / 2) * sp.cosh(s1 * s2 * r * sp.sqrt(a * b)))
register_pair_kernel("sin", "cos", lambda s1, s2, a, b, r: sp.S.Zero)  # odd x even
register_pair_kernel("erf", "cos", lambda s1, s2, a, b, r: sp.S.Zero)
register_pair_kernel("sin", "gauss", lambda s1, s2, a, b, r: sp.S.Zero)


# ---- kernels derived from the ones above (GELU = u Φ(u) = u/2 + u erf(u/√2)/2 needs lin_erf;
# its derivative Φ(u) + u φ(u) needs lin_gauss).  Nothing here is a printed formula: SymPy composes
#   E[exp(-s u²) X(v)]   = n E'[X(v')]                        (Gaussian tilt, see _tilt)
#   E[u exp(-s u²) X(v)] = n c' E'[X'(v')]                    (tilt, then Stein's lemma)
#   E[u erf(s u) X(v)]   = a E[erf'(s u) X(v)] + c E[erf(s u) X'(v)]   (Stein's lemma)
# Checked against quadrature and mpmath in tests/test_precise_fast.py, and for GELU against
# Tsuchida et al., AAAI 2021 (the GELU kernel of their eq. for k^(1)) as a comparison.

def _c(a, b, r):
    return r * sp.sqrt(a * b)


def _gauss_x(kind):
    def fn(s1, s2, a, b, r):
        n, _, b1, _ = _tilt(s1, a, b, _c(a, b, r))
        return n * MEANS[kind](s2, b1)
    return fn


def _lin_gauss_x(kind):
    def fn(s1, s2, a, b, r):
        n, _, b1, c1 = _tilt(s1, a, b, _c(a, b, r))
        return n * c1 * MEAN_DERIVATIVES[kind](s2, b1)
    return fn


# d/dv X(s v) as Σ coef · kind(scale · v): the Stein partner of u erf(s u)
_DERIVATIVE: dict[str, Callable[[sp.Expr], list[tuple[sp.Expr, str, sp.Expr]]]] = {
    "one": lambda s: [],
    "lin": lambda s: [(sp.S.One, "one", sp.S.One)],
    "erf": lambda s: [(2 * s / sp.sqrt(_pi), "gauss", s**2)],
    "gauss": lambda s: [(-2 * s, "lin_gauss", s)],
    "lin_erf": lambda s: [(sp.S.One, "erf", s), (2 * s / sp.sqrt(_pi), "lin_gauss", s**2)],
    "sin": lambda s: [(s, "cos", s)],
    "cos": lambda s: [(-s, "sin", s)],
}


def _lin_erf_x(kind):
    def fn(s1, s2, a, b, r):
        c = _c(a, b, r)
        out = a * 2 * s1 / sp.sqrt(_pi) * PAIR_KERNELS[("gauss", kind)](s1**2, s2, a, b, r)
        for coef, k2, s3 in _DERIVATIVE[kind](s2):
            out += c * coef * PAIR_KERNELS[("erf", k2)](s1, s3, a, b, r)
        return out
    return fn


for _k in MEANS:
    if ("gauss", _k) not in PAIR_KERNELS:
        register_pair_kernel("gauss", _k, _gauss_x(_k))
for _k in MEAN_DERIVATIVES:
    if ("lin_gauss", _k) not in PAIR_KERNELS:
        register_pair_kernel("lin_gauss", _k, _lin_gauss_x(_k))
for _k in _DERIVATIVE:
    needed = [("gauss", _k)] + [("erf", k2) for _, k2, _ in _DERIVATIVE[_k](sp.S.One)]
    if ("lin_erf", _k) not in PAIR_KERNELS and all(key in PAIR_KERNELS for key in needed):
        register_pair_kernel("lin_erf", _k, _lin_erf_x(_k))


def pair_kernel_expr(g: sp.Expr, h: sp.Expr, a, b, rho) -> sp.Expr | None:
    """E[g(u1) h(u2)] in terms of (a, b, rho) for g, h expressions in Z, or None."""
    dg, dh = decompose(g, Z), decompose(h, Z)
    if dg is None or dh is None:
        return None
    total = sp.S.Zero
    for c1, p1 in dg:
        for c2, p2 in dh:
            fn = PAIR_KERNELS.get((p1.kind, p2.kind))
            if fn is None:
                return None
            total += c1 * c2 * fn(p1.scale, p2.scale, a, b, rho)
    return total


# ---------------------------------------------------------------- closed forms of atoms


def _half_moment(k: int, K) -> sp.Expr:
    """∫_0^∞ t^k φ_K(t) dt."""
    return (2 * K) ** sp.Rational(k, 2) * sp.gamma(sp.Rational(k + 1, 2)) / (2 * sp.sqrt(_pi))


def _piecewise_polynomial(f: sp.Expr, K) -> sp.Expr | None:
    t = sp.Symbol("t", positive=True)
    total = sp.S.Zero
    for side in (t, -t):
        branch = sp.expand(f.subs(Z, side))
        if not branch.is_polynomial(t):
            return None
        for (k,), coeff in sp.Poly(branch, t).terms():
            total += coeff * _half_moment(k, K)
    return sp.simplify(total)


# ---------------------------------------------------------------- orthant moments (kink at 0)
# For (x_1, x_2) standard Gaussians of correlation ρ = cos θ₀ (θ₀ = arccos ρ ∈ [0, π]) write
# x_1 = r cos φ, x_2 = r cos(φ − θ₀) (the Cholesky map x_2 = ρ u + √(1−ρ²) v in polar
# coordinates of (u, v) ~ N(0, I)).  The orthant x_1 > 0, x_2 > 0 is φ ∈ (θ₀ − π/2, π/2), so
#   m_{p,q}(ρ) = E[x_1^p x_2^q 1{x_1>0} 1{x_2>0}]
#              = [∫_0^∞ r^{p+q+1} e^{-r²/2} dr / 2π] · ∫_{θ₀−π/2}^{π/2} cos^p φ cos^q(φ − θ₀) dφ,
# the radial factor 2^{(p+q)/2} Γ((p+q)/2 + 1) / 2π.  The angular integral is done exactly on the
# Laurent polynomial in w = e^{iφ} (cos φ = (w + 1/w)/2, cos(φ − θ₀) = (w ē + e/w)/2 with
# e = e^{iθ₀} = ρ + i√(1−ρ²)): ∫ w^k dφ = w^k/(ik) (k ≠ 0), φ (k = 0), evaluated at w = i and
# w = −i e.  Nothing printed is typed in: m_{0,0} = (π − θ₀)/2π and m_{1,1} = J_1/2π (the
# step–step and relu–relu registry kernels) and Cho & Saul's J_2 come out (checked in
# tests/test_gaussian_orthant.py).

_RHO = sp.Symbol("rho_o", real=True)


@functools.cache
def orthant_moment(p: int, q: int) -> sp.Expr:
    """E[x_1^p x_2^q 1{x_1>0} 1{x_2>0}] for unit-variance Gaussians of correlation ``rho_o``.

    >>> orthant_moment(0, 0)
    (-acos(rho_o)/pi + 1)/2
    """
    if p < 0 or q < 0 or int(p) != p or int(q) != q:
        raise PerturbError(f"orthant moment orders must be integers >= 0, got ({p}, {q})")
    w, th = sp.Symbol("w"), sp.Symbol("theta0", real=True)
    sig = sp.Symbol("sigma_o", positive=True)          # √(1 − ρ²) = sin θ₀
    e, ebar = _RHO + sp.I * sig, _RHO - sp.I * sig     # e^{±iθ₀}
    laurent = sp.expand(((w + 1 / w) / 2) ** p * ((w * ebar + e / w) / 2) ** q)
    angular = sp.S.Zero
    for term in sp.Add.make_args(laurent):
        coeff, k = term.as_coeff_exponent(w)
        if k == 0:
            angular += coeff * (_pi - th)
        else:  # (-i e)^k = (i ē)^(-k) for k < 0, since e ē = 1
            lower = (-sp.I * e) ** k if k > 0 else (sp.I * ebar) ** (-k)
            angular += coeff * (sp.I ** k - lower) / (sp.I * k)
    angular = sp.expand(angular)
    # reduce sin²θ₀ = 1 − ρ² so the real part is unique, and check the imaginary part cancels
    angular = _reduce_sigma(angular, sig)
    re, im = sp.expand(sp.re(angular)), sp.expand(sp.im(angular))
    if im != 0:
        raise AssertionError(f"orthant moment ({p}, {q}): imaginary part {im} did not cancel")
    radial = 2 ** sp.Rational(p + q, 2) * sp.gamma(sp.Rational(p + q, 2) + 1) / (2 * _pi)
    out = radial * re.subs({th: sp.acos(_RHO), sig: sp.sqrt(1 - _RHO ** 2)})
    return sp.factor_terms(sp.expand(out))


def _reduce_sigma(expr: sp.Expr, sig: sp.Symbol) -> sp.Expr:
    """Replace σ^n by σ^(n mod 2) (1 − ρ²)^(n // 2) in a polynomial in σ."""
    poly = sp.Poly(expr, sig)
    return sp.expand(sum(c * sig ** (n % 2) * (1 - _RHO ** 2) ** (n // 2) for (n,), c in poly.terms()))


def _branches(g: sp.Expr, u: sp.Symbol) -> dict[int, sp.Poly] | None:
    """g(s t) for t > 0 as a polynomial in t, per side s = ±1; None unless g is a piecewise
    polynomial with its only kink at 0."""
    if g.atoms(sp.core.function.AppliedUndef) or g.has(sp.DiracDelta):
        return None
    t = sp.Symbol("t", positive=True)
    out = {}
    for s in (1, -1):
        branch = sp.expand(g.subs(u, s * t))
        if not branch.is_polynomial(t):
            return None
        out[s] = sp.Poly(branch, t)
    return out


def orthant_expr(g: sp.Expr, h: sp.Expr, a, b, c) -> sp.Expr | None:
    """E[g(u_1) h(u_2)], (u_1, u_2) ~ N(0, [[a, c], [c, b]]), for g, h expressions in Z that are
    piecewise polynomials with their only kink at 0; None otherwise.

    Σ over the orthants (s_1, s_2) ∈ {±1}²: (s_1 u_1, s_2 u_2) has covariance (a, b, s_1 s_2 c),
    so each side's branch (a polynomial in t = s u > 0) pairs with the orthant moments
    ``a^(p/2) b^(q/2) m_{p,q}(s_1 s_2 ρ)``.
    """
    bg, bh = _branches(g, Z), _branches(h, Z)
    if bg is None or bh is None:
        return None
    rho = c / sp.sqrt(a * b)
    total = sp.S.Zero
    for s1, pg in bg.items():
        for s2, ph in bh.items():
            for (p,), cg in pg.terms():
                for (q,), ch in ph.terms():
                    m = orthant_moment(p, q).subs(_RHO, s1 * s2 * rho)
                    total += cg * ch * a ** sp.Rational(p, 2) * b ** sp.Rational(q, 2) * m
    return total


def _split_product(f: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """f = g * h with g, h each a factor built of primitives (for <g h>_K on the diagonal)."""
    if isinstance(f, sp.Pow) and f.exp == 2:
        return f.base, f.base
    factors = sp.Mul.make_args(f)
    # g² that SymPy has distributed, e.g. (z (1 + erf z)/2)² -> z² (1 + erf z)²/4
    if all((isinstance(x, sp.Pow) and x.exp.is_Integer and x.exp % 2 == 0)
           or (x.is_Number and x.is_positive) for x in factors):
        root = sp.Mul(*[sp.sqrt(x) if x.is_Number else x.base ** (x.exp // 2) for x in factors])
        return root, root
    if len(factors) == 2:
        return factors[0], factors[1]
    if len(factors) == 1:
        return f, sp.S.One
    return None


def _split_exponentials(f: sp.Expr, zs) -> list[sp.Expr]:
    """Factors of f, with SymPy's merged exponentials ``exp(-z_1² - z_2²)`` split per variable."""
    out: list[sp.Expr] = []
    for factor in sp.Mul.make_args(f):
        base, e = factor.as_base_exp()
        if isinstance(base, sp.exp) or base is sp.E:
            arg = sp.expand(base.args[0] * e if isinstance(base, sp.exp) else e)
            groups: dict = {}
            for term in sp.Add.make_args(arg):
                key = tuple(v for v in zs if v in term.free_symbols)
                groups[key] = groups.get(key, sp.S.Zero) + term
            if len(groups) > 1:
                out.extend(sp.exp(a, evaluate=False) for a in groups.values())
                continue
        out.append(factor)
    return out


def closed_form(f: sp.Expr, K) -> sp.Expr | None:
    """A closed form of <f>_K (scalar K: f in z; 2×2 K: f in z_1, z_2), or None."""
    f = sp.sympify(f)
    zs = integration_vars(K)
    if len(zs) == 1:
        if not f.atoms(sp.core.function.AppliedUndef) and not f.has(sp.DiracDelta):
            pp = _piecewise_polynomial(f, K)
            if pp is not None:
                return pp
        split = _split_product(f)
        if split is None:
            return None
        return pair_kernel_expr(split[0], split[1], K, K, sp.S.One)
    if len(zs) != 2:
        return None
    z1, z2 = zs
    g, h, const = sp.S.One, sp.S.One, sp.S.One
    for factor in _split_exponentials(f, zs):
        fs = factor.free_symbols
        if z1 in fs and z2 in fs:
            return None
        if z1 in fs:
            g *= factor
        elif z2 in fs:
            h *= factor
        else:
            const *= factor  # constants (e.g. erf' = 2 exp(-z²)/√π squared) factor out
    a, b, c = K[0, 0], K[1, 1], K[0, 1]
    rho = sp.Symbol("rho_")
    expr = pair_kernel_expr(g.subs(z1, Z), h.subs(z2, Z), a, b, rho)
    if expr is None:
        expr = orthant_expr(g.subs(z1, Z), h.subs(z2, Z), a, b, c)
        return None if expr is None else const * expr
    return const * expr.subs(rho, c / sp.sqrt(a * b))
