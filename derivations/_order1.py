"""The order-1/n one-input derivation shared by the V and G1 documents, built from the engine's
layer map (:class:`perturb.finite.layer.LayerMap`): conditional cumulants, Price-rule Taylor
expansion, closure with the previous layer's moments, truncation, PDLT names."""

from __future__ import annotations

import functools

import sympy as sp

from perturb.activations import get_activation
from perturb.finite import FiniteWidth, layer_map, moment_symbol
from perturb.gaussian import E
from perturb.latex import Check, Derivation, Equation, Step
from perturb.montecarlo import cumulant, moment, sample_outputs
from perturb.network import Network

from ._common import (
    CHI,
    DELTA,
    G1_SYM,
    N_PREV,
    SIGMA_Z,
    V_SYM,
    R,
    concrete,
    exact_check,
    symbol_names,
    verdict_check,
)

__all__ = ["recursion", "chi_parallel", "build_order1"]

#: Monte Carlo setting of the embedded checks (fixed seed; a verdict at 99% confidence)
MC_SETTING = dict(activation="tanh", C_W=1.5, K1=1.5, widths=(10, 10), samples=200_000, seed=1)


def _incoming(lm) -> dict:
    """PDLT names of the previous layer's order-1 moments: E δ = G1/n_{ℓ−1}, E δ² = V/n_{ℓ−1}."""
    return {moment_symbol((1,), 1): G1_SYM / N_PREV, moment_symbol((2,), 1): V_SYM / N_PREV}


@functools.lru_cache(maxsize=8)
def recursion(quantity: str) -> sp.Expr:
    """The engine's order-1 recursion for ``"V"`` or ``"G1"`` in K, C_W, r, V, G1 and atoms.

    ``V^{(ℓ+1)} = n_ℓ [1/n] Var Σ^{(ℓ)}``, ``G1^{(ℓ+1)} = n_ℓ [1/n] (E Σ^{(ℓ)} − K^{(ℓ+1)})`` with
    ``r = n_ℓ/n_{ℓ−1}``, for the generic activation σ.

    >>> from perturb.gaussian import E
    >>> from perturb.activations import SIGMA, Z
    >>> sp.Symbol("V", real=True) in recursion("V").free_symbols
    True
    """
    lm = layer_map(1, 1)
    b = {"V": (2,), "G1": (1,)}[quantity]
    n = lm.syms.n
    expr = n * lm.moment(b)[1].xreplace(_incoming(lm))
    return sp.expand(sp.expand(expr).xreplace({n: R * N_PREV}))


def chi_parallel() -> sp.Expr:
    """χ_∥ = C_W ∂_K <σ²>_K, differentiated by the atom's Price rule."""
    lm = layer_map(1, 1)
    K = lm.K[(0, 0)]
    return lm.syms.C_W * sp.diff(E(SIGMA_Z**2, K), K)


def _coeff(expr: sp.Expr, sym: sp.Symbol) -> sp.Expr:
    return sp.expand(expr).coeff(sym)


