"""The dispatcher: numbers for Gaussian expectations and for expressions built of them.

:func:`expect` evaluates one expectation ``<f>_K`` at numeric covariances by the requested
fidelity — ``"closed"`` (the closed-form registry, compiled), ``"quad"`` (vectorised quadrature),
``"mpmath"`` (any precision) — or ``"auto"`` (closed form when one exists, else quadrature; mpmath
whenever ``dps`` is given).

:func:`evaluate` takes any SymPy expression containing atoms ``E(f, K(θ))`` — e.g. a derived
finite-width recursion — substitutes a concrete activation for the generic ``sigma`` and numbers
(or numpy arrays, broadcast together) for the parameters θ, and returns its value.

>>> import sympy as sp
>>> from perturb.activations import Z, SIGMA
>>> from perturb.gaussian import E
>>> K = sp.Symbol("K", positive=True)
>>> chi = E(SIGMA(Z)**2 * (Z**2 - K), K) / (2 * K**2)       # ∂_K <σ²>_K
>>> float(evaluate(chi, {K: 1.0}, activation="relu"))       # ReLU: <σ²>_K = K/2
0.5
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import mpmath
import numpy as np
import sympy as sp

from ..activations import SIGMA, Z, _gaussian_growth, get_activation
from ..compile import compile_expr
from ..errors import DivergentIntegralError, PerturbError
from .atom import GaussianExpectation, integration_vars
from .closed import closed_form
from .interp import INTERPOLATE_ABOVE, expect_interpolated
from .precise import expect_mpmath
from .quadrature import expect_numeric

__all__ = ["expect", "evaluate", "substitute_activation", "closed_form_of", "METHODS"]

METHODS = ("auto", "closed", "quad", "mpmath")


def substitute_activation(expr: sp.Expr, activation) -> sp.Expr:
    """Replace the generic ``sigma`` (and its derivatives) by a concrete activation."""
    act = get_activation(activation)
    if act.is_generic:
        return expr
    lam = sp.Lambda(Z, act.expr)
    out = expr.replace(SIGMA, lam)
    return out.doit() if out.has(sp.Derivative) else out


@functools.lru_cache(maxsize=4096)
def _closed_compiled(f: sp.Expr, m: int):
    """The compiled closed form of <f> (m variables), cached on disk across processes: deriving
    and simplifying it (and lambdify) is most of a warm ``perturb cumulants`` run otherwise."""
    from .._compiled_cache import payload, restore
    from .._diskcache import disk_memo

    def build():
        c = _closed_compiled_uncached(f, m)
        try:
            return (payload(c),) if c is not None else ()
        except (OSError, TypeError):
            return None

    data = disk_memo("perturb.gaussian.dispatch.closed_compiled", (sp.srepr(f), m), build)
    if data is None:
        return _closed_compiled_uncached(f, m)
    return restore(data[0]) if data else None


def _closed_compiled_uncached(f: sp.Expr, m: int):
    if m == 1:
        Ks = sp.Symbol("K_", positive=True)
        expr = closed_form(f, Ks)
        args = [Ks]
    else:
        a, b, c = sp.symbols("a_ b_ c_", real=True)
        expr = closed_form(f, sp.ImmutableMatrix([[a, c], [c, b]])) if m == 2 else None
        args = [a, b, c]
    if expr is None:
        return None
    return compile_expr(expr, args)


def closed_form_of(f: sp.Expr, m: int = 1):
    """The compiled closed form of <f>_K (m = 1 or 2 variables), or None."""
    return _closed_compiled(sp.sympify(f), m)


@functools.lru_cache(maxsize=4096)
def _growths(f: sp.Expr, zs: tuple) -> tuple[float, ...]:
    out = []
    for v in zs:
        g = f.subs({w: sp.Rational(1, 3) for w in zs if w != v}).subs(v, Z)
        out.append(_gaussian_growth(g) if not g.atoms(sp.core.function.AppliedUndef) else 0.0)
    return tuple(out)


def _check_convergence(f: sp.Expr, zs, variances: np.ndarray) -> None:
    """Refuse <f>_K when f grows like exp(c z²) and a variance is >= 1/(2c)."""
    rates = _growths(f, tuple(zs))
    for i, c in enumerate(rates):
        if c <= 0:
            continue
        v = np.asarray(variances[i], dtype=float)
        worst = float(np.max(v)) if v.size else 0.0
        if 2 * c * worst >= 1 - 1e-12:
            raise DivergentIntegralError(
                f"<{f}>_K diverges: the integrand grows like exp({c:g} {zs[i]}²), so the "
                f"variance must be below 1/(2·{c:g}) = {1 / (2 * c):g}; got {worst:g}"
            )


def expect(f, K, *, method: str = "auto", dps: int | None = None):
    """Numeric <f>_K.

    Args:
        f: SymPy expression (or string) in ``z`` (scalar K) or ``z_1..z_m`` (m×m K).
        K: a variance / array of variances, or an (..., m, m) array of covariances.
        method: ``"auto"``, ``"closed"``, ``"quad"`` or ``"mpmath"``.
        dps: digits for mpmath (implies ``method="mpmath"`` under ``"auto"``).

    Returns:
        numpy array (closed, quad) or ``mpmath.mpf`` (mpmath; scalar K or single matrix only).

    >>> float(expect("Max(z, 0)**2", 2.0, method="closed"))
    1.0
    """
    if method not in METHODS:
        raise PerturbError(f"unknown method '{method}'; valid: {', '.join(METHODS)}")
    if isinstance(f, str):
        from ..activations import _FUNCTIONS_IN_EXPRESSIONS
        from ..safeparse import MATH_FUNCTIONS, parse_expression

        # a string is data: the whitelist parser, never sympify (which evaluates Python)
        f = parse_expression(f, symbols={"z": Z, "pi": sp.pi, "E": sp.E},
                             functions={**MATH_FUNCTIONS, **_FUNCTIONS_IN_EXPRESSIONS}, unknown_symbols=True)
    f = _heaviside_powers(sp.sympify(f))
    scalar = not any(s.name.startswith("z_") for s in f.free_symbols)
    if scalar:
        zs = (Z,)
        variances = [np.asarray(K, dtype=float) if not isinstance(K, mpmath.mpf) else np.asarray(float(K))]
        if np.any(variances[0] < 0):
            raise PerturbError(f"variance must be >= 0, got K = {np.asarray(K).min()}")
        m = 1
    else:
        arr = np.asarray(K, dtype=float)
        if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
            used = ", ".join(sorted(s.name for s in f.free_symbols if s.name.startswith("z_")))
            raise PerturbError(f"the integrand uses {used}, so K must be an (..., m, m) covariance "
                               f"matrix; got an array of shape {arr.shape} (use z for a scalar variance)")
        m = arr.shape[-1]
        zs = integration_vars(sp.ImmutableMatrix(sp.zeros(m, m)))
        variances = [arr[..., i, i] for i in range(m)]
    extra = f.free_symbols - set(zs)
    if extra:
        raise PerturbError(f"integrand has free symbols {', '.join(sorted(map(str, extra)))} besides "
                           f"the integration variables {', '.join(map(str, zs))}")
    _check_convergence(f, zs, variances)
    if method == "mpmath" or (method == "auto" and dps):
        d = dps or 30
        cf = closed_form_of(f, m) if m <= 2 else None
        if cf is not None:
            args = [K] if m == 1 else [K[0][0], K[1][1], K[0][1]]
            return cf.mpmath(*args, dps=d)
        return expect_mpmath(f, K, dps=d)
    if method in ("closed", "auto"):
        cf = closed_form_of(f, m) if m <= 2 else None
        if cf is not None:
            if m == 1:
                return np.asarray(cf(np.asarray(K, dtype=float)))
            arr = np.asarray(K, dtype=float)
            return _clip_call(cf, arr[..., 0, 0], arr[..., 1, 1], arr[..., 0, 1])
        if method == "closed":
            raise PerturbError(f"no closed form is registered for <{f}>; use method='quad' or 'mpmath'")
    Karr = np.asarray(K, dtype=float)
    if m == 1 and Karr.size > INTERPOLATE_ABOVE:
        return expect_interpolated(f, Karr)
    return expect_numeric(f, K)


def _heaviside_powers(f: sp.Expr) -> sp.Expr:
    """H(u)^k → H(u) for integer k ≥ 1 (equal almost everywhere, so equal under a Gaussian), so
    that products like H(z_1) H(z_2)^3 find the registered closed form of H(z_1) H(z_2)."""
    if not f.has(sp.Heaviside):
        return f
    return f.replace(lambda e: e.is_Pow and isinstance(e.base, sp.Heaviside) and e.exp.is_integer
                     and e.exp.is_positive, lambda e: e.base)


def _clip_call(cf, a, b, c):
    """Evaluate a two-point closed form with |c| <= sqrt(ab) enforced (roundoff in Gram matrices)."""
    lim = np.sqrt(np.maximum(a * b, 0.0))
    c = np.clip(c, -lim, lim)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = cf(a, b, c)
    return out


def evaluate(expr: sp.Expr, values: Mapping | None = None, *, activation=None, method: str = "auto",
             dps: int | None = None):
    """Evaluate an expression containing Gaussian-expectation atoms.

    Args:
        expr: SymPy expression; atoms ``E(f, K)`` may have symbolic K and generic ``sigma``.
        values: numbers or numpy arrays for every free symbol (arrays broadcast together).
        activation: the activation substituted for ``sigma`` (required when expr uses it).
        method, dps: as in :func:`expect`; with ``dps`` the result is an ``mpmath.mpf``.
    """
    values = dict(values or {})
    expr = sp.sympify(expr)
    if activation is not None:
        expr = substitute_activation(expr, activation)
    if expr.atoms(sp.core.function.AppliedUndef) - set():
        undef = {a.func for a in expr.atoms(sp.core.function.AppliedUndef)}
        if SIGMA in undef:
            raise PerturbError("the expression uses the generic activation sigma; pass activation=...")
    missing = expr.free_symbols - set(values)
    if missing:
        raise PerturbError(f"no value given for {', '.join(sorted(map(str, missing)))}")
    atoms = sorted(expr.atoms(GaussianExpectation), key=sp.default_sort_key)
    if dps:
        return _evaluate_mp(expr, atoms, values, method, dps)
    leaves = {a: sp.Dummy(f"e{i}") for i, a in enumerate(atoms)}
    syms = sorted(values, key=str)
    arrays = np.broadcast_arrays(*[np.asarray(values[s], dtype=float) for s in syms]) if syms else []
    numeric = dict(zip(syms, arrays))
    atom_vals = []
    for a in atoms:
        f, K = a.args
        if f.free_symbols - set(a.variables):
            raise PerturbError(f"integrand of {a} depends on parameters; not supported numerically")
        if isinstance(K, sp.MatrixBase):
            m = K.shape[0]
            Kfn = compile_expr(K, syms)
            Knum = np.asarray(Kfn(*arrays), dtype=float)
            if Knum.ndim == 2:
                Knum = np.broadcast_to(Knum, (arrays[0].shape if arrays else ()) + (m, m))
            else:
                Knum = np.moveaxis(Knum, (0, 1), (-2, -1))
        else:
            Knum = np.asarray(compile_expr(K, syms)(*arrays), dtype=float) if syms else float(K)
        atom_vals.append(expect(f, Knum, method=method))
    fn = compile_expr(expr.xreplace(leaves), syms + [leaves[a] for a in atoms])
    out = fn(*([numeric[s] for s in syms] + atom_vals))
    if not np.all(np.isfinite(out)):
        raise PerturbError("expression evaluates to a non-finite value")
    return out


def _evaluate_mp(expr, atoms, values, method, dps):
    with mpmath.workdps(dps + 10):
        subs = {s: sp.Float(mpmath.nstr(mpmath.mpmathify(v), dps + 10), dps + 10) if not isinstance(v, sp.Basic)
                else v for s, v in values.items()}
        rep = {}
        for a in atoms:
            f, K = a.args
            Kv = K.xreplace(subs)
            Knum = ([[Kv[i, j] for j in range(Kv.shape[1])] for i in range(Kv.shape[0])]
                    if isinstance(Kv, sp.MatrixBase) else Kv)
            if isinstance(Knum, sp.Basic):
                Knum = mpmath.mpmathify(sp.N(Knum, dps + 10))
            val = expect(f, Knum, method="mpmath", dps=dps + 5)
            rep[a] = sp.Float(mpmath.nstr(val, dps + 5), dps + 5)
        out = sp.N(expr.xreplace(rep).xreplace(subs), dps + 5)
        return mpmath.mpmathify(out)


