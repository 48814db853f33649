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
import functools
import random
import re
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from .activations import SIGMA, Z, get_activation
from .errors import PerturbError
from .gaussian import E, evaluate
from .gaussian.atom import GaussianExpectation
from .safeparse import MATH_FUNCTIONS, parse_expression

__all__ = ["QUANTITIES", "ORDER_QUANTITIES", "OrderVerification", "verify_order_claim", "parse_order_claim", "ClaimParseError", "Verification", "parse_claim", "verify_claim", "latex_to_sympy"]

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
    raise PerturbError(f"unknown quantity '{quantity}'; valid: {', '.join([*QUANTITIES, *ORDER_QUANTITIES])}")


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
    'C_W**(2)  E((  s **(4) ))  + r  chi **(2) V'
    """
    depth = 0
    for ch in tex:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            break
    if depth != 0:
        raise ClaimParseError("malformed LaTeX in the claim: unbalanced braces { }")
    s = tex
    for pat, rep in _LATEX_RULES:
        s = re.sub(pat, rep, s)
    s = re.sub(r"\\langle(.*?)\\rangle_\{?K\}?", r" E((\1)) ", s)
    for _ in range(5):
        s = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
    if "\\frac" in s:
        raise ClaimParseError("malformed LaTeX in the claim: \\frac needs two braced arguments, \\frac{a}{b} "
                              "(nested at most 5 deep)")
    if "\\langle" in s or "\\rangle" in s:
        raise ClaimParseError("malformed LaTeX in the claim: write an expectation as \\langle ... \\rangle_K")
    s = re.sub(r"\^\{([^{}]*)\}", r"**(\1)", s)
    s = re.sub(r"\^(\w)", r"**(\1)", s)
    s = s.replace("{", "(").replace("}", ")")
    if "\\" in s:
        bad = re.search(r"\\[A-Za-z]+", s)
        cmd = bad.group(0) if bad else "\\"
        raise ClaimParseError(f"unsupported LaTeX command '{cmd}' in the claim; "
                              "supported: \\frac, \\langle..\\rangle_K, \\sigma, \\sigma', \\chi, \\chi_\\perp, \\cdot, ^")
    return s


def _parse_safely(src: str, names: dict, functions: dict, is_latex: bool) -> sp.Expr:
    """The claim through the whitelist parser (perturb.safeparse): never evaluated as Python.

    Names outside ``names`` become plain symbols, reported by the caller with the known ones.
    """
    return parse_expression(src, symbols=names, functions=functions, implicit=is_latex, unknown_symbols=True,
                            what="claim", error=ClaimParseError)


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
        raise ClaimParseError(f"cannot parse the claim {src.strip()!r} at position {col}: {exc.msg}") from None
    syms = _engine_symbols()
    K = syms["K"]

    def Efun(f, cov=None):
        return E(sp.sympify(f), K if cov is None else cov)

    local = dict(syms)
    local.update({"E": Efun, "s": SIGMA(Z), "ds": sp.Derivative(SIGMA(Z), Z), "z": Z, "sigma": SIGMA,
                  "n_prev": sp.Symbol("n_prev", positive=True), "n": sp.Symbol("n", positive=True)})
    funcs = {**MATH_FUNCTIONS, "E": local.pop("E"), "sigma": local.pop("sigma")}
    expr = _parse_safely(src, {**local, "pi": sp.pi}, funcs, is_latex)
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
        raise PerturbError(f"unknown quantity '{quantity}'; valid: {', '.join([*QUANTITIES, *ORDER_QUANTITIES])}")
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


# ---------------------------------------------------------------------------------------------
# output statistics by order in 1/n: "equal" / "equal up to order k" / "not equal"
# ---------------------------------------------------------------------------------------------

#: output statistics at one input, claimable order by order: name -> (kind, m, meaning)
ORDER_QUANTITIES = {
    "Ez2": ("moments", 2, "E z^2 of one output neuron"),
    "Ez4": ("moments", 4, "E z^4"),
    "Ez6": ("moments", 6, "E z^6"),
    "Ez8": ("moments", 8, "E z^8"),
    "kappa4": ("cumulants", 4, "fourth cumulant κ4(z) = E z^4 − 3 (E z^2)^2"),
    "kappa6": ("cumulants", 6, "sixth cumulant κ6(z)"),
    "kappa8": ("cumulants", 8, "eighth cumulant κ8(z)"),
}

_EPS = sp.Symbol("epsilon", positive=True)  # 1/n bookkeeping: n_l -> n_l/ε, order e = power of ε


@dataclass(frozen=True)
class OrderRow:
    """One order e of the comparison: the order-e terms (with their 1/n^e factors) and claim − engine."""

    order: int
    engine: sp.Expr
    claim: sp.Expr
    difference: sp.Expr
    agrees: bool


@dataclass(frozen=True)
class OrderVerification:
    """The outcome of :func:`verify_order_claim`.

    ``verdict`` is ``"equal"``, ``"equal up to order k"`` or ``"not equal"``; ``agree_to`` is the
    highest order through which every order agrees (−1 when order 0 differs); ``engine_order`` the
    order to which the engine's series was derived; ``claim_beyond`` whether the claim has terms of
    higher order than that (unchecked); ``holds`` is the exit-0 condition (see ``perturb verify``).
    """

    quantity: str
    verdict: str
    agree_to: int
    engine_order: int
    claim_beyond: bool
    holds: bool
    method: str
    rows: tuple[OrderRow, ...] = ()
    lines: tuple[str, ...] = ()


def _order_symbols(depth: int) -> dict:
    """The names a claim about an output statistic may use (same assumptions as the engine's)."""
    from .finite import FiniteWidth

    syms = {"K": sp.Symbol("K", positive=True), "K1": sp.Symbol("K_1", positive=True),
            "C_W": sp.Symbol("C_W", positive=True), "C_b": sp.Symbol("C_b", nonnegative=True),
            "n": sp.Symbol("n", positive=True)}
    syms["K_1"] = syms["K1"]
    for ell in range(1, depth + 1):
        syms[f"n_{ell}"] = FiniteWidth.width_symbol(ell)
    return syms


def parse_order_claim(text: str, depth: int) -> sp.Expr:
    """Parse a claim about an output statistic (SymPy syntax, or LaTeX with a backslash).

    Names: ``K`` (the infinite-width K^{(L+1)}), ``K1`` (= K^{(1)}), ``n`` (a common width) or
    ``n_1 .. n_L``, ``C_W``, ``C_b``.

    >>> parse_order_claim("3*K**2*(15/n + 75/n**2)", depth=3)
    3*K**2*(15/n + 75/n**2)
    """
    if not text or not text.strip():
        raise ClaimParseError("the claim is empty")
    is_latex = "\\" in text
    src = text
    if is_latex:
        src = re.sub(r"_\{(\w+)\}", r"_\1", src)
        src = latex_to_sympy(src)
    else:
        try:
            ast.parse(src.replace("^", "*").strip(), mode="eval")
        except SyntaxError as exc:
            col = exc.offset or 1
            raise ClaimParseError(f"cannot parse the claim {src.strip()!r} at position {col}: {exc.msg}") from None
    syms = _order_symbols(depth)
    expr = _parse_safely(src, {**syms, "pi": sp.pi, "E": sp.E}, MATH_FUNCTIONS, is_latex)
    if not isinstance(expr, sp.Expr):
        raise ClaimParseError(f"the claim is not an expression: {expr}")
    known = set(syms.values())
    free = {s for s in expr.free_symbols if s not in known}
    if free:
        names = ", ".join(k for k in syms if k != "K_1")
        raise ClaimParseError(f"unknown symbol(s) {', '.join(sorted(map(str, free)))}; known at depth {depth}: {names}")
    undef = expr.atoms(sp.core.function.AppliedUndef)
    if undef:
        raise ClaimParseError(f"unknown function(s) {', '.join(sorted(str(a.func) for a in undef))}; "
                              "a claim about an output statistic is an expression in K, K1, n (or n_l), C_W, C_b")
    n = syms["n"]
    layer_ns = {syms[f"n_{ell}"] for ell in range(1, depth + 1)}
    if n in expr.free_symbols and expr.free_symbols & layer_ns:
        raise ClaimParseError("the claim mixes the common width n with per-layer widths n_1..n_L; use one or the other")
    return expr


def _by_order(expr: sp.Expr, widths: list, kmax: int) -> tuple[dict, bool]:
    """Split an expression into its terms of order e = 0..kmax in 1/n; also: are there terms beyond kmax?

    Widths are scaled n -> n/ε; a Laurent polynomial in ε is split exactly, anything else by its
    series in ε (so 1/(1 − 5/n) is expanded).  Negative orders (terms growing with n) are kept.
    """
    scaled = sp.expand(expr.xreplace({w: w / _EPS for w in widths}))
    parts = sp.collect(scaled, _EPS, evaluate=False)
    exact = all(not c.has(_EPS) and (k == 1 or k == _EPS or (k.is_Pow and k.base == _EPS and k.exp.is_Integer))
                for k, c in parts.items())
    if not exact:
        ser = sp.series(scaled, _EPS, 0, kmax + 2).removeO()
        parts = sp.collect(sp.expand(ser), _EPS, evaluate=False)
    out: dict = {}
    for k, c in parts.items():
        e = 0 if k == 1 else (1 if k == _EPS else int(k.exp))
        out[e] = out.get(e, sp.S.Zero) + c * k
    beyond = any(e > kmax and sp.simplify(v) != 0 for e, v in out.items())
    if not exact:
        beyond = True  # a claim that is not a polynomial in 1/n has (unchecked) terms at higher orders
    res = {e: sp.expand(v.subs(_EPS, 1)) for e, v in out.items() if e <= kmax}
    return res, beyond


@functools.cache
def _engine_series(activation: str, depth: int, order: int, C_W, C_b, common: bool):
    """The engine's (FiniteWidth.symbolic) one-input statistics; cached per argument set."""
    from .finite import FiniteWidth

    fw = FiniteWidth(activation, depth=depth, order=order)
    widths = [sp.Symbol("n", positive=True)] * depth if common else None
    return fw.symbolic(C_W=C_W, C_b=C_b, widths=widths)


def _claim_top_order(expr: sp.Expr, widths: list) -> int:
    """The highest order in 1/n of a claim that is a Laurent polynomial in the widths (else 0)."""
    scaled = sp.expand(expr.xreplace({w: w / _EPS for w in widths}))
    parts = sp.collect(scaled, _EPS, evaluate=False)
    top = 0
    for k, c in parts.items():
        if c.has(_EPS):
            return 0
        e = 0 if k == 1 else (1 if k == _EPS else (int(k.exp) if k.is_Pow and k.exp.is_Integer else 0))
        top = max(top, e)
    return top


def _fmt(x) -> str:
    return str(x) if isinstance(x, sp.Basic) else mpmath.nstr(x, 15)


def verify_order_claim(quantity: str, claim: str, *, activation: str = "relu", depth: int = 1,
                       order: int | None = None, C_W=None, C_b=0, seed: int = 0) -> OrderVerification:
    """Compare a claimed 1/n series of an output statistic with the engine's, order by order.

    The engine (:class:`perturb.finite.FiniteWidth`) derives the statistic to order ``order``
    (default: one order beyond the claim's highest, so that a missing next term shows).  Each order
    e is compared; the verdict is *equal* when all orders 0..k agree and the claim has no terms
    beyond k, *equal up to order j* when the first difference is at order j + 1 ≥ 2 (or the claim has
    unchecked higher terms), *not equal* when order 0 or 1 differs.  ``holds`` (exit 0): equal, or
    equal up to order j with j ≥ ``order`` when ``order`` was given.

    ``C_W``/``C_b``: numbers, or ``None`` to keep them symbolic (default: C_W symbolic, C_b = 0).
    Activations with closed-form atoms are compared exactly (SymPy); others numerically at random
    parameter points (mpmath, 30 digits), where a claim can only be refuted or confirmed per point.

    >>> r = verify_order_claim("kappa4", "3*K**2*(15/n + 75/n**2)", activation="relu", depth=3, C_W=2)
    >>> r.verdict
    'equal up to order 2'
    """
    if quantity not in ORDER_QUANTITIES:
        raise PerturbError(f"unknown quantity '{quantity}'; valid: {', '.join(list(QUANTITIES) + list(ORDER_QUANTITIES))}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise PerturbError(f"--depth must be a positive integer, got {depth!r}")
    from .finite.layer import MAX_ORDER

    kind, m, _ = ORDER_QUANTITIES[quantity]
    act = get_activation(activation)
    if act.is_generic:
        raise PerturbError(f"{quantity} needs a concrete activation (--activation relu, tanh, ...): the engine folds "
                           "the depth exactly with closed-form atoms, or numerically (mpmath) without them")
    syms = _order_symbols(depth)
    user = parse_order_claim(claim, depth)
    common = syms["n"] in user.free_symbols or not any(syms[f"n_{i}"] in user.free_symbols for i in range(1, depth + 1))
    widths = [syms["n"]] if common else [syms[f"n_{i}"] for i in range(1, depth + 1)]
    kmax_allowed = MAX_ORDER[1]
    if order is not None:
        if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= kmax_allowed:
            raise PerturbError(f"--order must be an integer 0..{kmax_allowed} (the engine's maximal order), got {order!r}")
        k = order
    else:
        k = min(_claim_top_order(user, widths) + 1, kmax_allowed)
    k = max(k, 1)
    cw = syms["C_W"] if C_W is None else sp.nsimplify(C_W)
    cb = syms["C_b"] if C_b is None else sp.nsimplify(C_b)
    user = user.xreplace({syms["C_W"]: cw, syms["C_b"]: cb})
    claim_terms, beyond = _by_order(user, widths, k)
    neg = sorted(e for e, v in claim_terms.items() if e < 0 and v != 0)
    try:
        stats = _engine_series(act.name, depth, k, cw, cb, common)
        method = "exact"
    except PerturbError:
        stats, method = None, "numeric"
    rows: list[OrderRow] = []
    lines = []
    if method == "exact":
        src = getattr(stats, kind)[m]
        Kout = stats.K
        for e in range(0, k + 1):
            eng = sp.expand(src.get(e, sp.S.Zero))
            cl = sp.expand(claim_terms.get(e, sp.S.Zero).xreplace({syms["K"]: Kout}))
            d = sp.simplify(cl - eng)
            rows.append(OrderRow(e, eng, cl, d, d == 0))
    else:
        rows = _numeric_rows(act, kind, m, depth, k, cw, cb, claim_terms, syms, common, seed)
        pt = ", ".join(f"{a} = {v:.6g}" for a, v in _numeric_rows.last_point.items())
        note = (f"  (no closed form for {act.name}: each order compared at 2 random points, mpmath 30 digits, "
                     f"relative tolerance 1e-12; values shown at {pt})")
        lines.append(note)
    first_bad = next((r.order for r in rows if not r.agrees), None)
    if neg:
        first_bad = neg[0]
    if first_bad is None:
        agree_to = k
        verdict = f"equal up to order {k}" if beyond else "equal"
    else:
        agree_to = first_bad - 1
        verdict = "not equal" if first_bad <= 1 else f"equal up to order {agree_to}"
    holds = verdict == "equal" or (order is not None and first_bad is None and agree_to >= order)
    head = (f"{quantity} ({ORDER_QUANTITIES[quantity][2]}), activation {act.name}, depth {depth}, "
            f"C_W = {cw}, C_b = {cb}, widths {'n' if common else ', '.join(map(str, widths))}; "
            f"engine series to order {k} in 1/n ({method})")
    lines.insert(0, head)
    if neg:
        lines.append(f"  the claim has terms growing with the width (order {neg[0]} in 1/n); the engine has none")
    for r in rows:
        lines.append(f"  order {r.order}: engine {_fmt(r.engine)}  |  claim {_fmt(r.claim)}  |  "
                     f"claim - engine {_fmt(r.difference)}{'' if r.agrees else '   <-- differs'}")
    if first_bad is None and beyond:
        lines.append(f"  the claim has terms beyond order {k}, the engine's order here "
                     f"(max {kmax_allowed}); they are not checked")
    elif first_bad is None:
        lines.append(f"  every order 0..{k} agrees and the claim has no terms beyond order {k}")
    elif first_bad >= 0:
        lines.append(f"  first difference at order {first_bad} in 1/n")
    return OrderVerification(quantity, verdict, agree_to, k, beyond, holds, method, tuple(rows), tuple(lines))


def _numeric_rows(act, kind, m, depth, k, cw, cb, claim_terms, syms, common, seed) -> list[OrderRow]:
    """Orders compared at random parameter points with mpmath (activations without closed forms)."""
    from .finite import FiniteWidth

    rng = random.Random(seed)
    fw = FiniteWidth(act.name, depth=depth, order=k)
    ok = {e: True for e in range(k + 1)}
    shown: dict = {}
    for _ in range(2):
        vals = {syms["K1"]: rng.uniform(0.3, 2.0)}
        cwv = rng.uniform(0.8, 2.0) if cw.free_symbols else float(cw)
        cbv = rng.uniform(0.0, 0.3) if cb.free_symbols else float(cb)
        vals[syms["C_W"]], vals[syms["C_b"]] = cwv, cbv
        if common:
            nv = rng.randint(5, 50)
            wv = [nv] * depth
            vals[syms["n"]] = nv
        else:
            wv = [rng.randint(5, 50) for _ in range(depth)]
            vals.update({syms[f"n_{i}"]: wv[i - 1] for i in range(1, depth + 1)})
        with mpmath.workdps(30):
            st = fw.evaluate(K1=vals[syms["K1"]], widths=wv, C_W=cwv, C_b=cbv, dps=30)
            vals[syms["K"]] = st.K
            src = getattr(st, kind)[m]
            for e in range(k + 1):
                eng = mpmath.mpf(src.get(e, 0))
                cl_expr = claim_terms.get(e, sp.S.Zero)
                cl = mpmath.mpf(sp.N(cl_expr.xreplace({s: sp.Float(mpmath.nstr(v, 30), 30) for s, v in vals.items()}), 30))
                d = cl - eng
                scale = max(abs(eng), abs(cl), mpmath.mpf(10) ** -25)
                if abs(d) / scale > mpmath.mpf("1e-12"):
                    ok[e] = False
                shown[e] = (eng, cl, d)
        if not all(ok.values()):
            break  # the rows shown are this counterexample point's
    _numeric_rows.last_point = {str(s): float(v) for s, v in vals.items()}
    return [OrderRow(e, shown[e][0], shown[e][1], shown[e][2], ok[e]) for e in range(k + 1)]
