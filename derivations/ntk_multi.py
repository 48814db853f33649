"""NTK statistics at order 1/n for two inputs, from the derived map of :mod:`perturb.ntk.derive_multi`."""

from __future__ import annotations

import numpy as np

from perturb.activations import get_activation
from perturb.latex import Check, Derivation, Equation, Step
from perturb.ntk.chain import ntk_statistics
from perturb.ntk.derive_multi import derive_ntk_multi_map, derive_ntk_output
from perturb.ntk.multi import ntk_statistics_multi

from ._common import close_check, concrete

TITLE = "NTK statistics at order 1/n for several inputs"


def build(activation: str = "generic", order: int | None = None, checks: bool = True) -> Derivation:
    """Build the two-input NTK-statistics derivation.

    >>> build(checks=False).name
    'ntk_multi'
    """
    act = get_activation(activation)
    mm, out = derive_ntk_multi_map(2), derive_ntk_output(2)
    y = mm.syms
    names = {y.lam_W: r"\lambda_W", y.lam_b: r"\lambda_b", y.r: "r"}
    for p in y.pairs:
        lab = f"{p[0] + 1}{p[1] + 1}"
        names[y.K[p]], names[y.H[p]] = f"K_{{{lab}}}", f"H_{{{lab}}}"
    for t, s in y.B.items():
        names[s] = "B_{" + "".join(str(i + 1) for i in t) + "}"      # the Bt storage order
    for t, s in y.F.items():
        names[s] = "F_{" + "".join(str(i + 1) for i in t) + "}"
    for group in (y.A, y.D):
        for (p, q), s in group.items():
            names[s] = s.name.split("_")[0] + "_{(" + f"{p[0] + 1}{p[1] + 1})({q[0] + 1}{q[1] + 1})" + "}"

    def c(e):
        return concrete(e, act)

    p12, p11, p22 = (0, 1), (0, 0), (1, 1)
    steps = [
        Step("The lemma for a vector of preactivations",
             "Given layer $\\ell$ (width $m$), the row $W_i \\sim N(0, c I)$, $c = C_W/m$, shared by all inputs has "
             "$W_i \\mid z_i \\sim N(\\mu, P)$ with $\\mu = c\\sum_\\gamma \\sigma_\\gamma y_\\gamma$, $y = \\Sigma^{-1} z_i$; "
             "hence $E[\\Theta_{ii;\\alpha\\beta}\\mid z_i] = \\Omega_{\\alpha\\beta} + m^{-1}\\sum_{\\gamma\\delta} "
             "R_{\\alpha\\beta;\\gamma\\delta}[y_\\gamma y_\\delta - (\\Sigma^{-1})_{\\gamma\\delta}]$ and the conditional "
             "covariances $(T_{\\alpha\\beta;\\gamma\\delta} + T_{\\alpha\\beta;\\delta\\gamma})/m$ "
             "(perturb.ntk.derive_multi).", "", ()),
        Step("Infinite-width kernels", "Law of large numbers for the means over iid neurons (matrix atoms at $K$).", "",
             (Equation(r"K^{(\ell+1)}_{12}", c(mm["K"][p12])), Equation(r"H^{(\ell+1)}_{12}", c(mm["H"][p12])))),
        Step("Pair sums at leading order", "Diagonal neuron terms plus the $n(n-1)$ pairs of the pair lemma; "
             "stored as $B_{\\alpha\\beta\\gamma\\delta} = E\\,T_{\\alpha\\beta;\\gamma\\delta}$ (PDLT: "
             "$B_{\\alpha\\gamma\\beta\\delta}$).", "",
             (Equation(r"B^{(\ell+1)}_{1122}", c(mm["B"][(0, 0, 1, 1)])),
              Equation(r"B^{(\ell+1)}_{1212}", c(mm["B"][(0, 1, 0, 1)])))),
        Step("Order-1 statistics", "Taylor expansion of the O(1) parts around $(K, H)$ in the matrix entries "
             "(the atoms' Price/Hermite rule), closure with the incoming $G1, V, H1, A, D$, pair sums at their means. "
             "The expressions (e.g. $A_{(12)(12)}$) contain $K^{-1}$ to the fourth power and are not printed.", "", ()),
    ]
    result = [Equation(r"n_L\,E\,\Theta_{12} - n_L H_{12}", out["mean"][p12][1]),
              Equation(r"n_L\,\mathrm{Var}\,\Theta_{12}", out["cov"][(p12, p12)]),
              Equation(r"n_L\,\mathrm{Cov}(\Theta_{11}, \Theta_{22})", out["cov"][(p11, p22)]),
              Equation(r"n_L\,\mathrm{Cov}(z_1 z_2, \Theta_{12})", out["cov_z"][(p12, p12)])]
    results: list[Check] = []
    if checks:
        X = np.array([[1.0, 0.2], [0.4, -0.9]])
        st = ntk_statistics_multi("tanh", [40, 50, 60], X, C_W=1.0, C_b=0.1)
        one = ntk_statistics("tanh", [40, 50, 60], X[1], C_W=1.0, C_b=0.1)
        results.append(close_check("tanh: the two-input Var Theta_22 equals the one-input fold at x_2 (perturb.ntk.chain)",
                                   float(one.var), st.cov[1, 1, 1, 1], 1e-12, "same quantity, float64 rounding"))
        C, lam, n1, n2 = 1.3, 0.7, 17, 29
        G = X @ X.T / 2
        lin = ntk_statistics_multi("linear", [n1, n2], X, C_W=C, C_b=0.0, lambda_W=lam, lambda_b=0.0)
        pair, diag = 2 * G[0, 1] ** 2, G[0, 0] * G[1, 1]       # X_ac X_bd + X_ad X_bc and X_ab X_cd at (11)(22)
        exact = lam**2 * C**4 * ((pair + 8 * diag) / n2 + (4 * pair + 2 * diag) / n1)
        results.append(close_check("deep linear network (two hidden layers): Cov(Theta_11, Theta_22) vs the order-1/n part of "
                                   "the exact Wishart/Wick moments", exact, lin.cov[0, 0, 1, 1], 1e-12,
                                   "float64 rounding"))
    return Derivation(
        name="ntk_multi", title=TITLE,
        statement="For several inputs the NTK statistics are tensors over inputs: $E\\,\\Theta_{\\alpha\\beta} = H + H1/n_L$, "
                  "$\\mathrm{Cov}(\\Theta_{\\alpha\\beta}, \\Theta_{\\gamma\\delta}) = (A + B_{\\alpha\\beta\\gamma\\delta} + "
                  "B_{\\alpha\\beta\\delta\\gamma})/n_L$ (storage order; PDLT's $B_{\\alpha\\gamma\\beta\\delta} + "
                  "B_{\\alpha\\delta\\beta\\gamma}$), derived by the engine [PDLT ch. 8].",
        assumptions=("Two inputs with a non-singular kernel; Gaussian weights; learning-rate factors "
                     "$\\lambda_b$, $\\lambda_W/n_{\\ell-1}$.",),
        steps=steps, result=result, checks=results,
        references=("[PDLT] arXiv 2106.10165, ch. 8.",),
        parameters={"activation": act.name}, symbol_names=names)


__all__ = ["TITLE", "build"]
