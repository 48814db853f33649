"""The NTK at order 1/n² (one input), derived by perturb.engine: conditional laws, closure, result."""

from __future__ import annotations

import sympy as sp

from perturb.activations import SIGMA, Z, get_activation
from perturb.engine.layermap import (
    SYMS,
    conditional_law,
    derive_layer_map,
    moment_symbol,
    ref_symbol,
    word_symbol,
)
from perturb.engine.observables import OUT
from perturb.latex import Check, Derivation, Equation, Step

from ._common import concrete

TITLE = "NTK mean and variance at order 1/n^2 (one input), derived by the engine"


def _names(lm) -> dict:
    names = {SYMS.S: r"\Sigma", SYMS.m: "m", word_symbol("O"): r"\Omega", OUT.lam_W: r"\lambda_W",
             OUT.lam_b: r"\lambda_b", ref_symbol("S"): "K", ref_symbol("O"): "H", SYMS.r: "r"}
    for w in lm.words:
        if w not in ("S", "O"):
            names[word_symbol(w)] = f"{w[0]}_{{{w[1:]}}}"
            names[ref_symbol(w)] = rf"\bar{{{w[0]}}}_{{{w[1:]}}}"
    for a in lm.moments:
        label = r"\,".join(("\\delta " + {"S": r"\Sigma", "O": r"\Omega"}.get(w, f"{w[0]}_{{{w[1:]}}}"))
                           + (f"^{p}" if p > 1 else "") for w, p in a)
        for e in range(3):
            names[moment_symbol(a, e)] = rf"\mathcal{{M}}^{{[{e}]}}[{label}]"
    return names


