"""Two-point closed forms compiled for Gram matrices: ⟨σσ⟩ and ⟨σ'σ'⟩ in one pass.

A layer of the infinite-width recursion evaluates, for every pair (α, β) of inputs, the closed
forms ``S(a, b, c) = E[σ(u_1) σ(u_2)]`` and ``D(a, b, c) = E[σ'(u_1) σ'(u_2)]`` with
``(u_1, u_2) ~ N(0, [[a, c], [c, b]])``, ``a = K_αα``, ``b = K_ββ``, ``c = K_αβ``.  On a row
block of a Gram matrix ``a`` is a column vector, ``b`` a row vector and ``c`` a matrix, so every
subexpression that depends on ``a`` alone or on ``b`` alone costs O(N), and only the rest costs
O(N²).  The expressions of the closed-form registry (:mod:`perturb.gaussian.closed`) are
rewritten, exactly, so that as much as possible separates (``a``, ``b`` > 0):

* ``exp(f(a) + g(b)) = exp(f(a)) exp(g(b))`` and ``(p(a) q(b))^k = p(a)^k q(b)^k``;
* a radical of a sum that involves ``c`` is put over a common denominator,
  ``(N/D)^k = N^k D^{-k}`` when ``D > 0`` (e.g. GELU's ``√(b + 1 − c²/(a + 1))`` becomes
  ``√((a + 1)(b + 1) − c²) / √(a + 1)``), with ``N`` collected in powers of ``c`` and its
  coefficients factored, so the same radical is recognised wherever it occurs;
* ``acos(−x) = π − acos(x)`` (the orthant moments of piecewise polynomials produce both, and
  they then cancel symbolically).

Then the whole layer map ``K' = C_b + C_W S``, ``Θ' = λ_b + λ_W S + C_W D Θ`` is compiled,
with common-subexpression elimination across S and D (they share e.g. GELU's ``asin`` and
radical), into straight-line numpy code in which every O(N²) intermediate is one ufunc call
writing into a reused per-thread buffer (see ``_Codegen``).  The rewriting is exact algebra and
the code is generated from SymPy expressions of the registry, never from user text; the tests
compare the result with the registry's compiled forms entry by entry and with mpmath.

>>> import sympy as sp, numpy as np
>>> a, b, c = sp.symbols("a_ b_ c_", real=True)
>>> pair = fused_pair(sp.exp(-a / 2 - b / 2) * sp.sinh(c), sp.exp(-a / 2 - b / 2) * sp.cosh(c))
>>> print(pair.ss_expr)                    # sin: the exponential separates
exp(-a_/2)*exp(-b_/2)*sinh(c_)
>>> ss, dd = pair(np.array([[1.0]]), np.array([[2.0]]), np.array([[0.5]]))
>>> bool(np.isclose(ss[0, 0], np.exp(-1.5) * np.sinh(0.5)))
True
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..compile import NUMPY_MODULES

__all__ = ["FusedPair", "fused_pair", "separable_form"]

_A, _B = sp.symbols("a_ b_", positive=True)
_C = sp.Symbol("c_", real=True)


def _collected(n: sp.Expr, c: sp.Symbol) -> sp.Expr:
    """A polynomial numerator collected in powers of ``c``, each coefficient factored."""
    n = sp.expand(n)
    if c not in n.free_symbols:
        return sp.factor(n)
    parts = sp.collect(n, c, evaluate=False)
    return sp.Add(*[sp.factor(v) * k for k, v in parts.items()])


def separable_form(expr: sp.Expr, a: sp.Symbol = _A, b: sp.Symbol = _B, c: sp.Symbol = _C) -> sp.Expr:
    """``expr(a, b, c)`` rewritten exactly so that factors of ``a`` alone and ``b`` alone separate
    (``a``, ``b`` must be positive symbols; see the module docstring).

    >>> import sympy as sp
    >>> a, b = sp.symbols("a_ b_", positive=True); c = sp.Symbol("c_", real=True)
    >>> separable_form(sp.sqrt(b + 1 - c**2 / (a + 1)))
    sqrt(-c_**2 + (a_ + 1)*(b_ + 1))/sqrt(a_ + 1)
    """

    def split_radical(x):
        num, den = sp.together(x.base).as_numer_denom()
        if den == 1 or not den.is_positive:
            return x
        return sp.expand_power_base(_collected(num, c) ** x.exp) * sp.expand_power_base(den ** (-x.exp))

    out = sp.expand_power_exp(expr)
    out = out.replace(lambda x: x.is_Pow and x.base.is_Add and not x.exp.is_integer
                      and c in x.base.free_symbols, split_radical)
    out = sp.expand_power_base(out)
    out = out.replace(lambda x: isinstance(x, sp.acos) and x.args[0].could_extract_minus_sign(),
                      lambda x: sp.pi - sp.acos(-x.args[0]))
    if out.has(sp.acos):                  # let π − acos(x) and acos(x) meet (polynomial σ)
        expanded = sp.expand(out)
        if sp.count_ops(expanded) < sp.count_ops(out):
            out = expanded
    return out


# ------------------------------------------------------------------------------- the program
# The layer map on a row block is compiled into straight-line numpy code: every O(N²)
# intermediate is computed by one ufunc call into a preallocated per-thread workspace buffer
# (``out=``), the O(N) ones (functions of a alone or b alone) as small arrays.  Allocating a
# fresh block-sized array for every intermediate, as a lambdified expression does, costs as much
# as the arithmetic (each new array is fresh pages from the allocator).

_CW, _CB, _LW, _LB = sp.symbols("C_W C_b lambda_W lambda_b", real=True)
_TH = sp.Symbol("Theta_", real=True)
_FULL = {_C, _TH}
_UFUNCS = {
    sp.asin: "numpy.arcsin", sp.acos: "numpy.arccos", sp.atan: "numpy.arctan",
    sp.sin: "numpy.sin", sp.cos: "numpy.cos", sp.tan: "numpy.tan",
    sp.sinh: "numpy.sinh", sp.cosh: "numpy.cosh", sp.tanh: "numpy.tanh",
    sp.asinh: "numpy.arcsinh", sp.acosh: "numpy.arccosh", sp.atanh: "numpy.arctanh",
    sp.exp: "numpy.exp", sp.log: "numpy.log", sp.Abs: "numpy.abs", sp.sign: "numpy.sign",
    sp.erf: "scipy.special.erf", sp.erfc: "scipy.special.erfc",
}


class _Codegen:
    """Straight-line code for a list of expressions whose O(N²) parts are written in place."""

    def __init__(self, printer):
        self.lines: list[str] = []
        self.printer = printer
        self.full: set[sp.Symbol] = set(_FULL)
        self.ntemp = 0
        self.free: list[str] = []
        self.generic: dict[str, Callable] = {}
        self.deps: dict[sp.Symbol, frozenset] = {}        # CSE symbol -> the inputs it depends on

    def inputs(self, e: sp.Expr) -> frozenset:
        out: set = set()
        for x in e.free_symbols:
            out |= self.deps.get(x, {x})
        return frozenset(out)

    def is_full(self, e: sp.Expr) -> bool:
        fs = self.inputs(e)
        return bool(fs & _FULL) or (_A in fs and _B in fs)

    def temp(self) -> str:
        if self.free:
            return self.free.pop()
        self.ntemp += 1
        return f"w[{self.ntemp - 1}]"

    def release(self, names) -> None:
        for n in names:
            if n.startswith("w["):
                self.free.append(n)

    def small(self, e: sp.Expr) -> str:
        return self.printer.doprint(e)

    def val(self, e: sp.Expr) -> tuple[str, list[str]]:
        """A name holding e (full) or printed code (small); the temporaries to release after."""
        if not self.is_full(e):
            return f"({self.small(e)})", []
        if e.is_Symbol:
            return self.name(e), []
        t = self.temp()
        self.emit(e, t)
        return t, [t]

    def name(self, s: sp.Symbol) -> str:
        return {"c_": "c", "Theta_": "th"}.get(s.name, s.name)

    def line(self, text: str) -> None:
        self.lines.append(text)

    def emit(self, e: sp.Expr, dst: str) -> None:
        """Write the full expression e into the buffer dst."""
        if e.is_Symbol:
            self.line(f"numpy.copyto({dst}, {self.name(e)})")
        elif e.is_Add:
            self._nary(e.args, dst, "add", "subtract", lambda t: t.could_extract_minus_sign(), lambda t: -t)
        elif e.is_Mul:
            self._nary(e.args, dst, "multiply", "divide", lambda t: t.is_Pow and t.exp.is_negative,
                       lambda t: 1 / t)
        elif e.is_Pow:
            self._pow(e.base, e.exp, dst)
        elif type(e) in _UFUNCS and len(e.args) == 1:
            v, tmp = self.val(e.args[0])
            if type(e) in (sp.asin, sp.acos) and self.is_full(e.args[0]):
                # |argument| <= 1 holds exactly for |c| <= √(ab); keep roundoff from leaving it
                v = self._clamped(v, tmp, "numpy.clip({v}, -1.0, 1.0, out={t})")
                tmp = [v] if v.startswith("w[") else tmp
            self.line(f"{_UFUNCS[type(e)]}({v}, out={dst})")
            self.release(tmp)
        elif isinstance(e, sp.Heaviside):
            v, tmp = self.val(e.args[0])
            self.line(f"numpy.heaviside({v}, 0.5, out={dst})")
            self.release(tmp)
        else:                                   # anything else: a lambdified function, copied in
            key = f"g{len(self.generic)}"
            args = sorted(e.free_symbols, key=lambda x: x.name)
            self.generic[key] = sp.lambdify(args, e, modules=NUMPY_MODULES)
            self.line(f"numpy.copyto({dst}, {key}({', '.join(self.name(x) for x in args)}))")

    def _nary(self, args, dst, op, inv, is_inverse, invert):
        """dst = a1 op a2 op ... (inverse terms with ``inv``): the first compound operand is
        computed straight into dst, the small (O(N)) operands are applied last, at once."""
        full = [t for t in args if self.is_full(t)]
        rest = (sp.Add if op == "add" else sp.Mul)(*[t for t in args if not self.is_full(t)])
        unit = sp.S.Zero if op == "add" else sp.S.One
        ops = [(t, False) for t in full if not is_inverse(t)] + [(invert(t), True) for t in full if is_inverse(t)]
        make = sp.Add if op == "add" else sp.Mul
        small = [t for t in args if not self.is_full(t)]
        ga = make(*[t for t in small if _B not in self.inputs(t)])      # column vector (or scalar)
        gb = make(*[t for t in small if _B in self.inputs(t)])          # row vector
        if not ops:                                   # an outer "product" of a-only and b-only parts
            self.line(f"numpy.{op}({self.small(ga)}, {self.small(gb)}, out={dst})")
            return
        if gb != unit and ga != unit:                 # never form the outer product of the two
            rest = ga
            ops.append((gb, False))
        first, flipped = ops[0]
        if flipped:                                   # e.g. 1/x or c - x: start from the small part
            v, tmp = self.val(first)
            self.line(f"numpy.{inv}({self.small(rest)}, {v}, out={dst})")
            self.release(tmp)
            cur, rest = dst, unit
        elif first.is_Symbol:
            cur = self.name(first)
        else:
            self.emit(first, dst)
            cur = dst
        for t, flip in ops[1:]:
            v, tmp = self.val(t)
            self.line(f"numpy.{inv if flip else op}({cur}, {v}, out={dst})")
            self.release(tmp)
            cur = dst
        if rest != unit:
            if op == "add" and rest in (_CB, _LB):   # parameters that are often 0
                if cur != dst:
                    self.line(f"numpy.copyto({dst}, {cur})")
                self.line(f"if {self.name(rest)}: numpy.add({dst}, {rest.name}, out={dst})")
                return
            self.line(f"numpy.{op}({cur}, {self._param(rest)}, out={dst})")
            cur = dst
        if cur != dst:
            self.line(f"numpy.copyto({dst}, {cur})")

    def _param(self, e):
        return self.name(e) if e.is_Symbol else f"({self.small(e)})"

    def _clamped(self, v: str, tmp: list[str], template: str) -> str:
        """``v`` clamped in place when it is a temporary, else into a new one."""
        t = tmp[0] if tmp else self.temp()
        self.line(template.format(v=v, t=t))
        return t

    def _pow(self, base, ex, dst):
        v, tmp = self.val(base)
        if ex.is_Rational and not ex.is_integer and self.is_full(base) and _C in self.inputs(base):
            # radicands of the registry's forms are >= 0 for |c| <= √(ab): roundoff must not
            # turn e.g. ab - c² into -1e-17 and the radical into NaN
            v = self._clamped(v, tmp, "numpy.maximum({v}, 0.0, out={t})")
            tmp = [v]
        if ex == 2:
            self.line(f"numpy.multiply({v}, {v}, out={dst})")
        elif ex == sp.S.Half:
            self.line(f"numpy.sqrt({v}, out={dst})")
        elif ex == -1:
            self.line(f"numpy.divide(1.0, {v}, out={dst})")
        elif ex == -sp.S.Half:
            self.line(f"numpy.sqrt({v}, out={dst})")
            self.line(f"numpy.divide(1.0, {dst}, out={dst})")
        elif ex == sp.Rational(3, 2):
            self.line(f"numpy.sqrt({v}, out={dst})")
            self.line(f"numpy.multiply({dst}, {v}, out={dst})")
        elif ex == -sp.Rational(3, 2):
            self.line(f"numpy.sqrt({v}, out={dst})")
            self.line(f"numpy.multiply({dst}, {v}, out={dst})")
            self.line(f"numpy.divide(1.0, {dst}, out={dst})")
        else:
            self.line(f"numpy.power({v}, {float(ex)!r}, out={dst})")
        self.release(tmp)


@dataclass(frozen=True)
class FusedPair:
    """The layer map ``K' = C_b + C_W S``, ``Θ' = λ_b + λ_W S + C_W D Θ`` on a row block,
    compiled (see the module docstring).  ``ss_expr``/``dd_expr`` are the rewritten S and D
    (``dd_expr`` is ``None`` when only K' is wanted); :attr:`source` the generated code."""

    ss_expr: sp.Expr
    dd_expr: sp.Expr | None
    source: str = field(repr=False)
    ntemp: int = field(repr=False)
    _fn: Callable = field(repr=False, compare=False)

    def layer(self, a, b, c, theta, out_k, out_t, C_W, C_b, lam_W, lam_b, work) -> None:
        """Write K' into ``out_k`` (and Θ' into ``out_t``) for the block: ``a`` (m, 1), ``b``
        (1, n), ``c`` and ``theta`` (m, n) (``c`` is clipped to |c| <= √(ab) in place);
        ``work`` is a list of at least :attr:`ntemp` + 1 arrays of shape (m, n)."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            self._fn(a, b, c, theta, out_k, out_t, C_W, C_b, lam_W, lam_b, work)

    def __call__(self, a, b, c):
        """``(S, D)`` on a block (``D`` is ``None`` without ``dd_expr``), for tests."""
        c = np.array(np.broadcast_to(c, np.broadcast(a, b, c).shape), dtype=float)
        ks = np.empty(c.shape)
        ts = np.empty(c.shape) if self.dd_expr is not None else None
        work = [np.empty(c.shape) for _ in range(self.ntemp + 1)]
        self.layer(np.asarray(a, float), np.asarray(b, float), c, np.ones(c.shape), ks, ts,
                   1.0, 0.0, 0.0, 0.0, work)
        if ts is None:
            return ks, None
        ts2 = np.empty(c.shape)
        self.layer(np.asarray(a, float), np.asarray(b, float), c, np.zeros(c.shape), ks, ts2,
                   1.0, 0.0, 1.0, 0.0, work)
        return ks, ts - ts2 + ks            # (S·0 + D·1) - (S + 0) + S = D


def fused_pair(ss: sp.Expr, dd: sp.Expr | None) -> FusedPair:
    """The compiled layer map for the closed forms ``ss(a_, b_, c_)`` and ``dd(a_, b_, c_)``
    (SymPy expressions in symbols named ``a_, b_, c_``, as the registry compiles them; ``dd``
    may be a constant, or ``None`` when only ⟨σσ⟩ is needed)."""
    return _fused_pair(sp.sympify(ss), None if dd is None else sp.sympify(dd))


@functools.lru_cache(maxsize=64)
def _fused_pair(ss: sp.Expr, dd: sp.Expr | None) -> FusedPair:
    import scipy.special  # noqa: F401  (the generated code's namespace)
    from sympy.printing.numpy import SciPyPrinter

    names = {"a_": _A, "b_": _B, "c_": _C}

    def prepare(e):
        e = e.xreplace({s: names[s.name] for s in e.free_symbols if s.name in names})
        return separable_form(e)

    s2 = prepare(ss)
    d2 = prepare(dd) if dd is not None else None
    outs = [_CB + _CW * s2] + ([] if d2 is None else [_LB + _LW * s2 + _CW * d2 * _TH])
    subs, reduced = sp.cse(outs, symbols=sp.numbered_symbols("x"), order="none")
    g = _Codegen(SciPyPrinter({"fully_qualified_modules": True}))
    g.line("s0 = numpy.sqrt(a_)")
    g.line("numpy.multiply(s0, numpy.sqrt(b_), out=w[-1])")          # |c| <= √(ab)
    g.line("numpy.minimum(c, w[-1], out=c)")
    g.line("numpy.negative(w[-1], out=w[-1])")
    g.line("numpy.maximum(c, w[-1], out=c)")
    for sym, e in subs:
        g.deps[sym] = g.inputs(e)
        if g.is_full(e):
            g.full.add(sym)
            dst = g.temp()
            g.emit(e, dst)
            g.line(f"{sym.name} = {dst}")
        else:
            g.line(f"{sym.name} = {g.small(e)}")
    for e, dst in zip(reduced, ("out_k", "out_t")):
        if g.is_full(e):
            g.emit(e, dst)
        else:
            g.line(f"{dst}[...] = {g.small(e)}")
    body = "\n".join("    " + ln for ln in g.lines if ln)
    src = ("def _layer(a_, b_, c, th, out_k, out_t, C_W, C_b, lambda_W, lambda_b, w):\n" + body + "\n")
    ns = {"numpy": np, "scipy": __import__("scipy"), **g.generic}
    exec(compile(src, "<perturb fused layer>", "exec"), ns)      # generated from SymPy, not user text
    return FusedPair(ss_expr=s2, dd_expr=d2, source=src, ntemp=g.ntemp, _fn=ns["_layer"])
