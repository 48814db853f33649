"""Activation functions: a registry of named activations and a parser for SymPy expressions.

An :class:`Activation` is an immutable record of a SymPy expression ``σ(z)`` in the real symbol
:data:`Z`, together with what the numerical layer needs to integrate it well: the points where
it is not smooth (``kinks``, split points for quadrature) and its Gaussian growth rate (so that
divergent Gaussian integrals are refused instead of returning garbage).

Specs accepted by :func:`get_activation`:

* a registered name: ``relu``, ``leaky_relu:A`` (negative slope ``A``), ``abs``, ``step``,
  ``erf``, ``tanh``, ``sigmoid``, ``softplus``, ``silu``, ``gelu``, ``sin``, ``cos``,
  ``linear``, and ``generic`` (an undefined function ``sigma(z)`` for symbolic derivations);
* any SymPy expression in ``z``, e.g. ``"z*tanh(log(1+exp(z)))"`` (Mish); the registered names
  may be used inside it as functions: ``"relu(z) - 0.1*z"``.

>>> act = get_activation("leaky_relu:0.1")
>>> act.expr
Max(0, z) + Min(0, z)/10
>>> act.derivative()
Heaviside(-z)/10 + Heaviside(z)
>>> float(act.numpy()(-2.0))
-0.2
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from .compile import Compiled, compile_expr
from .errors import PerturbError
from .safeparse import MATH_FUNCTIONS, parse_expression, parse_number

__all__ = [
    "Z",
    "SIGMA",
    "Activation",
    "get_activation",
    "register_activation",
    "activation_names",
]

#: the preactivation symbol every activation is written in
Z = sp.Symbol("z", real=True)
#: the undefined activation of generic (activation-independent) derivations
SIGMA = sp.Function("sigma", real=True)

_KINK_FUNCS = (sp.Max, sp.Min, sp.Abs, sp.Heaviside, sp.sign, sp.Piecewise)


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity σ(z) as a SymPy expression in :data:`Z`.

    Attributes:
        name: the canonical spec (``"relu"``, ``"leaky_relu:0.1"``, or the expression text).
        expr: σ(z).
        kinks: real points where σ or a derivative is discontinuous; quadrature splits there.
        growth: c in log|σ(z)| ~ c z² (0 for everything sub-Gaussian): <σ^p>_K diverges
            for K >= 1/(2 p c).
    """

    name: str
    expr: sp.Expr
    kinks: tuple[float, ...] = ()
    growth: float = 0.0
    _cache: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def is_generic(self) -> bool:
        """True for the undefined activation ``sigma(z)`` of symbolic derivations."""
        return bool(self.expr.atoms(sp.core.function.AppliedUndef))

    @property
    def is_smooth(self) -> bool:
        return not self.kinks

    def derivative(self, k: int = 1) -> sp.Expr:
        """The k-th derivative d^kσ/dz^k, taken symbolically."""
        key = ("d", k)
        if key not in self._cache:
            self._cache[key] = sp.diff(self.expr, Z, k) if k else self.expr
        return self._cache[key]

    def numpy(self, k: int = 0) -> Compiled:
        """σ^{(k)} compiled to a vectorised numpy function of z."""
        key = ("np", k)
        if key not in self._cache:
            if self.is_generic:
                raise PerturbError(
                    "the generic activation sigma(z) has no numeric value; choose a concrete "
                    "activation (e.g. relu, tanh, erf)"
                )
            self._cache[key] = compile_expr(self.derivative(k), [Z])
        return self._cache[key]

    def __call__(self, z):
        return self.numpy()(z)

    def __str__(self) -> str:
        return self.name


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., sp.Expr]] = {}
_HAS_PARAM: dict[str, str] = {}


def register_activation(name: str, builder: Callable[..., sp.Expr], param: str | None = None):
    """Register ``name`` -> ``builder(*params)`` returning σ(z) as a SymPy expression in Z.

    ``param`` documents the optional ``name:VALUE`` parameter (e.g. the negative slope).
    """
    _REGISTRY[name] = builder
    if param:
        _HAS_PARAM[name] = param


def activation_names() -> list[str]:
    """The registered activation names (with ``:PARAM`` where one is taken)."""
    return [f"{n}:{_HAS_PARAM[n]}" if n in _HAS_PARAM else n for n in _REGISTRY]


def _relu(z):
    return sp.Max(z, 0)


def _sigmoid(z):
    return 1 / (1 + sp.exp(-z))


register_activation("relu", lambda: _relu(Z))
register_activation("leaky_relu", lambda a=0.01: sp.Max(Z, 0) + a * sp.Min(Z, 0), param="A")
register_activation("abs", lambda: sp.Abs(Z))
register_activation("step", lambda: sp.Heaviside(Z))
register_activation("erf", lambda: sp.erf(Z))
register_activation("tanh", lambda: sp.tanh(Z))
register_activation("sigmoid", lambda: _sigmoid(Z))
register_activation("softplus", lambda: sp.log(1 + sp.exp(Z)))
register_activation("silu", lambda: Z * _sigmoid(Z))
register_activation("gelu", lambda: Z * (1 + sp.erf(Z / sp.sqrt(2))) / 2)
register_activation("sin", lambda: sp.sin(Z))
register_activation("cos", lambda: sp.cos(Z))
register_activation("linear", lambda: Z)
register_activation("generic", lambda: SIGMA(Z))

_FUNCTIONS_IN_EXPRESSIONS = {
    "relu": lambda x: sp.Max(x, 0),
    "step": sp.Heaviside,
    "sigmoid": _sigmoid,
    "softplus": lambda x: sp.log(1 + sp.exp(x)),
    "silu": lambda x: x * _sigmoid(x),
    "gelu": lambda x: x * (1 + sp.erf(x / sp.sqrt(2))) / 2,
    "sigma": SIGMA,
}


