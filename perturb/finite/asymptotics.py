"""Large-depth series of the derived order-1 recursions at criticality for the K* = 0 class.

For activations with σ(0) = 0, σ'(0) ≠ 0 (tanh, erf, sin, ...) tuned to criticality
(C_b = 0, C_W = 1/σ'(0)²) the kernel flows to zero, K^{(ℓ)} ≈ κ/ℓ with κ = −1/a₁ where
K' = K + a₁K² + O(K³) [PDLT ch. 5].  The engine's order-1 layer map (derived for the generic σ)
is expanded with every Gaussian-expectation atom replaced by its small-K series (Taylor series of
σ, Wick moments), and the ansatz

    K = κ/ℓ,   V = v κ²/ℓ,   G1 = g κ            (equal widths, r = 1)

is matched order by order in 1/ℓ, which fixes v and g: the large-ℓ series
``V^{(ℓ)}/K² = v ℓ + o(ℓ)`` and ``G1^{(ℓ)}/K = g ℓ + o(ℓ)`` (log ℓ corrections come from the
log ℓ/ℓ² term of K and enter at the next order).

>>> s = k_star_zero_series("tanh")
>>> s.v, s.g
(2/3, -1/3)
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..activations import Z, get_activation
from ..errors import PerturbError
from ..gaussian.atom import GaussianExpectation
from ..gaussian.dispatch import substitute_activation
from .layer import layer_map, moment_symbol

__all__ = ["KStarZeroSeries", "k_star_zero_series", "small_K_series"]


@dataclass(frozen=True)
class KStarZeroSeries:
    """Leading large-ℓ behaviour at criticality: K ≈ κ/ℓ, V/K² ≈ v ℓ, G1/K ≈ g ℓ."""

    activation: str
    C_W: sp.Expr
    a1: sp.Expr
    kappa: sp.Expr
    v: sp.Expr
    g: sp.Expr

    @property
    def text(self) -> str:
        return (f"K^(l) = {self.kappa}/l + O(log l/l^2);  V^(l)/K^2 = {self.v} l + o(l);  "
                f"G1^(l)/K = {self.g} l + o(l)  (C_W = {self.C_W}, C_b = 0)")


def small_K_series(atom: GaussianExpectation, K: sp.Symbol, order: int) -> sp.Expr:
    """The Taylor series of a one-variable atom <f(z)>_K in K up to K^order (Wick moments)."""
    f, cov = atom.args
    poly = sp.series(f, Z, 0, 2 * order + 1).removeO()
    out = sp.S.Zero
    for (d,), c in sp.Poly(sp.expand(poly), Z).terms():
        if d % 2 == 0:
            out += c * sp.factorial2(d - 1) * cov ** sp.Rational(d, 2)
    return sp.expand(out)


def k_star_zero_series(activation) -> KStarZeroSeries:
    """Derive the large-ℓ series of V and G1 at criticality for a K* = 0 activation.

    Raises PerturbError if the activation is not in the K* = 0 class (σ(0) ≠ 0, σ'(0) = 0, or
    a₁ >= 0 so that K does not flow to 0).
    """
    act = get_activation(activation)
    if act.is_generic:
        raise PerturbError("the large-depth series needs a concrete activation")
    if act.kinks:
        raise PerturbError(f"{act.name} has kinks; the K*=0 series needs an activation analytic at 0")
    s0 = sp.simplify(act.expr.subs(Z, 0))
    s1 = sp.simplify(act.derivative(1).subs(Z, 0))
    if s0 != 0 or s1 == 0:
        raise PerturbError(f"{act.name} is not in the K*=0 class (needs σ(0) = 0 and σ'(0) ≠ 0; "
                           f"got σ(0) = {s0}, σ'(0) = {s1})")
    K = sp.Symbol("K", positive=True)
    x = sp.Symbol("x", positive=True)      # 1/ℓ
    kappa, v, g = sp.symbols("kappa v g")
    lm = layer_map(1, 1)
    C_W = 1 / s1**2
    base = {lm.syms.C_W: C_W, lm.syms.C_b: 0, lm.K[(0, 0)]: K}

    def series_of(expr, order=7):  # atoms are divided by up to K⁴: keep K⁷
        expr = substitute_activation(expr, act).xreplace(base)
        rep = {a: small_K_series(a, K, order) for a in expr.atoms(GaussianExpectation)}
        return sp.expand(expr.xreplace(rep))

    kernel = series_of(lm.kernel()[(0, 0)])
    a1 = sp.nsimplify(sp.expand(kernel).coeff(K, 2))
    if sp.expand(kernel).coeff(K, 1) != 1 or not (a1 < 0):
        raise PerturbError(f"{act.name} at C_W = {C_W}: K' = {kernel} does not flow to 0 like 1/l "
                           "(needs K' = K + a1 K² + ..., a1 < 0)")
    n = sp.Symbol("n", positive=True)
    V, G1 = sp.symbols("V G1")
    incoming = {moment_symbol((1,), 1): G1 / n, moment_symbol((2,), 1): V / n, lm.syms.n: n}
    V_next = sp.expand(n * series_of(lm.moment((2,))[1].xreplace(incoming)))
    G_next = sp.expand(n * series_of(lm.moment((1,))[1].xreplace(incoming)))
    ans = {K: kappa * x, V: v * kappa**2 * x, G1: g * kappa}
    kap = -1 / a1
    # V(l+1) − V'(K(l), V(l)); V(l+1) = v κ² /(l+1) = v κ² x/(1 + x)
    res_V = sp.series(v * kappa**2 * x / (1 + x) - V_next.xreplace(ans), x, 0, 3).removeO()
    res_V = sp.expand(res_V.subs(kappa, kap))
    if sp.simplify(res_V.coeff(x, 1)) != 0:
        raise PerturbError(f"the ansatz V ~ 1/l fails for {act.name} (order-1/l residual {res_V.coeff(x, 1)})")
    v_sol = sp.solve(res_V.coeff(x, 2), v)
    # G1(l+1) − G1'(...): G1 = g κ is constant at leading order; match the 1/l term
    res_G = sp.series(g * kappa - G_next.xreplace(ans), x, 0, 2).removeO()
    res_G = sp.expand(res_G.subs(kappa, kap).subs(v, v_sol[0] if v_sol else v))
    g_sol = sp.solve(res_G.coeff(x, 1), g)
    if len(v_sol) != 1 or len(g_sol) != 1:
        raise PerturbError(f"could not match the large-l ansatz for {act.name}")
    return KStarZeroSeries(act.name, sp.nsimplify(C_W), a1, sp.nsimplify(kap), sp.nsimplify(v_sol[0]),
                           sp.nsimplify(g_sol[0]))
