"""Exact moments of ReLU networks at one input (the binomial chi-square law), from perturb.relu_exact."""

from __future__ import annotations

import sympy as sp

from perturb.finite import FiniteWidth
from perturb.latex import Check, Derivation, Equation, Step
from perturb.montecarlo import moment, sample_outputs
from perturb.network import Network
from perturb.relu_exact import (
    chi2_binomial_moment,
    layer_moment_symbolic,
    moment_series,
    moment_symbolic,
)

from ._common import exact_check, verdict_check

TITLE = "Exact moments of ReLU networks (one input)"


def build(activation: str = "relu", order: int | None = None, checks: bool = True) -> Derivation:
    """Build the exact-ReLU derivation (``activation`` must be relu).

    >>> build(checks=False).name
    'relu_moments'
    """
    from perturb.errors import PerturbError

    if activation not in (None, "relu", "generic"):
        raise PerturbError(f"relu_moments is for relu only, got activation '{activation}'")
    n, k = sp.Symbol("n", positive=True), sp.Symbol("k", integer=True, positive=True)
    B = sp.Symbol("B", integer=True, nonnegative=True)
    steps = [
        Step("Matrix model", "With zero biases the output has the law of $W^{(L+1)}D^{(L)}W^{(L)}\\cdots D^{(1)}W^{(1)}x$ with "
             "$D^{(\\ell)}$ diagonal iid Bernoulli(1/2) [LH Prop. 5.2].", "", ()),
        Step("One layer", "Given $B_\\ell\\sim\\mathrm{Bin}(n_\\ell, 1/2)$ active neurons, "
             "$\\Sigma^{(\\ell)} = (C_W/n_\\ell)\\,\\Sigma^{(\\ell-1)}\\chi^2_{B_\\ell}$ (independent factors).", "",
             (Equation(r"\mathbb{E}\left[(\chi^2_B)^k\mid B\right]", sp.RisingFactorial(B / 2, k) * 2**k),)),
        Step("Average over the binomial", "Expand $B(B+2)\\cdots(B+2k-2)$ in falling factorials (Stirling numbers of the "
             "second kind) and use $\\mathbb{E}[B^{\\underline{j}}] = n^{\\underline{j}}/2^j$.", "",
             tuple(Equation(rf"\mathbb{{E}}\left[(\chi^2_B)^{{{kk}}}\right]", sp.factor(layer_moment_symbolic(kk, n)))
                   for kk in (1, 2, 3))),
        Step("Product over layers", "Independence of the layers; $\\mathbb{E}\\,z^{2k} = (2k-1)!!\\,\\mathbb{E}\\,\\Sigma^k$.", "", ()),
    ]
    ns = sp.symbols("n_1:3", positive=True)
    result = [Equation(r"\mathbb{E}\,z^{4}\ (L = 2)", sp.factor(moment_symbolic(4, list(ns)))),
              Equation(r"\mathbb{E}\,z^4/(\mathbb{E}\,z^2)^2\ (L = 1,\ C_W = 2)",
                       sp.factor(moment_symbolic(4, [n], C_W=2) / moment_symbolic(2, [n], C_W=2) ** 2))]
    out: list[Check] = []
    if checks:
        bad = [(nn, kk) for nn in range(1, 9) for kk in range(1, 5)
               if layer_moment_symbolic(kk, nn) != sp.Rational(chi2_binomial_moment(nn, kk).numerator,
                                                              chi2_binomial_moment(nn, kk).denominator)]
        out.append(Check("E[(chi^2_B)^k]: the Stirling-number polynomial vs direct enumeration over B, n = 1..8, k = 1..4",
                         "0 mismatches", f"{len(bad)} mismatches", not bad, "exact rational arithmetic"))
        L = 2
        st = FiniteWidth("relu", depth=L, order=2).symbolic(C_W=2, C_b=0, widths=[n] * L, K1=1)
        out.append(exact_check("E z^4 series to order 2: the finite-width engine (any activation, here ReLU closed forms) "
                               "vs the exact law", sp.expand(st.total_moment(4) - moment_series(4, L, 2))))
        widths, N = (4, 4), 200_000
        x = sample_outputs(Network("relu", widths=widths, C_W=2.0), [1.0], N, seed=3)
        exact = float(moment_symbolic(4, list(widths), C_W=2, K1=2))
        out.append(verdict_check(f"E z^4 exact (K1 = 2, widths {list(widths)}) vs Monte Carlo ({N} networks, seed 3)",
                                 exact, moment(x, 4), null=12.0, null_label="the Gaussian value 3 K1^2 ="))
    return Derivation(
        name="relu_moments", title="Exact moments of deep ReLU networks at one input",
        statement="At any width, the even moments of a ReLU network's output at one input are products over layers "
                  "of binomial chi-square moments [LH section 5; HN; ZP].",
        assumptions=("ReLU activation, zero biases, Gaussian weights with variance $C_W/n_{\\ell-1}$.",),
        steps=steps, result=result, checks=out,
        references=("[LH] arXiv 2309.01592, Prop. 5.2.", "[HN] Hanin and Nica, arXiv 1812.05994.",
                    "[ZP] Zavatone-Veth and Pehlevan 2021."),
        parameters={"activation": "relu"}, symbol_names={})
