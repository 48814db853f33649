"""The catapult maps of the uv model, derived by perturb.dynamics (Gram-matrix invariance)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from perturb.dynamics import ntk, uv_maps, uv_model
from perturb.dynamics.catapult import uv_gd_vectors, uv_init, uv_iterate
from perturb.dynamics.hierarchy import gd_gram_update
from perturb.latex import Check, Derivation, Equation, Step

TITLE = "Catapult maps of the uv model"


def build(activation: str | None = None, order: int | None = None, checks: bool = True) -> Derivation:
    """Build the catapult derivation.

    >>> build(checks=False).name
    'catapult'
    """
    m = uv_model()
    upd = gd_gram_update(m)
    maps = uv_maps()
    steps = [
        Step("Model", "$f = v\\cdot u\\,x/\\sqrt{n}$, loss $\\tfrac12(f-y)^2$, $x = 1$ [LEW].", "",
             (Equation("f", m.outputs[0]), Equation(r"\lambda", ntk(m)[0, 0]))),
        Step("Invariance", "The model is $O(n)$-invariant, so a GD step maps the parameter vectors to linear combinations "
             "of themselves and the Gram matrix $g_{ij} = p_i\\cdot p_j/n$ to an exact update.", "",
             tuple(Equation(f"{sp.latex(g)}'", e) for g, e in upd.items())),
        Step("Eliminate the Gram matrix", "Solve $(f,\\lambda) = \\Phi(g)$ for $g$; the updates close on $(f,\\lambda)$ "
             "(the leftover Gram entries cancel).", "", ()),
    ]
    result = [Equation(f"{sp.latex(v)}'", e) for v, e in maps.residual_form().items()]
    out: list[Check] = []
    if checks:
        n, steps_n = 50, 30
        u, v = uv_init(n, seed=2)
        f0, l0 = float(u @ v / np.sqrt(n)), float((u @ u + v @ v) / n)
        for el in (1.0, 3.0):
            eta = el / l0
            F, Lm, _ = uv_iterate(f0, l0, eta, n, steps_n)
            f_t, l_t = uv_gd_vectors(u, v, eta, steps_n)
            err = float(max(np.max(np.abs(F[:, ...].ravel() - f_t)), np.max(np.abs(Lm[:, ...].ravel() - l_t))))
            out.append(Check(f"eta*lambda0 = {el}: derived maps iterated {steps_n} steps vs explicit GD on u, v (n = {n})",
                             "max |difference| <= 1e-9", f"{err:.2e}", err <= 1e-9,
                             "float64; both paths round differently, difference stays at rounding level"))
    return Derivation(
        name="catapult", title="Catapult maps of the uv model",
        statement="One gradient-descent step of the uv model maps $(f, \\lambda)$ exactly to a polynomial in "
                  "$(f, \\lambda, r = f - y)$ [LEW; LH lecture 3]; phases: lazy for $\\eta\\lambda_0<2$, catapult for "
                  "$2<\\eta\\lambda_0<4$, divergent beyond.",
        assumptions=("Full-batch GD with learning rate $\\eta$ on one sample, $x = 1$.",),
        steps=steps, result=result, checks=out,
        references=("[LEW] Lewkowycz et al., arXiv 2003.02218.",), parameters={}, symbol_names={})