def build_order1(quantity: str, activation: str = "generic", mc: bool = True) -> Derivation:
    act = get_activation(activation)
    lm = layer_map(1, 1)
    K, C_W, C_b, n = lm.K[(0, 0)], lm.syms.C_W, lm.syms.C_b, lm.syms.n
    names = symbol_names(lm)
    b = {"V": (2,), "G1": (1,)}[quantity]
    g = E(SIGMA_Z**2, K)
    c = functools.partial(concrete, activation=act)
    steps = []
    j = sp.Symbol("j", integer=True)
    sj = sp.Function("sigma")(sp.Indexed("z", j))
    steps.append(Step(
        "Conditional Gaussianity of layer $\\ell$",
        "Given $S=\\Sigma^{(\\ell-1)}$ the $n_\\ell$ preactivations of layer $\\ell$ are iid $N(0,S)$ "
        "[LH Lemma 4.4], so $\\Sigma^{(\\ell)}$ is $C_b$ plus $C_W$ times the mean of $n_\\ell$ iid copies of $\\sigma(z)^2$.",
        "The infinite-width kernel of the next layer is the engine's kernel map:",
        (Equation(r"\Sigma^{(\ell)}", C_b + C_W / n * sp.Sum(sj**2, (j, 1, n))),
         Equation(r"K^{(\ell+1)}", c(lm.kernel()[(0, 0)])))))
    kap = lm.joint_cumulant((0, 0))
    steps.append(Step(
        "Conditional cumulants of the mean of $n_\\ell$ iid variables",
        "The $q$-th cumulant of a mean of $n$ iid variables is $n^{1-q}$ times theirs; cumulants of "
        "$\\sigma^2$ from moments by the moment-cumulant formula. Writing $\\Sigma^{(\\ell)} - K^{(\\ell+1)} = A(S) + Y$ "
        "with $A(S) = C_W[g(S) - g(K)]$, $g(S) = \\langle\\sigma^2\\rangle_S$, the fluctuation $Y$ has "
        "$\\kappa_q(Y\\mid S) = C_W^q n_\\ell^{1-q}\\kappa_q[\\sigma^2]_S$.",
        "", (Equation(r"\kappa_2[\sigma^2]_K", c(kap)),)))
    tay = lm.taylor(g, 2, 1)
    steps.append(Step(
        "Taylor expansion in $\\delta = S - K$ by Price's rule",
        "Derivatives of Gaussian expectations in the variance follow the heat equation in its "
        "integrated-by-parts (Hermite) form, $\\partial_K\\langle f\\rangle_K = \\langle f\\,(z^2-K)\\rangle_K/(2K^2)$, "
        "valid for kinked $\\sigma$ as well.",
        "", tuple(Equation(rf"\frac{{1}}{{{sp.factorial(a[0])}}}\partial_K^{{{a[0]}}}\langle\sigma^2\rangle_K",
                           c(sp.factor_terms(coef))) for (a, _), coef in sorted(tay.items()))))
    cond = lm.conditional_moment(b)
    poly = sum(coef * DELTA ** a[0] for (a, _e), coef in cond.items())
    what = rf"\mathbb{{E}}\left[(\Sigma^{{(\ell)}}-K^{{(\ell+1)}})^{{{b[0]}}}\mid S\right]"
    steps.append(Step(
        "Conditional moment as a polynomial in $\\delta$",
        "Conditional moments from conditional cumulants (set partitions into blocks of size $\\ge 2$, "
        "since $\\mathbb{E}[Y\\mid S] = 0$), times powers of the drift $A(S)$; terms beyond order $1/n$ dropped "
        "(the $m$-th central moment of $S$ is $O(n^{-\\lceil m/2\\rceil})$).",
        "", (Equation(what, c(sp.collect(sp.expand(poly), DELTA))),)))
    mom = lm.moment(b)[1]
    steps.append(Step(
        "Closure with the previous layer's moments",
        "Average over $S$ (tower property): $\\mathbb{E}\\,\\delta^a$ is replaced by the previous layer's moment "
        "$\\mathcal{M}_a$, whose order-$e$ coefficient in $1/n$ is $\\mathcal{M}^{[e]}_a$; truncation at total order 1.",
        "", (Equation(r"[1/n]\;" + what.replace(r"\mid S", ""), c(mom)),)))
    res = recursion(quantity)
    lhs = {"V": r"V^{(\ell+1)}", "G1": r"G^{\{1\}(\ell+1)}"}[quantity]
    steps.append(Step(
        "PDLT names",
        "Definitions [PDLT ch. 4]: $\\mathbb{E}\\,\\delta = G^{\\{1\\}(\\ell)}/n_{\\ell-1}$, "
        "$\\mathbb{E}\\,\\delta^2 = V^{(\\ell)}/n_{\\ell-1}$ at order 1; "
        + ("$V^{(\\ell+1)} = n_\\ell \\times$ the order-1 part of $\\mathrm{Var}\\,\\Sigma^{(\\ell)}$" if quantity == "V" else
           "$G^{\\{1\\}(\\ell+1)} = n_\\ell \\times$ the order-1 part of $\\mathbb{E}\\,\\Sigma^{(\\ell)} - K^{(\\ell+1)}$")
        + "; $r = n_\\ell/n_{\\ell-1}$.",
        "", (Equation(lhs, c(sp.collect(res, [V_SYM, G1_SYM, R]))),)))
    chi = chi_parallel()
    checks: list[Check] = []
    if quantity == "V":
        rest = sp.expand(res - _coeff(res, V_SYM) * V_SYM)
        compact = rest + R * CHI**2 * V_SYM
        steps.append(Step(
            "Identify the parallel susceptibility",
            "$\\chi_\\parallel = C_W\\,\\partial_K\\langle\\sigma^2\\rangle_K$ (differentiated by the same rule); "
            "the coefficient of $V^{(\\ell)}$ is checked below to equal $r\\chi_\\parallel^2$ exactly.",
            "", (Equation(r"\chi_{\parallel}", c(chi)),)))
        checks.append(exact_check("coefficient of V in the engine's recursion minus r*chi_par^2 (chi_par by Price's rule)",
                                  _coeff(res, V_SYM) - R * chi**2))
        checks.append(exact_check("V-free part minus C_W^2 times the conditional variance of sigma^2",
                                  rest - C_W**2 * kap))
    else:
        g2 = sp.diff(g, K, 2) / 2
        compact = R * (CHI * G1_SYM + sp.factor_terms(C_W * g2) * V_SYM)
        steps.append(Step(
            "Identify the susceptibility and the curvature term",
            "$\\chi_\\parallel = C_W\\,\\partial_K\\langle\\sigma^2\\rangle_K$; the $V$ term is "
            "$\\tfrac12 C_W\\,\\partial_K^2\\langle\\sigma^2\\rangle_K$ (second-order Taylor term averaged against $\\mathbb{E}\\,\\delta^2$).",
            "", (Equation(r"\chi_{\parallel}", c(chi)),)))
        checks.append(exact_check("coefficient of G1 minus r*chi_par (chi_par by Price's rule)", _coeff(res, G1_SYM) - R * chi))
        checks.append(exact_check("coefficient of V minus (r C_W/2) d^2<sigma^2>/dK^2", _coeff(res, V_SYM) - R * C_W * g2))
        checks.append(exact_check("no V- and G1-free term (the mean is unbiased at order 1 within a layer)",
                                  res.xreplace({V_SYM: 0, G1_SYM: 0})))
    checks += _relu_exact_check(quantity)
    if mc:
        checks.append(_mc_check(quantity))
    result = [Equation(lhs, c(sp.collect(res, [V_SYM, G1_SYM, R])))]
    result.append(Equation(lhs, c(compact), note=""))
    if quantity == "V":
        result.append(Equation("", sp.Integer(0), note="with $V^{(1)} = 0$ (the first layer is Gaussian)."))
    statement = {
        "V": "The four-point vertex at one input: $\\mathrm{Var}\\,\\Sigma^{(\\ell)} = V^{(\\ell+1)}/n_\\ell + O(n^{-2})$, "
             "so that the output's fourth cumulant is $\\kappa_4 = 3V^{(L+1)}/n_L$. Its recursion over layers is derived by the "
             "engine's layer map at order 1 [LH Thm 4.2; PDLT (4.90)].",
        "G1": "The $1/n$ correction to the kernel at one input: $\\mathbb{E}[z^2] = K^{(\\ell+1)} + G^{\\{1\\}(\\ell+1)}/n_\\ell + O(n^{-2})$. "
              "Its recursion is derived by the engine's layer map at order 1 [PDLT ch. 4].",
    }[quantity]
    result = [e for e in result if e.lhs]
    return Derivation(
        name={"V": "four_point_vertex", "G1": "kernel_correction"}[quantity],
        title={"V": "The four-point vertex V at order 1/n", "G1": "The kernel correction G1 at order 1/n"}[quantity],
        statement=statement,
        assumptions=("Fully connected network with Gaussian weights $W \\sim N(0, C_W/n_{\\ell-1})$ and biases $b \\sim N(0, C_b)$.",
                     "One input; widths $n_\\ell$ large with $r = n_\\ell/n_{\\ell-1}$ fixed.",
                     "$\\langle\\cdot\\rangle_K$ is the expectation over $z\\sim N(0,K)$; $K = K^{(\\ell)}$ is the infinite-width kernel.",
                     "$V^{(1)} = G^{\\{1\\}(1)} = 0$: the first layer is exactly Gaussian."),
        steps=steps, result=result, checks=checks,
        references=("[LH] Les Houches lectures, arXiv 2309.01592, Thm 4.2 and Lemma 4.4.",
                    "[PDLT] Roberts, Yaida, Hanin, arXiv 2106.10165, ch. 4.",
                    "[H22] Hanin, arXiv 2204.01058."),
        parameters={"activation": act.name, "order": 1},
        symbol_names=names,
    )