def build(activation: str = "generic", order: int | None = None, checks: bool = True) -> Derivation:
    """Build the order-1/n² NTK derivation.

    >>> build(checks=False).name
    'ntk_order2'
    """
    act = get_activation(activation)
    lm = derive_layer_map(2)
    ds = sp.diff(SIGMA(Z), Z)
    f1, f2 = sp.Function("f")(Z), sp.Function("g")(Z)

    def c(e):
        return concrete(e, act)

    laws = (
        Equation(r"\mathbb{E}[f(z_i)\,\Theta_{ii}\mid\ell]", conditional_law((f1,), ((0, 0),))),
        Equation(r"\mathbb{E}[\Theta_{ii}^2\mid\ell]", conditional_law((sp.S.One,), ((0, 0), (0, 0)))),
        Equation(r"\mathbb{E}[f(z_i)\,g(z_k)\,\Theta_{ik}\mid\ell]", conditional_law((f1, f2), ((0, 1),)),
                 note="i != k: two independent rows"),
        Equation(r"\mathbb{E}[f(z_i)\,g(z_k)\,\Theta_{ik}^2\mid\ell]", conditional_law((f1, f2), ((0, 1), (0, 1)))),
        Equation(r"\mathbb{E}[\sigma'(z_i)^2\,\Theta_{ii}^2\mid\ell]", conditional_law((ds**2,), ((0, 0), (0, 0)))),
    )
    refs = tuple(Equation(rf"\bar{{{w}}}'" if w not in ("S", "O") else ("K'" if w == "S" else "H'"), c(lm.refs[w]))
                 for w in ("S", "O", "T2", "R1", "R2"))
    o2 = (Equation(r"\mathcal{M}^{[2]}[\delta\Sigma]'", c(lm.moments[(("S", 1),)][2]),
                   note="the order-1/n^2 shift of the mean of Sigma"),)
    t = lm.targets
    n = sp.Symbol("n_L", positive=True)
    mean = sum((t["E[Theta]"][e] / n**e for e in range(3)), sp.S.Zero)
    var = sum(((t["E[Theta^2]"][e] - sum((t["E[Theta]"][i] * t["E[Theta]"][e - i] for i in range(e + 1)),
                                          sp.S.Zero)) / n**e for e in range(3)), sp.S.Zero)
    steps = [
        Step("Definitions", "Neuron $i$ of layer $\\ell+1$: $z_i = b_i + W_i\\cdot\\sigma$, and by the chain rule "
             "$\\Theta_{ik} = \\delta_{ik}[\\lambda_b + (\\lambda_W/m)|\\sigma|^2] + W_i^T M W_k$ with "
             "$M = \\mathrm{diag}(\\sigma')\\,\\Theta^{(\\ell)}\\,\\mathrm{diag}(\\sigma')$; write "
             "$\\Theta_{ii} = \\Omega + {:}W_i^T M W_i{:}$ with $\\Omega = \\mathbb{E}[\\Theta_{ii}\\mid\\ell]$.",
             "Layer $\\ell$ observables: $\\Sigma$, $\\Omega$, $T_a = C_W^a\\,\\mathrm{tr} M^a/m$, "
             "$R_a = C_W^{a+1}\\sigma^T M^a \\sigma/m$.", ()),
        Step("Conditional laws of one and two neurons", "Gaussian integration by parts over each weight row "
             "($\\mathbb{E}[W F] = (C_W/m)\\,\\mathbb{E}[\\partial_W F]$); the contracted graph's cycles are $T_a$, "
             "its chains $R_a$, with their powers of $1/m$; derivatives of $f$ in Hermite form "
             "$\\langle f^{(d)}\\rangle_\\Sigma = \\langle f\\, h_d\\rangle_\\Sigma$.", "", laws),
        Step("Closure found by the work list", "The variance at order $1/n^2$ needs the observables "
             f"{', '.join(sorted(lm.words))} and {len(lm.moments)} joint moments of them; their infinite-width "
             "means map as follows.", "", refs),
        Step("Order-2 averaging", "Taylor expansion of every atom around K (Price's theorem, Hermite form), "
             "closure with the incoming moments (the m-th central moment is $O(n^{-\\lceil m/2\\rceil})$), "
             "truncation at $1/n^2$.", "", o2),
    ]
    result = [Equation(r"\mathbb{E}\,\Theta", mean), Equation(r"\mathrm{Var}\,\Theta", var,
                                                             note="one output neuron; moments of layer L")]
    out: list[Check] = []
    if checks:
        from perturb.engine.fold import ntk_series_exact
        from perturb.linear_exact import ntk_moments_exact
        from perturb.ntk_exact import ntk_series as exact_series

        nn = sp.Symbol("n", positive=True)
        for L in (2, 3):
            mine = ntk_series_exact("linear", [nn] * L, [1], C_W=1, C_b=0, order=2)["var"]
            ex = sp.series(ntk_moments_exact([nn] * L)["var"].subs(nn, 1 / SYMS.eps), SYMS.eps, 0, 3).removeO()
            diff = sp.simplify(sum(mine) - ex.subs(SYMS.eps, 1 / nn))
            out.append(Check(f"deep linear L = {L}: Var Theta to 1/n^2 vs exact chi-square moments (truncated)",
                             str(sp.expand(ex.subs(SYMS.eps, 1 / nn))), str(sp.expand(sum(mine))), diff == 0,
                             "exact SymPy rationals in n (perturb.linear_exact, not the engine)"))
        mine = ntk_series_exact("relu", [nn, nn], [1], C_W=2, C_b=0, lambda_b=0, order=2)["var"]
        ex = exact_series("relu", 2, 2, C_W=2, lambda_b=0)["var"]
        got = [sp.simplify(v * nn**e) for e, v in enumerate(mine)]
        out.append(Check("ReLU L = 2: coefficients of Var Theta in 1/n vs the exact ReLU moments expanded in 1/n",
                         str(ex), str(got), got == ex, "exact (perturb.ntk_exact, 2^-n terms dropped)"))
    return Derivation(
        name="ntk_order2", title="NTK mean and variance at order 1/n^2",
        statement="From the network's definition alone, the engine derives the conditional laws of new neurons, the "
                  "observables the order needs, and the NTK's mean and variance of one output to order $1/n^2$.",
        assumptions=("One input; Gaussian weights and biases; learning-rate factors $\\lambda_b$, "
                     "$\\lambda_W/n_{\\ell-1}$; kinked activations through the Hermite form (no $\\sigma''$).",),
        steps=steps, result=result, checks=out,
        references=("[PDLT] Roberts, Yaida, Hanin, arXiv 2106.10165, ch. 8.",
                    "[LH] Hanin, Les Houches lectures, arXiv 2309.01592."),
        parameters={"activation": act.name}, symbol_names=_names(lm))