def _kinks_of(expr: sp.Expr) -> tuple[float, ...]:
    """Real points where a piecewise expression in Z switches branch."""
    points: set[float] = set()
    for node in expr.atoms(*_KINK_FUNCS):
        if isinstance(node, (sp.Max, sp.Min)):
            args = node.args
            eqs = [a - b for i, a in enumerate(args) for b in args[i + 1 :]]
        elif isinstance(node, sp.Piecewise):
            eqs = []
            for _, cond in node.args:
                for rel in cond.atoms(sp.core.relational.Relational):
                    eqs.append(rel.lhs - rel.rhs)
        else:
            eqs = [node.args[0]]
        for eq in eqs:
            if Z not in eq.free_symbols:
                continue
            try:
                sols = sp.solve(sp.Eq(eq, 0), Z)
            except (NotImplementedError, TypeError):  # pragma: no cover - exotic input
                raise PerturbError(f"cannot locate the kinks of '{expr}'") from None
            for s in sols:
                if s.is_real:
                    points.add(float(s))
    return tuple(sorted(points))


def _check_real_finite(name: str, expr: sp.Expr) -> None:
    fn = sp.lambdify(Z, expr, modules=["mpmath"])
    with mpmath.workdps(20):
        for z0 in (-2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 2.5):
            try:
                val = mpmath.mpmathify(fn(mpmath.mpf(z0)))
            except (ZeroDivisionError, ValueError, TypeError):
                raise PerturbError(f"activation '{name}' cannot be evaluated at z={z0}") from None
            if isinstance(val, mpmath.mpc) and abs(val.imag) > 1e-12 * (1 + abs(val.real)):
                raise PerturbError(
                    f"activation '{name}' is not real-valued on the real line (z={z0} gives {val})"
                )
            if not mpmath.isfinite(val):
                raise PerturbError(f"activation '{name}' is not finite at z={z0}")


def _gaussian_growth(expr: sp.Expr) -> float:
    """c in log|σ(z)| ~ c z² as |z| -> ∞ (0 when σ grows slower than any Gaussian)."""
    fn = sp.lambdify(Z, expr, modules=["mpmath"])
    rates = []
    with mpmath.workdps(30):
        for sign in (1, -1):
            r = []
            for z0 in (1e3, 1e4):
                try:
                    v = abs(mpmath.mpmathify(fn(mpmath.mpf(sign * z0))))
                except (ZeroDivisionError, ValueError, TypeError, OverflowError):
                    v = mpmath.mpf(0)
                r.append(float(mpmath.log(v) / z0**2) if v > 0 else -math.inf)
            # a genuine Gaussian rate is the same at both radii
            if r[1] > 1e-6 and abs(r[1] - r[0]) <= 0.05 * abs(r[1]):
                rates.append(r[1])
    return max(rates, default=0.0)


@functools.lru_cache(maxsize=256)
def _build(name: str, expr: sp.Expr) -> Activation:
    if expr.free_symbols - {Z}:
        bad = ", ".join(sorted(str(s) for s in expr.free_symbols - {Z}))
        raise PerturbError(
            f"activation '{name}' has free symbols {bad}; an activation is an expression in z only"
        )
    if Z not in expr.free_symbols:
        raise PerturbError(f"activation '{name}' does not depend on z")
    if expr.atoms(sp.core.function.AppliedUndef):
        return Activation(name=name, expr=expr)
    _check_real_finite(name, expr)
    return Activation(name=name, expr=expr, kinks=_kinks_of(expr), growth=_gaussian_growth(expr))


_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*(:.*)?$")


def get_activation(spec: str | Activation) -> Activation:
    """Look up or parse an activation.

    Args:
        spec: a registered name (``"tanh"``, ``"leaky_relu:0.2"``), a SymPy expression in
            ``z`` (``"z*tanh(log(1+exp(z)))"``) or an :class:`Activation`.

    Raises:
        PerturbError: unknown name (the message lists the valid ones), unparsable expression,
            free symbols other than z, or an expression that is not real and finite.
    """
    if isinstance(spec, Activation):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise PerturbError(f"activation must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    base, _, param = spec.partition(":")
    if base in _REGISTRY:
        if param:
            if base not in _HAS_PARAM:
                raise PerturbError(f"activation '{base}' takes no parameter (got '{spec}')")
            # decimals are exact rationals ("0.1" is 1/10): symbolic results stay exact; the text is
            # parsed by the whitelist parser (a bounded number, never evaluated as Python)
            value = parse_number(param, what=f"parameter of activation '{base}'")
            return _build(spec, sp.sympify(_REGISTRY[base](value)))
        return _build(base, sp.sympify(_REGISTRY[base]()))
    if _NAME_RE.match(spec) and base != "z" and base.lower() not in _SYMPY_NAMES:
        raise PerturbError(
            f"unknown activation '{spec}'; valid names: {', '.join(activation_names())}; "
            "or a SymPy expression in z such as 'z*tanh(z)'"
        )
    # whitelist parse (perturb.safeparse): numbers, z, pi, E, + - * / ** and named functions only;
    # other names become plain symbols that _build then refuses ("free symbols")
    expr = parse_expression(spec, symbols={"z": Z, "pi": sp.pi, "E": sp.E},
                            functions={**MATH_FUNCTIONS, **_FUNCTIONS_IN_EXPRESSIONS},
                            implicit=True, unknown_symbols=True, what="activation expression")
    if not isinstance(expr, sp.Expr):
        raise PerturbError(f"activation '{spec}' is not an expression in z")
    return _build(spec, expr)


_SYMPY_NAMES = {"z"}
