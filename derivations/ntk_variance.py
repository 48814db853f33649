"""NTK variance at order 1/n (one input), from the derived NTK layer map of :mod:`perturb.ntk`."""

from __future__ import annotations

import sympy as sp

from perturb.activations import get_activation
from perturb.latex import Check, Derivation, Equation, Step
from perturb.ntk import derive_ntk_layer_map
from perturb.ntk.chain import ntk_statistics

from ._common import close_check, concrete

TITLE = "NTK mean and variance at order 1/n (one input)"


def build(activation: str = "relu", order: int | None = None, checks: bool = True) -> Derivation:
    """Build the NTK-variance derivation.

    >>> build(checks=False).name
    'ntk_variance'
    """
    act = get_activation(activation)
    rec = derive_ntk_layer_map()
    sy = rec.syms
    names = {sy.K: "K", sy.H: "H", sy.lam_W: r"\lambda_W", sy.lam_b: r"\lambda_b", sy.r: "r"}
    names.update({s: rf"{n}^{{(\ell)}}" for n, s in sy.stats.items()})

    def c(e):
        return concrete(e, act)

    steps = [
        Step("Collective observables of the NTK", "Conditionally on layer $\\ell$, neuron $i$ of layer $\\ell+1$ has "
             "$z_i = b_i + W_i\\cdot\\sigma$ and $\\Theta_{ii} = \\lambda_b + (\\lambda_W/n)|\\sigma|^2 + W_i^T M W_i$ with one "
             "shared Gaussian row $W_i$; Gaussian conditioning on the row closes the state $(\\Sigma, \\Omega \\mid T, R)$ "
             "at order $1/n$ (perturb.ntk.derive).", "", ()),
        Step("Infinite-width kernels", "Law of large numbers for the means over iid neurons.", "",
             (Equation(r"K^{(\ell+1)}", c(rec["K"])), Equation(r"H^{(\ell+1)}", c(rec["H"])))),
        Step("Order-1 statistics", "Conditional cumulants of means of iid neurons, Taylor expansion of every atom around "
             "$(K, H)$ by the Hermite (Price) rule, closure with the incoming moments, truncation at order $1/n$.", "",
             tuple(Equation(rf"{n}^{{(\ell+1)}}", c(rec[n])) for n in ("B", "F", "D", "A"))),
    ]
    result = [Equation(r"n_L\,\mathrm{Var}\,\Theta", sp.Symbol("A") + 2 * sp.Symbol("B"),
                       note="at the output layer, to leading order.")]
    out: list[Check] = []
    if checks:
        # docs/reference.md §3 (these recursions iterated exactly: 3, 58/9, 10, 68/5): critical ReLU (lambda_b = 0, lambda_W = 1, K = 1): (A + 2B)/H^2 = 3, 6.444, 10, 13.6
        st = ntk_statistics("relu", (100, 100, 100, 100), (1.0,), C_W=2.0, C_b=0.0, lambda_W=1.0, lambda_b=0.0, dps=30)
        for ell, ref in ((2, 3.0), (3, 6.444), (4, 10.0), (5, 13.6)):
            out.append(close_check(f"critical ReLU: (A + 2B)/H^2 at layer {ell} vs docs/reference.md section 3",
                                   ref, float(st.ratio(ell)), 5e-4, "reference quoted to 3-4 digits"))
    return Derivation(
        name="ntk_variance", title="NTK mean and variance at order 1/n",
        statement="The NTK of a finite network fluctuates at order $1/n$: $\\mathrm{Var}\\,\\Theta = (A + 2B)/n_L$, with "
                  "A, B, D, F obeying a derived recursion [PDLT ch. 8; GMG].",
        assumptions=("One input; Gaussian weights; learning-rate factors $\\lambda_b$, $\\lambda_W/n_{\\ell-1}$.",),
        steps=steps, result=result, checks=out,
        references=("[PDLT] arXiv 2106.10165, ch. 8.", "[GMG] arXiv 2508.11522."),
        parameters={"activation": act.name}, symbol_names=names)
