"""Criticality and depth scales: χ_∥, χ_⊥, the K*=0 universality class and its 1/ℓ series."""

from __future__ import annotations

import mpmath
import sympy as sp

from perturb.activations import SIGMA, Z, get_activation
from perturb.criticality import (
    critical_depth_series,
    gaussian_series,
    iterate_kernels,
    universality_class,
)
from perturb.gaussian import E, evaluate, expect
from perturb.latex import Check, Derivation, Equation, Step

from ._common import close_check, concrete, fmt

TITLE = "Criticality, susceptibilities and depth scales"

K = sp.Symbol("K", positive=True)
C_W, C_b = sp.Symbol("C_W", positive=True), sp.Symbol("C_b", nonnegative=True)
ELL = sp.Symbol("ell", positive=True)


def build(activation: str = "tanh", order: int | None = None, checks: bool = True) -> Derivation:
    """Build the criticality derivation (default activation tanh; generic keeps σ symbolic).

    >>> build("tanh", checks=False).parameters["class"]
    'K*=0'
    """
    act = get_activation(activation)
    s = SIGMA(Z)
    length = C_b + C_W * E(s**2, K)
    chi_par = sp.diff(length, K)
    chi_perp = C_W * E(sp.diff(s, Z) ** 2, K)

    def c(e):
        return concrete(e, act)

    steps = [
        Step("Length map", "One input at infinite width: the NNGP recursion on the diagonal.", "",
             (Equation(r"K^{(\ell+1)}", c(length)),)),
        Step("Parallel susceptibility", "Linearise the length map around a fixed point $K^*$; the derivative of the "
             "Gaussian expectation by Price's rule.", "", (Equation(r"\chi_{\parallel}(K)", c(chi_par)),)),
        Step("Perpendicular susceptibility", "Slope at $c=1$ of the correlation map of two nearby inputs: "
             "$\\partial_{K_{12}}\\langle\\sigma(z_1)\\sigma(z_2)\\rangle = \\langle\\sigma'(z_1)\\sigma'(z_2)\\rangle$ (Price), "
             "evaluated on the diagonal.", "", (Equation(r"\chi_{\perp}(K)", c(chi_perp)),)),
        Step("Depth scales", "Deviations from the fixed point decay as $\\chi^\\ell$: $\\xi = -1/\\log\\chi$; "
             "criticality is $\\chi_\\parallel = \\chi_\\perp = 1$ [SPK; PDLT ch. 5].", "", ()),
    ]
    params = {"activation": act.name}
    result = [Equation(r"\chi_{\parallel}", c(chi_par)), Equation(r"\chi_{\perp}", c(chi_perp))]
    out: list[Check] = []
    if not act.is_generic:
        uc = universality_class(act)
        params["class"] = uc.name
        if uc.name == "K*=0":
            ser = gaussian_series(act.expr**2, 3)
            cw = 1 / uc.sigma1**2
            kser = sum(cw * ser[i] * K**i for i in range(4))
            steps.append(Step("Small-$K$ expansion at $C_b = 0$, $C_W = 1/\\sigma'(0)^2$",
                              "Heat equation term by term (Wick): $\\langle f\\rangle_K = \\sum_m f^{(2m)}(0) K^m/(2^m m!)$.", "",
                              (Equation(r"K^{(\ell+1)}", kser + sp.O(K**4)),)))
            ds = critical_depth_series(act)
            steps.append(Step("Large-depth series", "Insert $K^{(\\ell)} = A/\\ell + B\\log\\ell/\\ell^2$ into "
                              "$K' = K + a_1K^2 + a_2K^3$ and match orders: $A = -1/a_1$, $B = (a_2 - a_1^2)/(-a_1)^3$.", "",
                              (Equation("a_1", uc.a1), Equation("a_2", uc.a2),
                               Equation(r"K^{(\ell)}", ds.A / ELL + ds.B * sp.log(ELL) / ELL**2 + sp.O(ELL**-2, (ELL, sp.oo)),
                                        relation=r"\simeq"))))
            result.append(Equation(r"K^{(\ell)}", ds.A / ELL + ds.B * sp.log(ELL) / ELL**2, relation=r"\simeq"))
            result.append(Equation(r"C_W^{\mathrm{crit}}", cw, note="at $C_b = 0$."))
        elif uc.name == "scale-invariant":
            one = c(E(s**2, 1))
            result.append(Equation(r"C_W^{\mathrm{crit}}", sp.nsimplify(1 / one), note="at $C_b = 0$; then $K^{(\\ell)} = K^{(1)}$."))
        if checks:
            out += _checks(act, chi_par, chi_perp, uc)
    return Derivation(
        name="criticality", title="Criticality and depth scales",
        statement=("Stability of the kernel recursion: the susceptibilities $\\chi_\\parallel$, $\\chi_\\perp$, the depth "
                   "scales and, for the $K^*=0$ class, the power-law approach of $K^{(\\ell)}$ to 0 at criticality "
                   "[SPK; LH Thm 4.1; PDLT ch. 5]."),
        assumptions=("Infinite width; one input (length map) and two nearby inputs (correlation map).",),
        steps=steps, result=result, checks=out,
        references=("[SPK] Poole et al. 2016; Schoenholz et al. 2017.", "[PDLT] arXiv 2106.10165, ch. 5."),
        parameters=params, symbol_names={ELL: r"\ell"})


def _checks(act, chi_par, chi_perp, uc) -> list[Check]:
    out = []
    cw, cb = 1.5, 0.1
    q = mpmath.mpf("0.7")
    sym = evaluate(chi_par, {K: q, C_W: cw, C_b: cb}, activation=act, dps=30)
    with mpmath.workdps(30):
        h = mpmath.mpf("1e-10")
        up = evaluate(E(act.expr**2, K), {K: q + h}, dps=30)
        down = evaluate(E(act.expr**2, K), {K: q - h}, dps=30)
        fd = cw * (up - down) / (2 * h)
    out.append(close_check(f"chi_par at K = {fmt(q)} (C_W = {cw}): the derived "
                           "expression (Price's rule) vs a central difference of the length map (h = 1e-10, 30 digits)",
                           fd, sym, 1e-15, "central-difference error ~ h^2 plus 30-digit rounding / h"))
    sp_val = evaluate(chi_perp, {K: q, C_W: cw}, activation=act, dps=30)
    direct = cw * expect(act.derivative() ** 2, float(q))
    out.append(close_check("chi_perp: the derived expression (30-digit mpmath) vs float64 quadrature of C_W <sigma'^2>_K",
                           direct, sp_val, 1e-10, "float64 quadrature"))
    if uc.name == "K*=0":
        ds = critical_depth_series(act)
        L = 200
        Ks, _ = iterate_kernels(act, float(1 / uc.sigma1**2), 0.0, 1.0, L)
        pred = float(ds.A / L + ds.B * mpmath.log(L) / L**2)
        # the next term is O(1/l^2); at l = 4000 its relative size is ~ 1/(A l) ~ 5e-4
        out.append(close_check(f"K^(l) at l = {L} by iterating the exact recursion (float64) vs the derived "
                               "series A/l + B log(l)/l^2", pred, float(Ks[-1]), 1e-2,
                               "the omitted O(1/l^2) term is ~1/(A l) relative to the leading one"))
    return out
