"""The one bridge from SymPy to numbers.

Every symbolic result of perturb (kernels, finite-width corrections, exact moments) is turned
into a callable here and nowhere else: :func:`compile_expr` wraps :func:`sympy.lambdify` with
explicit module namespaces (numpy has no vectorised ``erf``: it comes from ``scipy.special``)
and common-subexpression elimination, and returns a :class:`Compiled` object that is cheap to
call many times.

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> f = compile_expr(sp.erf(x) ** 2 + x, [x])
>>> round(float(f(0.5)), 12)
0.770920122803
>>> import mpmath
>>> mpmath.nstr(f.mpmath(0.5, dps=30), 25)   # evaluated at 30 digits
'0.7709201228033963753793357'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np
import scipy.special as sc
import sympy as sp

__all__ = ["Compiled", "compile_expr", "NUMPY_MODULES", "MPMATH_MODULES"]


def _np_heaviside(x, h0=0.5):
    return np.heaviside(x, h0)


#: functions numpy lacks, mapped to vectorised scipy equivalents
NUMPY_MODULES: list[Any] = [
    {
        "erf": sc.erf,
        "erfc": sc.erfc,
        "erfinv": sc.erfinv,
        "gamma": sc.gamma,
        "loggamma": sc.gammaln,
        "polygamma": sc.polygamma,
        "digamma": sc.digamma,
        "Heaviside": _np_heaviside,
        "expit": sc.expit,
        "binomial": sc.binom,
    },
    "numpy",
]


#: an Add with more terms than this is printed as a balanced tree of parenthesised halves
_ADD_CHUNK = 64


def _balanced_add(printer, expr) -> str:
    """``a1 + ... + aN`` as ``(a1 + ... ) + ( ... + aN)``, halves recursively: the generated code
    nests log2(N) deep instead of N, so Python's compiler does not hit its recursion limit on
    the large sums of high-order finite-width coefficients (``cumulants --order 6``)."""
    from sympy.printing.precedence import precedence

    terms = [printer.parenthesize(t, precedence(expr)) for t in expr.args]

    def tree(ts):
        if len(ts) <= _ADD_CHUNK:
            return " + ".join(ts)
        mid = len(ts) // 2
        return f"({tree(ts[:mid])}) + ({tree(ts[mid:])})"

    return tree(terms)


def _printer(base):
    class _Balanced(base):
        def _print_Add(self, expr, order=None):
            if len(expr.args) <= _ADD_CHUNK:
                return super()._print_Add(expr, order=order) if order is not None else super()._print_Add(expr)
            return _balanced_add(self, expr)

    _Balanced.__name__ = f"Balanced{base.__name__}"
    return _Balanced


def _lambdify(args, expr, modules, **kw):
    """sympy.lambdify with the balanced-sum printer of the backend."""
    from sympy.printing.numpy import NumPyPrinter
    from sympy.printing.pycode import MpmathPrinter

    base = MpmathPrinter if modules is MPMATH_MODULES else NumPyPrinter
    # the settings sympy.lambdify gives its default printer (names of the module dicts print as themselves)
    user_functions = {k: k for m in modules[::-1] if isinstance(m, dict) for k in m}
    printer = _printer(base)({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True,
                              "user_functions": user_functions})
    return sp.lambdify(args, expr, modules=modules, printer=printer, **kw)


def _mp_heaviside(x, h0=None):
    if x < 0:
        return mpmath.mpf(0)
    return mpmath.mpf(1) if x > 0 else (mpmath.mpf(1) / 2 if h0 is None else h0)


def _mp_sign(x):
    return mpmath.sign(x)


MPMATH_MODULES: list[Any] = [
    {"Heaviside": _mp_heaviside, "sign": _mp_sign, "loggamma": mpmath.loggamma},
    "mpmath",
]


@dataclass(frozen=True)
class Compiled:
    """A SymPy expression compiled for numpy (vectorised) and for mpmath (any precision).

    Call it like a function of ``args`` (numpy arrays broadcast); use :meth:`mpmath` for a
    high-precision value computed inside ``mpmath.workdps(dps)``.
    """

    expr: sp.Expr
    args: tuple[sp.Symbol, ...]
    _np: Callable = field(repr=False, compare=False)
    _mp: Callable | None = field(default=None, repr=False, compare=False)

    def __reduce__(self):
        # lambdify's functions cannot be pickled; a Compiled travels as its expression and is
        # compiled again on arrival (process pools and Dask workers receive activations this way)
        return (compile_expr, (self.expr, self.args))

    def __call__(self, *values):
        out = self._np(*values)
        if np.ndim(out) == 0 and any(np.ndim(v) for v in values):
            out = np.broadcast_to(out, np.broadcast(*values).shape).copy()
        return out

    @property
    def mp_function(self) -> Callable:
        """The raw mpmath-backend function (evaluates at the caller's working precision)."""
        if self._mp is None:
            object.__setattr__(self, "_mp", _lambdify(self.args, self.expr, MPMATH_MODULES))
        return self._mp

    def mpmath(self, *values, dps: int = 30):
        """Evaluate at ``dps`` significant digits (mpmath), without touching global precision."""
        fn = self.mp_function
        with mpmath.workdps(dps):
            vals = [mpmath.mpmathify(v) if not isinstance(v, mpmath.mpf) else v for v in values]
            return +fn(*vals)

    def __repr__(self) -> str:
        names = ", ".join(str(a) for a in self.args)
        text = str(self.expr)
        if len(text) > 60:
            text = text[:57] + "..."
        return f"Compiled(({names}) -> {text})"


def compile_expr(expr: sp.Expr, args: Sequence[sp.Symbol], *, cse: bool = True) -> Compiled:
    """Compile ``expr`` as a function of ``args`` (numpy backend, plus lazy mpmath backend)."""
    args = tuple(args)
    expr = sp.sympify(expr)
    extra = expr.free_symbols - set(args)
    if extra:
        names = ", ".join(sorted(str(s) for s in extra))
        from .errors import PerturbError

        raise PerturbError(f"cannot compile: free symbols {names} are not among the arguments")
    fn = _lambdify(args, expr, NUMPY_MODULES, cse=cse)
    return Compiled(expr=expr, args=args, _np=fn)
