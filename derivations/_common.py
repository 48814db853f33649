"""Helpers shared by the derivation modules: notation, atom-wise comparison, number formatting."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import sympy as sp

from perturb.activations import SIGMA, Z, get_activation
from perturb.finite.layer import moment_symbol
from perturb.gaussian import closed_form
from perturb.gaussian.atom import (
    GaussianExpectation,
    atom_canonical,  # noqa: F401  (re-exported for derivations)
)
from perturb.gaussian.dispatch import substitute_activation
from perturb.latex import Check

#: PDLT notation used in the order-1 derivations
N_PREV = sp.Symbol("n_prev", positive=True)
R = sp.Symbol("r", positive=True)
V_SYM = sp.Symbol("V", real=True)
G1_SYM = sp.Symbol("G1", real=True)
CHI = sp.Symbol("chi", real=True)
DELTA = sp.Symbol("delta", real=True)


def symbol_names(lm) -> dict:
    """LaTeX names of the engine's symbols (layer map ``lm``) in PDLT notation."""
    names = {lm.syms.n: r"n_{\ell}", N_PREV: r"n_{\ell-1}", V_SYM: r"V^{(\ell)}", G1_SYM: r"G^{\{1\}(\ell)}",
             CHI: r"\chi_{\parallel}", DELTA: r"\delta", lm.K[(0, 0)]: r"K"}
    for a in lm.multi_indices():
        for e in range(lm.order + 1):
            idx = ",".join(map(str, a))
            names[moment_symbol(a, e)] = rf"\mathcal{{M}}^{{[{e}]}}_{{{idx}}}"
    return names




def concrete(expr: sp.Expr, activation) -> sp.Expr:
    """Substitute a concrete activation for σ and replace atoms by closed forms where known."""
    act = get_activation(activation)
    if act.is_generic:
        return expr
    out = substitute_activation(expr, act)
    rep = {}
    for atom in out.atoms(GaussianExpectation):
        cf = closed_form(*atom.args)
        if cf is not None:
            rep[atom] = cf
    return sp.simplify(out.xreplace(rep)) if rep else out


def fmt(x, digits: int = 6) -> str:
    """A number as short text (floats, numpy scalars, mpf, SymPy numbers)."""
    if isinstance(x, (mpmath.mpf, mpmath.mpc)):
        return mpmath.nstr(x, digits)
    if isinstance(x, sp.Basic):
        return str(x) if x.is_Rational else fmt(float(x), digits)
    if isinstance(x, (np.ndarray,)):
        return fmt(x.item() if x.size == 1 else x.tolist(), digits)
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(fmt(v, digits) for v in x) + "]"
    f = float(x)
    return f"{f:.{digits}g}" if math.isfinite(f) else str(f)


def exact_check(description: str, difference: sp.Expr, expected: str = "0") -> Check:
    """An exact (symbolic) check: ``difference`` must simplify to 0."""
    d = atom_canonical(difference)
    return Check(description, expected, str(d) if d != 0 else "0", d == 0,
                 "exact SymPy comparison (atoms collected, coefficients cancelled)")


def close_check(description: str, expected, observed, rtol: float, reason: str) -> Check:
    """A numeric check with a stated relative tolerance and the reason for it."""
    e, o = complex(expected), complex(observed)
    err = abs(o - e) / max(abs(e), 1e-300)
    return Check(description, fmt(expected, 15), fmt(observed, 15), bool(err <= rtol),
                 f"relative difference {err:.2e} <= {rtol:.0e} ({reason})")


def verdict_check(description: str, prediction, estimate, *, null=None, null_label: str = "") -> Check:
    """A Monte Carlo check through :func:`perturb.montecarlo.verdict` (99% confidence)."""
    from perturb.montecarlo import verdict

    v = verdict(prediction, estimate)
    detail = f"z = {float(np.ravel(v.z)[0]):+.2f}, p = {v.p_value:.3g} (pass: p > 0.01)"
    if null is not None:
        v0 = verdict(null, estimate)
        detail += f"; for contrast, {null_label} {fmt(null)} has z = {float(np.ravel(v0.z)[0]):+.1f}"
    est = f"{fmt(np.ravel(estimate.value)[0])} +- {fmt(np.ravel(estimate.stderr)[0], 2)} (n = {estimate.n})"
    return Check(description, fmt(prediction), est, bool(v.passed), detail)


SIGMA_Z = SIGMA(Z)
