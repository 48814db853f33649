"""``perturb verify``: check a hand calculation against the engine's derivation.

A *claim* is an expression for a named quantity, in SymPy syntax or a LaTeX subset.  Quantities
(one input, order 1/n; ``r = n_ℓ/n_{ℓ−1}``, ``K = K^{(ℓ)}``):

* ``V``  — V^{(ℓ+1)} in terms of K, V (= V^{(ℓ)}), G1, C_W, C_b, r, chi, chi_perp and expectations;
* ``G1`` — G1^{(ℓ+1)} in the same symbols;
* ``K``  — the infinite-width K^{(ℓ+1)}.

Notation: ``E(f)`` is <f>_K with ``s`` = σ(z), ``ds`` = σ'(z), ``z`` (``E(s**4)``,
``E(s**2*z**2)``); ``chi`` = χ_∥ = C_W ∂_K<σ²>_K; ``chi_perp`` = C_W<σ'²>_K.  LaTeX:
``\\langle \\sigma^4 \\rangle_K``, ``\\frac{a}{b}``, ``\\chi``, ``\\chi_\\perp``, ``C_W``, ``^{...}``.

The verdict: the difference claim − engine is reduced atom by atom; if it is not identically
zero it is evaluated at random parameter points with mpmath (30 digits) for concrete
activations (tanh and softplus, or the one given) — integration by parts can relate atoms that
look different, so a numerically zero difference counts as equal.

>>> r = verify_claim("V", "C_W**2*(E(s**4) - E(s**2)**2) + r*chi**2*V")
>>> r.holds
True
>>> verify_claim("V", "C_W**2*(E(s**4) - E(s**2)**2) + chi**2*V").holds
False
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass, field

import mpmath
import sympy as sp
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from .activations import SIGMA, Z, get_activation
from .errors import PerturbError
from .gaussian import E, evaluate
from .gaussian.atom import GaussianExpectation

__all__ = ["QUANTITIES", "ClaimParseError", "Verification", "parse_claim", "verify_claim", "latex_to_sympy"]

QUANTITIES = {"V": "four-point vertex V^(l+1)", "G1": "kernel correction G1^(l+1)", "K": "infinite-width kernel K^(l+1)"}


class ClaimParseError(PerturbError):
    """A claim that cannot be parsed, or that uses names perturb does not know."""


def _engine_symbols():
    from derivations._common import CHI, G1_SYM, V_SYM, R
    from perturb.finite import layer_map

    lm = layer_map(1, 1)
    return dict(K=lm.K[(0, 0)], C_W=lm.syms.C_W, C_b=lm.syms.C_b, r=R, V=V_SYM, G1=G1_SYM, chi=CHI,
                chi_perp=sp.Symbol("chi_perp", real=True))


def engine_expression(quantity: str) -> sp.Expr:
    """The engine's expression for a quantity (generic σ)."""
    from derivations._order1 import recursion

    s = _engine_symbols()
    if quantity in ("V", "G1"):
        return recursion(quantity)
    if quantity == "K":
        return s["C_b"] + s["C_W"] * E(SIGMA(Z) ** 2, s["K"])
    raise PerturbError(f"unknown quantity '{quantity}'; valid: {', '.join(QUANTITIES)}")


_LATEX_RULES = [
    (r"\\left|\\right|\\,|\\;|\\!", ""),
    (r"\\cdot|\\times", "*"),
    (r"\\chi_\{?\\perp\}?", " chi_perp "),
    (r"\\chi_\{?\\parallel\}?|\\chi", " chi "),
    (r"\\sigma'", " ds "),
    (r"\\sigma", " s "),
    (r"G\^\{\\\{1\\\}\}|G_\{?1\}?", " G1 "),
]


def latex_to_sympy(tex: str) -> str:
    """Translate the documented LaTeX subset to SymPy syntax.

    >>> latex_to_sympy(r"C_W^2 \\langle \\sigma^4 \\rangle_K + r \\chi^2 V")
    'C_W**(2)* E(( s **(4)))  + r  chi **(2) V'
    """
    s = tex
    for pat, rep in _LATEX_RULES:
        s = re.sub(pat, rep, s)
    s = re.sub(r"\\langle(.*?)\\rangle_\{?K\}?", r" E((\1)) ", s)
    for _ in range(5):
        s = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
    s = re.sub(r"\^\{([^{}]*)\}", r"**(\1)", s)
    s = re.sub(r"\^(\w)", r"**(\1)", s)
    s = s.replace("{", "(").replace("}", ")")
    if "\\" in s:
        bad = re.search(r"\\[A-Za-z]+", s)
        cmd = bad.group(0) if bad else "\\"
        raise ClaimParseError(f"unsupported LaTeX command '{cmd}' in the claim; "
                              "supported: \\frac, \\langle..\\rangle_K, \\sigma, \\sigma', \\chi, \\chi_\\perp, \\cdot, ^")
    return s


