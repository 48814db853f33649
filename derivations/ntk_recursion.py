"""The NTK recursion (infinite width), from :func:`perturb.infinite.symbolic_recursion`."""

from __future__ import annotations

import numpy as np
import sympy as sp

from perturb.activations import get_activation
from perturb.gaussian import expect, zvars
from perturb.infinite import kernels, symbolic_recursion
from perturb.latex import Derivation, Equation, Step
from perturb.network import Network

from ._common import close_check, exact_check
from .nngp_recursion import names_of

TITLE = "NTK recursion (infinite width)"


def build(activation: str = "generic", order: int | None = None, checks: bool = True) -> Derivation:
    """Build the NTK derivation.

    >>> build("relu", checks=False).name
    'ntk_recursion'
    """
    act = get_activation(activation)
    gen = symbolic_recursion("generic")
    rec = symbolic_recursion(act.name)
    s = rec.symbols
    names = names_of(rec)
    n = sp.Symbol("n_ell", positive=True)
    names[n] = r"n_\ell"
    j = sp.Symbol("j", integer=True)
    sig = sp.Function("sigma")
    dsig = sp.Function("sigma'")
    za, zb = sp.Indexed("z_alpha", j), sp.Indexed("z_beta", j)
    Tprev = sp.Symbol("Theta_prev", real=True)
    names[Tprev] = r"\widehat{\Theta}^{(\ell)}_{\alpha\beta}"
    steps = [
        Step("Chain rule over the parameters of layer $\\ell+1$ and below",
             "$\\Theta = \\sum_\\mu \\lambda_\\mu\\,\\partial_\\mu z_\\alpha\\,\\partial_\\mu z_\\beta$ with learning-rate factors "
             "$\\lambda_b$, $\\lambda_W/n_\\ell$; the derivative through layer $\\ell$ brings $W\\,\\sigma'(z)$, and "
             "$\\sum_i W_{ki}W_{k'i}$ averages to $C_W\\delta_{kk'}/n_\\ell$.", "",
             (Equation(r"\widehat\Theta^{(\ell+1)}_{\alpha\beta}", s["lambda_b"] + s["lambda_W"] / n * sp.Sum(
                 sig(za) * sig(zb), (j, 1, n)) + s["C_W"] / n * sp.Sum(dsig(za) * dsig(zb), (j, 1, n)) * Tprev),)),
        Step("Law of large numbers", "At infinite width the means become Gaussian expectations at $K^{(\\ell)}$ and the "
             "NTK of layer $\\ell$ is deterministic [LH section 4; PDLT ch. 8].", "",
             (Equation(r"\Theta^{(\ell+1)}_{\alpha\beta}", gen.ntk),)),
    ]
    if not act.is_generic:
        steps.append(Step(f"Activation {act.name}", "Closed forms of the Gaussian expectations where known.", "",
                          (Equation(r"\sigma(z)", act.expr), Equation(r"\sigma'(z)", act.derivative()))))
    result = [Equation(r"\Theta^{(\ell+1)}_{\alpha\beta}", rec.ntk), Equation(r"\Theta^{(\ell+1)}_{\alpha\alpha}", rec.ntk_diag),
              Equation(r"\Theta^{(1)}_{\alpha\beta}", s["lambda_b"] + s["lambda_W"] * sp.Symbol("x_alpha_dot_x_beta") / sp.Symbol("n_0"))]
    names[sp.Symbol("x_alpha_dot_x_beta")] = r"x_\alpha\cdot x_\beta"
    out = []
    if checks:
        r = symbolic_recursion("relu")
        rs = r.symbols
        K = sp.Symbol("K", positive=True)
        Tl = K  # layer 1 with lambda = C and C_b = 0: Theta^(1) = K^(1)
        for _ in range(3):
            Tl = r.ntk_diag.subs({rs["K_aa"]: K, rs["Theta_aa"]: Tl, rs["C_W"]: 2, rs["C_b"]: 0,
                                  rs["lambda_W"]: 2, rs["lambda_b"]: 0})
        out.append(exact_check("ReLU at criticality (C_W = lambda_W = 2, C_b = lambda_b = 0): the symbolic NTK recursion "
                               "folded exactly gives Theta^(4) = 4 K (docs/reference.md section 2; PDLT ch. 9)", sp.expand(Tl - 4 * K)))
        k = kernels(Network("relu", depth=3, C_W=2.0, C_b=0.0), np.array([[1.0, 0.0]]))
        out.append(close_check("the same with the float64 kernel fold (perturb.infinite.kernels), K = 1",
                               4.0, float(k.ntk[0, 0]), 1e-13, "float64 rounding"))
        e = symbolic_recursion("erf")
        es = e.symbols
        z1, z2 = zvars(2)
        cov = [[0.7, 0.3], [0.3, 1.1]]
        d = sp.diff(sp.erf(z1), z1) * sp.diff(sp.erf(z2), z2)
        val = e.ntk.subs({es["K_aa"]: 0.7, es["K_bb"]: 1.1, es["K_ab"]: 0.3, es["Theta_ab"]: 1, es["C_W"]: 1, es["C_b"]: 0,
                          es["lambda_W"]: 0, es["lambda_b"]: 0})
        out.append(close_check("erf: closed-form <erf' erf'> inside the NTK recursion vs 30-digit mpmath quadrature",
                               expect(d, cov, method="mpmath", dps=30), float(val), 1e-13, "float64 closed form"))
    return Derivation(
        name="ntk_recursion", title="The NTK recursion", statement=(
            "At infinite width the neural tangent kernel is deterministic and obeys a recursion driven by the NNGP "
            "kernel [LH section 4; PDLT ch. 8; LEE]."),
        assumptions=("Standard parameterisation with learning-rate factors $\\lambda_b$, $\\lambda_W/n_{\\ell-1}$ "
                     "(NTK parameterisation: $\\lambda = C$).", "All hidden widths $n_\\ell\\to\\infty$."),
        steps=steps, result=result, checks=out,
        references=("[LH] arXiv 2309.01592, section 4.", "[PDLT] arXiv 2106.10165, ch. 8.", "[LEE] Lee et al. 2019."),
        parameters={"activation": act.name}, symbol_names=names)
