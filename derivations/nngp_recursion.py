"""The NNGP recursion (infinite width), from :func:`perturb.infinite.symbolic_recursion`."""

from __future__ import annotations

import mpmath
import numpy as np
import sympy as sp

from perturb.activations import get_activation
from perturb.finite import layer_map
from perturb.gaussian import expect, zvars
from perturb.infinite import kernels, symbolic_recursion
from perturb.latex import Derivation, Equation, Step
from perturb.network import Network

from ._common import close_check

TITLE = "NNGP kernel recursion (infinite width)"


def names_of(rec) -> dict:
    s = rec.symbols
    return {s["K_aa"]: r"K_{\alpha\alpha}", s["K_bb"]: r"K_{\beta\beta}", s["K_ab"]: r"K_{\alpha\beta}",
            s["Theta_ab"]: r"\Theta_{\alpha\beta}", s["Theta_aa"]: r"\Theta_{\alpha\alpha}",
            s["lambda_W"]: r"\lambda_W", s["lambda_b"]: r"\lambda_b"}


def first_layer_symbols():
    n0 = sp.Symbol("n_0", positive=True)
    xx = sp.Symbol("x_alpha_dot_x_beta", real=True)
    return n0, xx


def build(activation: str = "generic", order: int | None = None, checks: bool = True) -> Derivation:
    """Build the NNGP derivation for ``activation`` (closed forms where the registry has them).

    >>> build("relu", checks=False).result[0].lhs
    'K^{(\\\\ell+1)}_{\\\\alpha\\\\beta}'
    """
    act = get_activation(activation)
    gen = symbolic_recursion("generic")
    rec = symbolic_recursion(act.name)
    s = rec.symbols
    n0, xx = first_layer_symbols()
    names = names_of(rec) | {xx: r"x_\alpha\cdot x_\beta"}
    lm = layer_map(2, 0)
    j, n = sp.Symbol("j", integer=True), sp.Symbol("n_ell", positive=True)
    names[n] = r"n_\ell"
    sig = sp.Function("sigma")
    steps = [
        Step("First layer", "$z^{(1)} = b^{(1)} + W^{(1)}x$ is a sum of independent Gaussians.", "",
             (Equation(r"K^{(1)}_{\alpha\beta}", s["C_b"] + s["C_W"] * xx / n0),)),
        Step("Conditional Gaussianity", "Given layer $\\ell$, $z^{(\\ell+1)}_i = b_i + \\sum_j W_{ij}\\sigma(z^{(\\ell)}_j)$ is "
             "Gaussian with covariance $\\Sigma^{(\\ell)}$ [LH Lemma 4.4].", "",
             (Equation(r"\Sigma^{(\ell)}_{\alpha\beta}", s["C_b"] + s["C_W"] / n * sp.Sum(
                 sig(sp.Indexed("z_alpha", j)) * sig(sp.Indexed("z_beta", j)), (j, 1, n))),)),
        Step("Law of large numbers", "As $n_\\ell\\to\\infty$ the mean of iid terms converges to its expectation; the "
             "engine's layer map at order 0 keeps only this term.", "",
             (Equation(r"K^{(\ell+1)}_{\alpha\beta}", lm.kernel()[(0, 1)]),
              Equation(r"K^{(\ell+1)}_{\alpha\beta}", gen.nngp, note="in the notation of the kernel fold"))),
    ]
    if not act.is_generic:
        steps.append(Step(f"Activation {act.name}", "Closed forms of the Gaussian expectation from the registry "
                          "(arc-cosine kernels, erf, sin/cos, Wick) where known; otherwise the atom stays.", "",
                          (Equation(r"\sigma(z)", act.expr),)))
    result = [Equation(r"K^{(\ell+1)}_{\alpha\beta}", rec.nngp), Equation(r"K^{(\ell+1)}_{\alpha\alpha}", rec.nngp_diag)]
    out_checks = []
    if checks:
        out_checks += _checks()
    return Derivation(
        name="nngp_recursion", title="The NNGP kernel recursion", statement=(
            "At infinite width the preactivations of every layer form a centred Gaussian process with kernel "
            "$K^{(\\ell)}$; the kernel obeys a layer-to-layer recursion [LH section 1; PDLT ch. 4]."),
        assumptions=("Weights $W^{(\\ell)}_{ij}\\sim N(0, C_W/n_{\\ell-1})$, biases $b\\sim N(0,C_b)$, all independent.",
                     "All hidden widths $n_\\ell\\to\\infty$."),
        steps=steps, result=result, checks=out_checks,
        references=("[LH] arXiv 2309.01592, section 1.", "[PDLT] arXiv 2106.10165, ch. 4."),
        parameters={"activation": act.name}, symbol_names=names)


def _checks():
    out = []
    # docs/reference.md §1: E[tanh u1 tanh u2] at (0.9, 1.3, 0.4) = 0.1406385945564758 (mpmath.quad, 30 digits)
    z1, z2 = zvars(2)
    q = expect(sp.tanh(z1) * sp.tanh(z2), [[0.9, 0.4], [0.4, 1.3]])
    out.append(close_check("tanh pair expectation at (0.9, 1.3, 0.4): quadrature vs the mpmath reference value "
                           "of docs/reference.md section 1", 0.1406385945564758, float(q), 1e-12,
                           "composite Gauss-Legendre panels reach ~1e-15"))
    rec = symbolic_recursion("relu")
    s = rec.symbols
    point = {s["K_aa"]: 0.9, s["K_bb"]: 1.3, s["K_ab"]: 0.4, s["C_W"]: 2, s["C_b"]: 0.1}
    closed = sp.N(rec.nngp.subs(point), 30)
    mp = expect(sp.Max(z1, 0) * sp.Max(z2, 0), [[0.9, 0.4], [0.4, 1.3]], method="mpmath", dps=30)
    with mpmath.workdps(30):
        quad = mpmath.mpf("0.1") + 2 * mp
    out.append(close_check("ReLU NNGP entry: arc-cosine closed form (engine) vs 30-digit mpmath quadrature",
                           quad, mpmath.mpf(str(closed)), 1e-25, "both at 30 digits"))
    X = np.array([[1.0, 0.0], [0.6, 0.8]])
    k = kernels(Network("relu", depth=3, C_W=2.0, C_b=0.0), X)
    Kv = {s["K_aa"]: sp.Rational(1), s["K_bb"]: sp.Rational(1), s["K_ab"]: sp.Rational(3, 5)}
    for _ in range(3):
        Kv = {s["K_aa"]: rec.nngp_diag.subs({s["K_aa"]: Kv[s["K_aa"]], s["C_W"]: 2, s["C_b"]: 0}),
              s["K_bb"]: rec.nngp_diag.subs({s["K_aa"]: Kv[s["K_bb"]], s["C_W"]: 2, s["C_b"]: 0}),
              s["K_ab"]: rec.nngp.subs({**Kv, s["C_W"]: 2, s["C_b"]: 0})}
    out.append(close_check("ReLU, C_W = 2, depth 3, inputs (1,0) and (0.6,0.8): float64 kernel fold "
                           "(perturb.infinite.kernels) vs the symbolic recursion iterated exactly in SymPy",
                           sp.N(Kv[s["K_ab"]], 20), float(k.nngp[0, 1]), 1e-12, "float64 rounding over 3 layers"))
    return out