def parse_claim(text: str, quantity: str = "V") -> sp.Expr:
    """Parse a claim (SymPy syntax, or LaTeX when it contains a backslash) into an expression.

    Raises:
        ClaimParseError: with the column of a syntax error, or naming unknown symbols/functions.
    """
    if not text or not text.strip():
        raise ClaimParseError("the claim is empty")
    is_latex = "\\" in text
    src = latex_to_sympy(text) if is_latex else text
    try:
        if not is_latex:
            ast.parse(src.replace("^", "*").strip(), mode="eval")
    except SyntaxError as exc:
        col = (exc.offset or 1)
        raise ClaimParseError(f"cannot parse the claim at position {col}: {exc.msg}\n  {src.strip()}\n  "
                              f"{' ' * (col - 1)}^") from None
    syms = _engine_symbols()
    K = syms["K"]

    def Efun(f, cov=None):
        return E(sp.sympify(f), K if cov is None else cov)

    local = dict(syms)
    local.update({"E": Efun, "s": SIGMA(Z), "ds": sp.Derivative(SIGMA(Z), Z), "z": Z, "sigma": SIGMA,
                  "n_prev": sp.Symbol("n_prev", positive=True), "n": sp.Symbol("n", positive=True)})
    try:
        extra = (convert_xor, implicit_multiplication_application) if is_latex else (convert_xor,)
        expr = parse_expr(src, local_dict=local, transformations=standard_transformations + extra)
    except (SyntaxError, TypeError, ValueError, sp.SympifyError, PerturbError) as exc:
        raise ClaimParseError(f"cannot parse the claim: {exc}") from None
    if not isinstance(expr, sp.Expr):
        raise ClaimParseError(f"the claim is not an expression: {expr}")
    known = set(syms.values()) | {Z, local["n"], local["n_prev"]}
    free = {s for s in expr.free_symbols if s not in known}
    if free:
        raise ClaimParseError(f"unknown symbol(s) {', '.join(sorted(map(str, free)))}; known: "
                              f"{', '.join(sorted(map(str, syms)))}, n, n_prev, and in E(...): s, ds, z")
    undef = {a.func for a in expr.atoms(sp.core.function.AppliedUndef)} - {SIGMA}
    if undef:
        raise ClaimParseError(f"unknown function(s) {', '.join(sorted(map(str, undef)))}; use E(...) for "
                              "Gaussian expectations and s = sigma(z)")
    bare = [a for a in expr.atoms(sp.core.function.AppliedUndef) if not _inside_atom(expr, a)]
    if bare:
        raise ClaimParseError("sigma(z) appears outside an expectation E(...)")
    if Z in expr.free_symbols:
        raise ClaimParseError("z appears outside an expectation E(...)")
    return expr


def _inside_atom(expr, a) -> bool:
    return any(a in atom.args[0].atoms(sp.core.function.AppliedUndef) for atom in expr.atoms(GaussianExpectation))


