"""Compiled expressions that survive the process: lambdify's generated source, stored and re-run.

Turning a SymPy expression into a numpy function (:func:`perturb.compile.compile_expr`) costs
``lambdify`` — printing, common-subexpression elimination — every time a process starts, and
rebuilding the expression from a pickle costs SymPy's constructors again.  :func:`payload`
keeps what is needed to rebuild the *function* cheaply: the source lambdify generated (it is
a pure function of the expression and perturb's printer), the argument symbols, and the
expression itself as pickled bytes, unpickled only if the mpmath backend is ever asked for
(``dps``).  :func:`restore` executes the stored source in lambdify's numpy namespace.

Payloads go into :mod:`perturb._diskcache` entries, which are keyed by perturb's source, so a
stored source is always what the current code would generate.

>>> import sympy as sp
>>> from perturb.compile import compile_expr
>>> x = sp.Symbol("x")
>>> f = restore(payload(compile_expr(sp.erf(x) ** 2 + x, [x])))
>>> round(float(f(0.5)), 12), f.mpmath(0.5, dps=20) > 0
(0.770920122803, True)
"""

from __future__ import annotations

import functools
import inspect
import pickle

import sympy as sp

from .compile import Compiled, compile_expr

__all__ = ["payload", "restore"]


class _Restored(Compiled):
    """A :class:`Compiled` rebuilt from a payload; its expression is unpickled on first use."""

    @property
    def expr(self):
        d = self.__dict__
        if d.get("expr") is None:
            d["expr"] = pickle.loads(d["_blob"])
        return d["expr"]

    @expr.setter
    def expr(self, value) -> None:       # the dataclass __init__ stores the field here
        self.__dict__["expr"] = value


@functools.cache
def _numpy_namespace() -> dict:
    """The namespace lambdify executes its numpy code in (perturb.compile.NUMPY_MODULES)."""
    return compile_expr(sp.Integer(0), [])._np.__globals__


def payload(fn: Compiled) -> tuple:
    """``(expression bytes, args, source)`` of a compiled expression (OSError if lambdify's
    source is not available)."""
    if isinstance(fn, _Restored):
        return fn.__dict__["_blob"], fn.args, fn.__dict__["_source"]
    return (pickle.dumps(fn.expr, protocol=pickle.HIGHEST_PROTOCOL), fn.args, inspect.getsource(fn._np))


def restore(data: tuple) -> Compiled:
    """The compiled expression of a :func:`payload`."""
    blob, args, src = data
    ns = dict(_numpy_namespace())
    name = src.split("def ", 1)[1].split("(", 1)[0]
    exec(compile(src, f"<perturb cached {name}>", "exec"), ns)   # lambdify's own output, from our cache
    out = _Restored(expr=None, args=tuple(args), _np=ns[name])
    object.__setattr__(out, "_blob", blob)
    object.__setattr__(out, "_source", src)
    return out