def _relu_exact_check(quantity: str) -> list[Check]:
    """ReLU at C_W = 2: the engine's fold vs the exact law of docs/reference.md §4 (relu_exact), order 1."""
    from perturb.relu_exact import moment_series

    nn = sp.Symbol("n", positive=True)
    L = 3
    st = FiniteWidth("relu", depth=L, order=1).symbolic(C_W=2, C_b=0, widths=[nn] * L, K1=1)
    if quantity == "V":
        exact = sp.expand(moment_series(4, L, 1) - 3 * moment_series(2, L, 1) ** 2)
        got = st.total_cumulant(4) - 0
        return [exact_check("ReLU (C_W = 2, L = 3, equal widths): engine's kappa4 = 3V/n vs the exact binomial-chi^2 law "
                            "(relu_exact.moment_series), order 1", sp.expand(got - exact))]
    exact = sp.expand(moment_series(2, L, 1))
    return [exact_check("ReLU (C_W = 2, L = 3): engine's E z^2 = K + G1/n vs the exact law (G1 = 0 for ReLU)",
                        sp.expand(st.total_moment(2) - exact))]


def _mc_check(quantity: str) -> Check:
    s = MC_SETTING
    fw = FiniteWidth(s["activation"], depth=len(s["widths"]), order=1)
    st = fw.evaluate(K1=s["K1"], widths=list(s["widths"]), C_W=s["C_W"])
    net = Network(s["activation"], widths=s["widths"], C_W=s["C_W"])
    x = sample_outputs(net, [1.0], s["samples"], seed=s["seed"])  # n0 = 1, |x|^2 = 1: K1 = C_W
    where = (f"{s['activation']}, C_W = {s['C_W']}, C_b = 0, K1 = {s['K1']}, widths {list(s['widths'])}, "
             f"{s['samples']} Monte Carlo networks (seed {s['seed']})")
    if quantity == "V":
        return verdict_check(f"output kappa4 = 3V/n_L (engine, order 1) vs Monte Carlo k-statistic; {where}",
                             float(st.total_cumulant(4)), cumulant(x, 4), null=0.0, null_label="the Gaussian value")
    return verdict_check(f"output E z^2 = K + G1/n_L (engine, order 1) vs Monte Carlo; {where}",
                         float(st.total_moment(2)), moment(x, 2), null=float(st.K), null_label="the infinite-width K")
