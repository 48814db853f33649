"""dNTK–preactivation correlation E[z O3] at order 1/n (one input), from :mod:`perturb.ntk.dntk`."""

from __future__ import annotations

import sympy as sp

from perturb.activations import get_activation
from perturb.gaussian.atom import GaussianExpectation
from perturb.gaussian.dispatch import substitute_activation
from perturb.latex import Check, Derivation, Equation, Step
from perturb.ntk.dntk import derive_dntk_layer_map, dntk_statistics_exact, sift_delta

from ._common import concrete, exact_check

TITLE = "dNTK: how far the NTK moves under GD at order 1/n (one input)"


def build(activation: str = "generic", order: int | None = None, checks: bool = True) -> Derivation:
    """Build the dNTK derivation.

    >>> build(checks=False).name
    'dntk'
    """
    act = get_activation(activation)
    rec = derive_dntk_layer_map()
    y = rec.syms
    names = {y["K"]: "K", y["H"]: "H", y["lambda_W"]: r"\lambda_W", y["r"]: "r",
             **{y[k]: rf"{k}^{{(\ell)}}" for k in ("B", "F", "P", "Q")}}

    def c(e):
        if not act.is_generic:    # delta atoms (kinked σ) by the sifting rule, the rest as usual
            e = substitute_activation(e, act)
            e = e.xreplace({a: sift_delta(a.args[0], a.args[1]) for a in e.atoms(GaussianExpectation)
                            if a.args[0].has(sp.DiracDelta)})
        return concrete(e, act)

    steps = [
        Step("The neuron-level identity",
             "With $z_a = b_a + W_a\\cdot\\sigma$ and $\\Theta_{ab} = \\delta_{ab}(\\lambda_b + (\\lambda_W/n)|\\sigma|^2) + "
             "W_a^T D\\Theta D W_b$, differentiating along every parameter gives $O_{3;ab,c} = (\\lambda_W/n)"
             "[\\delta_{ac} W_b\\cdot v + \\delta_{bc} W_a\\cdot v] + 2\\delta_{ab}(\\lambda_W/n) W_c\\cdot v + "
             "\\sum W_{ap}W_{bq}W_{cs} T_{3;pqs}$, $v = D\\Theta D\\sigma$, with $T_3$ built from $\\sigma''$, $\\Theta$ and "
             "the previous layer's $O_3$ (perturb.ntk.dntk).", "", ()),
        Step("Closure",
             "Integrating the Gaussian rows conditionally on the preactivations: $E[O_{3;ac,c}\\mid z] = (\\tilde Q/n) "
             "z_a/\\Sigma$, $E[O_{3;aa,c}\\mid z] = (\\tilde P/n) z_c/\\Sigma$ ($a \\ne c$), $E[z_a O_{3;aa,a}] = "
             "(\\tilde P + 2\\tilde Q)/n$; the means of the pair sums $\\tilde P, \\tilde Q$ at leading order, by index "
             "collapse of $T_3$ and the conditional pair laws of $\\Theta$ and $O_3$:", "",
             tuple(Equation(rf"{k}^{{(\ell+1)}}", c(rec[k])) for k in ("P", "Q"))),
    ]
    result = [Equation(r"n_L\,E[z\,O_3]", sp.Symbol("P") + 2 * sp.Symbol("Q"),
                       note="at the output layer; one GD step moves the NTK by $-\\eta E[z O_3] + O(\\eta^2)$.")]
    out: list[Check] = []
    if checks:
        # independent: Stein identity for ReLU with C_b = 0 (z homogeneous of degree L+1, Δz = 0):
        # n E[z O3] = n[(L+1) E[Θ z²] − E[Θ²]] at order 1/n, from the NTK statistics only
        for L, widths in ((1, [10]), (2, [7, 12])):
            st = dntk_statistics_exact("relu", widths, [1], C_W=2, C_b=0)
            H, H1, K, G1, D, F, A, B = (st.ntk.last(k) for k in ("H", "H1", "K", "G1", "D", "F", "A", "B"))
            stein = (L + 1) * (H * G1 + K * H1 + D + 2 * F) - (2 * H * H1 + A + 2 * B)
            out.append(exact_check(f"ReLU, C_W = 2, widths {widths}: P + 2Q vs the Stein identity's order-1/n part",
                                   sp.simplify(st.z_dntk * widths[-1] - stein)))
        out.append(Check("E[z O3] of real tanh/erf/ReLU networks and one GD step (train_gd) vs (P + 2Q)/n",
                         "agreement at 99%", "see tests/test_dntk_mc.py", True,
                         "Monte Carlo checks live in the test suite (seconds to minutes)"))
    return Derivation(
        name="dntk", title="dNTK: how far the NTK moves at order 1/n",
        statement="Under gradient descent on one sample the NTK moves by $E[\\Delta\\Theta] = -\\eta E[z O_3] + "
                  "O(\\eta^2)$ with $E[z O_3] = (P + 2Q)/n_L$; P and Q obey a derived recursion [PDLT ch. 11].",
        assumptions=("One input; Gaussian weights; NTK parameterisation $\\lambda = C$ in the checks.",),
        steps=steps, result=result, checks=out,
        references=("[PDLT] arXiv 2106.10165, ch. 11.",),
        parameters={"activation": act.name}, symbol_names=names)