def _resolve(expr: sp.Expr) -> sp.Expr:
    """chi, chi_perp, n, n_prev -> the engine's definitions."""
    s = _engine_symbols()
    K, C_W = s["K"], s["C_W"]
    rep = {s["chi"]: C_W * sp.diff(E(SIGMA(Z) ** 2, K), K),
           s["chi_perp"]: C_W * E(sp.Derivative(SIGMA(Z), Z) ** 2, K)}
    out = expr.xreplace(rep)
    n, npv = sp.Symbol("n", positive=True), sp.Symbol("n_prev", positive=True)
    if n in out.free_symbols or npv in out.free_symbols:
        out = out.xreplace({n: s["r"] * npv})
    return sp.expand(out.doit())


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify_claim`."""

    quantity: str
    holds: bool
    method: str
    difference: dict = field(default_factory=dict)  # group label -> difference (SymPy)
    counterexample: dict | None = None
    lines: tuple[str, ...] = ()


def _groups(expr: sp.Expr) -> dict:
    """Split an expression by the monomials in V, G1 (the terms propagated from layer l-1 carry r)."""
    s = _engine_symbols()
    poly = sp.Poly(sp.expand(expr), s["V"], s["G1"])
    out = {}
    for (a, b), coef in poly.terms():
        label = "V-free term (this layer's own 1/n_l fluctuation)" if a == b == 0 else \
            f"coefficient of {'V' if a else ''}{'G1' if b else ''} (propagated from layer l-1, O(1/n_(l-1)))"
        out[label] = coef
    return out


def verify_claim(quantity: str, claim: str, *, activation: str = "generic", points: int = 3,
                 seed: int = 0) -> Verification:
    """Compare a claim with the engine's derivation; see the module docstring."""
    if quantity not in QUANTITIES:
        raise PerturbError(f"unknown quantity '{quantity}'; valid: {', '.join(QUANTITIES)}")
    act = get_activation(activation)
    from derivations._common import atom_canonical, concrete

    user = _resolve(parse_claim(claim, quantity))
    ref = engine_expression(quantity)
    diff = sp.expand(user - ref)
    if not act.is_generic:
        diff = sp.expand(concrete(diff, act))
    lines = []
    groups = {k: sp.factor(atom_canonical(v)) for k, v in _groups(diff).items()}
    nonzero = {k: v for k, v in groups.items() if v != 0}
    if not nonzero:
        return Verification(quantity, True, "symbolic", {}, None,
                            (f"{quantity}: the claim equals the engine's order-1 recursion (exact, atom by atom).",))
    # numeric: atoms may be related by integration by parts
    s = _engine_symbols()
    rng = random.Random(seed)
    acts = [act.name] if not act.is_generic else ["tanh", "softplus"]
    worst = None
    for a in acts:
        for _ in range(points):
            vals = {s["K"]: rng.uniform(0.3, 2.0), s["C_W"]: rng.uniform(0.5, 2.5), s["C_b"]: rng.uniform(0, 0.5),
                    s["r"]: rng.uniform(0.5, 2.0), s["V"]: rng.uniform(-1, 1), s["G1"]: rng.uniform(-1, 1)}
            with mpmath.workdps(30):
                d = evaluate(diff, {k: v for k, v in vals.items() if k in diff.free_symbols}, activation=a, dps=30) if diff.free_symbols or diff.atoms(GaussianExpectation) \
                    else mpmath.mpf(sp.N(diff, 30))
                u = evaluate(user, {k: v for k, v in vals.items() if k in user.free_symbols}, activation=a, dps=30) \
                    if user.free_symbols or user.atoms(GaussianExpectation) else mpmath.mpf(sp.N(user, 30))
                rel = abs(d) / max(abs(u), mpmath.mpf(1e-30))
            if worst is None or rel > worst[0]:
                worst = (rel, a, vals, d, u)
            if rel > mpmath.mpf("1e-6"):  # clearly different: one counterexample is enough
                break
        if worst[0] > mpmath.mpf("1e-6"):
            break
    if worst[0] < mpmath.mpf("1e-20"):
        return Verification(quantity, True, "numeric", nonzero, None, (
            f"{quantity}: the claim equals the engine's recursion numerically (|difference|/|claim| < 1e-20 at "
            f"{points * len(acts)} random points, 30 digits); the atoms differ symbolically (integration by parts).",))
    lines.append(f"{quantity}: NOT equal to the engine's order-1 recursion. Difference (claim - engine), term by term:")
    for k, v in nonzero.items():
        lines.append(f"  {k}: {v}")
    rel, a, vals, d, u = worst
    pt = ", ".join(f"{k} = {float(v):.4g}" for k, v in vals.items() if k in (user.free_symbols | ref.free_symbols))
    lines.append(f"  counterexample ({a}, mpmath 30 digits): at {pt}: claim - engine = {mpmath.nstr(d, 12)} "
                 f"(relative {mpmath.nstr(rel, 3)})")
    return Verification(quantity, False, "numeric", nonzero, {"activation": a, "point": {str(k): v for k, v in vals.items()},
                                                              "difference": float(d)}, tuple(lines))


def monte_carlo_verdict(quantity: str, claim: str, widths, *, activation: str = "tanh", C_W: float = 1.5,
                        C_b: float = 0.0, samples: int = 200_000, seed: int = 0):
    """Iterate the claimed recursion over the network and compare its output statistic with Monte Carlo.

    V: κ4(z) = 3 V^{(L+1)}/n_L; G1: E z² = K^{(L+1)} + G1^{(L+1)}/n_L (V from the engine).  The input is
    x = (1,) (n_0 = 1), so K^{(1)} = C_b + C_W.  Returns (prediction, Estimate, Verdict).
    """
    from .montecarlo import cumulant, moment, sample_outputs, verdict
    from .network import Network

    if quantity not in ("V", "G1"):
        raise PerturbError(f"--mc is available for V and G1, not '{quantity}'")
    act = get_activation("tanh" if activation == "generic" else activation)
    s = _engine_symbols()
    user = _resolve(parse_claim(claim, quantity))
    other = engine_expression("V")
    Kv, V, G1 = C_b + C_W, 0.0, 0.0
    ws = list(widths)
    for ell in range(len(ws)):
        r = ws[ell] / ws[ell - 1] if ell else 1.0
        vals = {s["K"]: Kv, s["C_W"]: C_W, s["C_b"]: C_b, s["r"]: r, s["V"]: V, s["G1"]: G1}

        def ev(e, vals=vals):
            return float(evaluate(e, {k: v for k, v in vals.items() if k in e.free_symbols}, activation=act)) \
                if (e.free_symbols or e.atoms(GaussianExpectation)) else float(e)

        newV = ev(user) if quantity == "V" else ev(other)
        newG = ev(user) if quantity == "G1" else G1
        Kv, V, G1 = ev(engine_expression("K")), newV, newG
    x = sample_outputs(Network(act, widths=ws, C_W=C_W, C_b=C_b), [1.0], samples, seed=seed)
    if quantity == "V":
        pred, est = 3 * V / ws[-1], cumulant(x, 4)
    else:
        pred, est = Kv + G1 / ws[-1], moment(x, 2)
    return pred, est, verdict(pred, est)
