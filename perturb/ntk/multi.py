"""Fold the derived several-input NTK map over depth: E Θ_{αβ}, Cov(Θ_{αβ}, Θ_{γδ}) at order 1/n.

Conventions as in :mod:`perturb.ntk.chain` (docs/conventions.md, docs/reference.md §3), for N inputs x_1..x_N (rows of X,
n_0 = their length).  Layer 1 is exact at any width:

    K^{(1)}_{αβ} = C_b + C_W x_α·x_β/n_0,    H^{(1)}_{αβ} = λ_b + λ_W x_α·x_β/n_0,    all 1/n statistics 0,

and the derived map (:func:`~perturb.ntk.derive_multi.derive_ntk_multi_map`) takes layer ℓ to ℓ+1.
For one output neuron of layer L+1 (:func:`~perturb.ntk.derive_multi.derive_ntk_output`):

    E Θ_{αβ} = H_{αβ} + H1_{αβ}/n_L,
    Cov(Θ_{αβ}, Θ_{γδ}) = (A_{(αβ)(γδ)} + B_{αγβδ} + B_{αδβγ})/n_L          (PDLT's index order),
    E z_α z_β = K_{αβ} + G1_{αβ}/n_L,   Cov(z_α z_β, Θ_{γδ}) = (D_{(αβ)(γδ)} + F_{αγβδ} + F_{βγαδ})/n_L.

With N = 1 these are the one-input statistics of :func:`~perturb.ntk.chain.ntk_statistics`.
The kernel K^{(ℓ)} must be non-singular at every layer (distinct, non-parallel inputs or C_b > 0):
the map contains K⁻¹ (Price's theorem in Hermite form and the conditioning lemma).

>>> st = ntk_statistics_multi("relu", [64, 64], [[1.0, 0.0], [0.6, 0.8]], C_W=2.0, C_b=0.0)
>>> st.mean.shape, st.cov.shape
((2, 2), (2, 2, 2, 2))
>>> bool(abs(st.cov[0, 1, 1, 0] - st.cov[1, 0, 0, 1]) < 1e-14)
True
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from .._compiled_cache import payload, restore
from .._diskcache import disk_memo
from ..activations import get_activation
from ..compile import compile_expr
from ..errors import PerturbError
from ..finite.chain import _closed_atoms
from ..gaussian import expect
from ..gaussian.atom import GaussianExpectation
from ..gaussian.batch import expect_batch
from ..gaussian.dispatch import substitute_activation
from ..montecarlo._simulate import _check_inputs
from .chain import _check_order, _check_widths, _layer_params, require_ntk_defined
from .derive_multi import MAX_INPUTS, STAT_NAMES_MULTI, derive_ntk_multi_map, derive_ntk_output

__all__ = ["NTKMultiStatistics", "ntk_statistics_multi", "ntk_statistics_multi_exact", "MIN_EIGEN_RATIO"]

_ALL = ("K", "H", *STAT_NAMES_MULTI)


@dataclass(frozen=True)
class NTKMultiStatistics:
    """One output's NTK statistics at N inputs, order 1/n (numpy arrays).

    Attributes:
        widths: hidden widths n_1..n_L.
        X: the inputs (N × n_0).
        H, K: the infinite-width NTK and kernel at the output (N × N).
        mean: E Θ_{αβ} = H + H1/n_L (N × N).
        cov: Cov(Θ_{αβ}, Θ_{γδ}) (N × N × N × N).
        mean_z: E z_α z_β = K + G1/n_L.
        cov_z: Cov(z_α z_β, Θ_{γδ}) (N × N × N × N).
        layers: per layer ℓ = 1..L+1, the derived state {name: {key: value}} (K, H, G1, H1 by pair
            (α, β), α ≤ β; V, A, D by pairs of pairs; B, F by canonical 4-tuples in the storage
            convention of :mod:`perturb.ntk.derive_multi`).
    """

    widths: tuple
    X: np.ndarray = field(repr=False)
    H: np.ndarray
    K: np.ndarray = field(repr=False)
    mean: np.ndarray
    cov: np.ndarray = field(repr=False)
    mean_z: np.ndarray = field(repr=False)
    cov_z: np.ndarray = field(repr=False)
    layers: list = field(repr=False)

    @property
    def var(self) -> np.ndarray:
        """Var Θ_{αβ} (N × N): the diagonal cov[α, β, α, β]."""
        N = self.mean.shape[0]
        out = np.empty((N, N))
        for a, b in itertools.product(range(N), repeat=2):
            out[a, b] = self.cov[a, b, a, b]
        return out

    def as_dict(self) -> dict:
        """``{"mean": N×N, "var": N×N, "cov": N×N×N×N}`` as nested lists (the CLI's JSON keys)."""
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "cov": self.cov.tolist()}


# --------------------------------------------------------------------------- compilation


@functools.lru_cache(maxsize=MAX_INPUTS)
def _compiled_generic(N: int):
    """The derived map and output formulas compiled once per N for the generic σ, its atoms as
    leaves; the compiled functions are cached on disk across processes (lambdify's source,
    :mod:`perturb._compiled_cache`), keyed by perturb's source like the derivation itself."""
    mm = derive_ntk_multi_map(N)
    keys, fn, okeys, ofn, atoms = disk_memo("perturb.ntk.multi.compiled_generic", (N,),
                                            lambda: _generic_payload(N, mm))
    return mm, keys, restore(fn), okeys, restore(ofn), atoms


def _generic_payload(N: int, mm):
    out = derive_ntk_output(N)
    keys = [(name, k) for name in _ALL for k in mm.exprs[name]]
    exprs = [mm.exprs[name][k] for name, k in keys]
    okeys, oexprs = [], []
    for name in ("mean", "mean_z"):
        for p, (c0, c1) in out[name].items():
            okeys += [(name, p, 0), (name, p, 1)]
            oexprs += [c0, c1]
    for name in ("cov", "cov_z"):
        for pq, c in out[name].items():
            okeys.append((name, pq))
            oexprs.append(c)
    atoms = sorted(set().union(*[e.atoms(GaussianExpectation) for e in exprs + oexprs]),
                   key=sp.default_sort_key)
    leaves = [sp.Dummy(f"g{i}") for i in range(len(atoms))]
    rep = dict(zip(atoms, leaves, strict=True))
    args = mm.syms.args() + leaves
    fn = compile_expr(sp.Tuple(*[e.xreplace(rep) for e in exprs]), args)
    ofn = compile_expr(sp.Tuple(*[e.xreplace(rep) for e in oexprs]), args)
    return keys, payload(fn), okeys, payload(ofn), atoms


@functools.lru_cache(maxsize=32)
def _compiled_atoms(activation_name: str, N: int):
    """The generic atoms with the activation substituted (each a combination of concrete atoms),
    compiled as functions of the kernel entries and the concrete atoms' values."""
    mm, *_, generic = _compiled_generic(N)
    fn, atoms = disk_memo("perturb.ntk.multi.compiled_atoms", (activation_name, N),
                          lambda: _atoms_payload(activation_name, mm, generic))
    return restore(fn), atoms


def _atoms_payload(activation_name: str, mm, generic):
    act = get_activation(activation_name)
    subbed = [substitute_activation(a, act) for a in generic]
    atoms = sorted(set().union(*[e.atoms(GaussianExpectation) for e in subbed]), key=sp.default_sort_key)
    leaves = [sp.Dummy(f"e{i}") for i in range(len(atoms))]
    rep = dict(zip(atoms, leaves, strict=True))
    fn = compile_expr(sp.Tuple(*[e.xreplace(rep) for e in subbed]), list(mm.syms.K.values()) + leaves)
    return payload(fn), atoms


def _atom_values(atoms, Ksyms: dict, Kvals: dict, method: str, dps: int | None = None) -> list:
    """Numbers for the atoms at the numeric kernel (sub-covariances as the atoms marginalise);
    with ``dps``, mpmath values (closed forms where registered, else the high-precision rules)."""
    sub = {Ksyms[p]: Kvals[p] for p in Ksyms}
    if not dps:       # all atoms of the layer at once: one quadrature grid per sub-covariance
        items = []
        for a in atoms:
            f, cov = a.args
            num = (np.array([[sub[cov[i, j]] for j in range(cov.shape[1])] for i in range(cov.shape[0])], dtype=float)
                   if isinstance(cov, sp.MatrixBase) else np.asarray(sub[cov], dtype=float))
            items.append((f, num))
        return [float(v) for v in expect_batch(items, method=method)]
    vals = []
    for a in atoms:
        f, cov = a.args
        if isinstance(cov, sp.MatrixBase):
            rows = [[sub[cov[i, j]] for j in range(cov.shape[1])] for i in range(cov.shape[0])]
            num = rows if dps else np.array(rows)
        else:
            num = sub[cov]
        if dps:
            vals.append(expect(f, num, method="mpmath", dps=dps + 5))
        else:
            vals.append(float(expect(f, num, method=method)))
    return vals


# --------------------------------------------------------------------------- checks


def _check_X(X) -> np.ndarray:
    if isinstance(X, (str, bytes)):
        raise PerturbError(f"X must be an N × n0 array of inputs, got {X!r}")
    arr = _check_inputs(X)          # the laboratory's check: shape (n0,) or (N, n0), finite
    if arr.shape[0] > MAX_INPUTS:
        raise PerturbError(f"at most {MAX_INPUTS} inputs are implemented, got N = {arr.shape[0]}")
    return arr


#: smallest eigenvalue ratio of the (correlation-normalised) kernel accepted at any layer
MIN_EIGEN_RATIO = 1e-3


def _check_kernel(Kvals: dict, N: int, ell: int) -> None:
    M = np.array([[float(Kvals[(min(i, j), max(i, j))]) for j in range(N)] for i in range(N)])
    d = np.sqrt(np.abs(np.diag(M)))
    if np.any(d == 0):
        raise PerturbError(f"K^({ell}) has a zero diagonal entry: an input with no signal (x = 0 and C_b = 0)")
    w = np.linalg.eigvalsh(M / np.outer(d, d))
    if w[0] <= MIN_EIGEN_RATIO * w[-1]:
        raise PerturbError(
            f"K^({ell}) is (nearly) singular: correlation-matrix eigenvalues {np.round(w, 6).tolist()}, "
            f"ratio below {MIN_EIGEN_RATIO:g}; the several-input map contains K⁻¹ up to the fourth power, "
            "so the inputs must not be (nearly) parallel (for one input use ntk_statistics)")


# --------------------------------------------------------------------------- the fold


def ntk_statistics_multi(activation, widths: Sequence[int], X, *, C_W=1.0, C_b=0.0, lambda_W=None,
                         lambda_b=None, order: int = 1, method: str = "auto",
                         dps: int | None = None) -> NTKMultiStatistics:
    """Order-1/n NTK statistics of one output at N inputs (rows of X), by folding the derived map.

    Args:
        activation: activation spec (``"relu"``, ``"tanh"``, ``"gelu"``, ...).
        widths: hidden widths n_1..n_L.
        X: the inputs, shape (N, n_0), N = 1..3 (a 1-d array is one input).
        C_W, C_b, lambda_W, lambda_b: scalars or one per layer 1..L+1; λ defaults to C (NTK
            parameterisation).
        order: must be 1.
        method: atom evaluation (``"auto"``, ``"closed"``, ``"quad"``).
        dps: evaluate with mpmath at this many digits (atoms by closed forms where registered,
            else the lattice/Mehler rules of :mod:`perturb.gaussian.precise`; ~0.3 s per
            two-variable atom at 30 digits, ~55 atoms per layer for N = 2); the arrays then hold
            ``mpmath.mpf``.

    The derivation is cached per N (N = 2: ~10 s the first time in a process; N = 3: ~20 min),
    the compiled map per (activation, N).  The map has K⁻¹ up to the fourth power, so kernels
    with eigenvalue ratio below :data:`MIN_EIGEN_RATIO` (inputs closer than about 3.6°,
    correlation above 0.998, at some layer) are refused rather than returned with amplified
    quadrature and rounding errors (in float64; ``dps`` does not lift the refusal).
    """
    _check_order(order)
    ws = _check_widths(widths)
    Xa = _check_X(X)
    N, n0 = Xa.shape
    L1 = len(ws) + 1
    cw, cb, lw, lb = _layer_params(L1, C_W, C_b, lambda_W, lambda_b)
    for name, seq in (("C_W", cw), ("C_b", cb), ("lambda_W", lw), ("lambda_b", lb)):
        if any(np.ndim(v) or isinstance(v, (sp.Basic, mpmath.mpf)) for v in seq):
            raise PerturbError(f"{name} must be plain numbers (one per layer) for several inputs, got {seq!r}")
    cw, cb, lw, lb = ([float(v) for v in seq] for seq in (cw, cb, lw, lb))
    if dps is not None:
        dps = _check_dps(dps)
        num = mpmath.mpf
        with mpmath.workdps(dps + 10):
            cw, cb, lw, lb = ([num(v) for v in seq] for seq in (cw, cb, lw, lb))
    act = get_activation(activation)
    if act.is_generic:
        raise PerturbError("ntk_statistics_multi needs a concrete activation (relu, tanh, gelu, ...)")
    require_ntk_defined(act)
    pairs = [(a, b) for a in range(N) for b in range(a, N)]
    if dps:
        with mpmath.workdps(dps + 10):
            gram = {p: mpmath.fsum(mpmath.mpf(u) * mpmath.mpf(v) for u, v in zip(Xa[p[0]], Xa[p[1]], strict=True))
                    / n0 for p in pairs}
            state = {"K": {p: cb[0] + cw[0] * gram[p] for p in pairs},
                     "H": {p: lb[0] + lw[0] * gram[p] for p in pairs}}
    else:
        gram = {p: float(Xa[p[0]] @ Xa[p[1]]) / n0 for p in pairs}
        state = {"K": {p: cb[0] + cw[0] * gram[p] for p in pairs},
                 "H": {p: lb[0] + lw[0] * gram[p] for p in pairs}}
    _check_kernel(state["K"], N, 1)          # before the (cached, seconds-long) derivation
    mm, keys, fn, okeys, ofn, _ = _compiled_generic(N)
    afn, atoms = _compiled_atoms(act.name, N)
    y = mm.syms
    call = functools.partial(_call_mp, dps=dps + 10) if dps else _call
    zero = mpmath.mpf(0) if dps else 0.0
    for name in STAT_NAMES_MULTI:
        state[name] = {k: zero for k in getattr(y, name)}
    layers = [state]
    for ell in range(1, len(ws) + 2):
        _check_kernel(state["K"], N, ell)
        concrete = _atom_values(atoms, y.K, state["K"], method, dps)
        vals = call(afn, [state["K"][p] for p in pairs] + concrete, ell)
        if ell == len(ws) + 1:
            break
        # layer ℓ -> ℓ+1: width n_ℓ, the C's of layer ℓ+1
        r = (mpmath.mpf(ws[ell - 1]) / ws[ell - 2] if dps else ws[ell - 1] / ws[ell - 2]) if ell > 1 else zero + 1
        res = call(fn, _args(y, state, cw[ell], cb[ell], lw[ell], lb[ell], r) + vals, ell + 1)
        state = {name: {} for name in _ALL}
        for (name, k), v in zip(keys, res, strict=True):
            state[name][k] = v if dps else float(v)
        layers.append(state)
    # one output neuron of layer L+1 from the last state (its statistics normalised by n_L)
    parts = dict(zip(okeys, call(ofn, _args(y, state, cw[-1], cb[-1], lw[-1], lb[-1], zero + 1) + vals, L1),
                     strict=True))
    n_L = mpmath.mpf(ws[-1]) if dps else float(ws[-1])
    dtype = object if dps else float
    mean, mean_z, Kout, Hout = (np.empty((N, N), dtype=dtype) for _ in range(4))
    cov, cov_z = np.empty((N,) * 4, dtype=dtype), np.empty((N,) * 4, dtype=dtype)
    with mpmath.workdps((dps or 15) + 10):        # the mpf arithmetic below at the working precision
        for a, b in itertools.product(range(N), repeat=2):
            p = (min(a, b), max(a, b))
            mean[a, b] = parts[("mean", p, 0)] + parts[("mean", p, 1)] / n_L
            mean_z[a, b] = parts[("mean_z", p, 0)] + parts[("mean_z", p, 1)] / n_L
            Kout[a, b], Hout[a, b] = state["K"][p], state["H"][p]
            for c, d in itertools.product(range(N), repeat=2):
                q = (min(c, d), max(c, d))
                cov[a, b, c, d] = parts[("cov", (p, q))] / n_L
                cov_z[a, b, c, d] = parts[("cov_z", (p, q))] / n_L
    return NTKMultiStatistics(ws, Xa, Hout, Kout, mean, cov, mean_z, cov_z, layers)


def _call(fn, args, layer: int):
    with np.errstate(all="raise"):
        try:
            res = [float(v) for v in fn(*args)]
        except (ZeroDivisionError, FloatingPointError, OverflowError) as exc:
            raise PerturbError(f"layer {layer}: the NTK statistics overflow or divide by zero ({exc}); "
                               "check the parameters (divergent Gaussian integral?)") from None
    if not all(np.isfinite(res)):
        raise PerturbError(f"layer {layer}: NTK statistics not finite (divergent Gaussian integral or "
                           "overflow for these parameters)")
    return res


def _call_mp(fn, args, layer: int, *, dps: int):
    """Evaluate a compiled tuple with mpmath at ``dps`` digits; refuse non-finite values."""
    with mpmath.workdps(dps):
        try:
            res = [+v for v in fn.mp_function(*args)]
        except ZeroDivisionError:
            raise PerturbError(f"layer {layer}: the NTK statistics divide by zero; check the parameters") from None
    if not all(mpmath.isfinite(v) for v in res):
        raise PerturbError(f"layer {layer}: NTK statistics not finite (divergent Gaussian integral?)")
    return res


def _check_dps(dps) -> int:
    if isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or not 15 <= dps <= 200:
        raise PerturbError(f"dps must be an integer from 15 to 200, got {dps!r}")
    return int(dps)


def _args(y, state, cw, cb, lw, lb, r) -> list:
    out = [*(state["K"][p] for p in y.K), *(state["H"][p] for p in y.H), cw, cb, lw, lb, r]
    for name in STAT_NAMES_MULTI:
        out += [state[name][k] for k in getattr(y, name)]
    return out


# --------------------------------------------------------------------------- exact SymPy fold


@functools.lru_cache(maxsize=16)
def _exact_exprs(activation_name: str, N: int):
    """The derived map and output formulas with every atom replaced by its closed form."""
    act = get_activation(activation_name)
    mm = derive_ntk_multi_map(N)
    out = derive_ntk_output(N)
    generic = set()
    for name in _ALL:
        for e in mm.exprs[name].values():
            generic |= e.atoms(GaussianExpectation)
    for part in out.values():
        for v in part.values():
            for e in (v if isinstance(v, tuple) else (v,)):
                generic |= e.atoms(GaussianExpectation)
    try:
        rep = {g: _closed_atoms(substitute_activation(g, act)) for g in generic}
    except PerturbError as exc:
        raise PerturbError(f"{exc} (ntk_statistics_multi, numeric or with dps, needs none)") from None
    exprs = {name: {k: e.xreplace(rep) for k, e in mm.exprs[name].items()} for name in _ALL}
    outs = {name: {k: tuple(e.xreplace(rep) for e in v) if isinstance(v, tuple) else v.xreplace(rep)
                   for k, v in part.items()} for name, part in out.items()}
    return mm, exprs, outs


def _tidy_exact(e: sp.Expr) -> sp.Expr:
    """Rational expressions are cancelled; with arccos/sqrt (ReLU) the tree is kept as it is:
    ``sp.simplify`` on nested arc-cosines takes minutes per entry and changes nothing exact."""
    return sp.cancel(e) if not e.atoms(sp.Function) and not e.has(sp.Pow) else e


def ntk_statistics_multi_exact(activation, widths: Sequence, X, *, C_W=1, C_b=0, lambda_W=None,
                               lambda_b=None) -> NTKMultiStatistics:
    """The several-input fold in exact SymPy arithmetic (every atom needs a closed form: ReLU,
    leaky ReLU, abs, linear, erf, ...).  Inputs and parameters are taken as exact rationals
    (``sympy.nsimplify``); widths may be integers or symbols.  Returns sympy Matrices/arrays of
    exact expressions (object arrays) in the same fields as :func:`ntk_statistics_multi`.

    >>> st = ntk_statistics_multi_exact("linear", [4], [[1, 0], [0, 1]], C_W=1, C_b=0)
    >>> st.mean[0, 1], st.cov[0, 0, 1, 1]
    (0, 1/8)
    """
    act = get_activation(activation)
    if act.is_generic:
        raise PerturbError("ntk_statistics_multi_exact needs a concrete activation (relu, linear, ...)")
    require_ntk_defined(act)
    if not isinstance(widths, Sequence) or not len(widths):
        raise PerturbError(f"widths must be a non-empty list, got {widths!r}")
    ws = tuple(sp.sympify(w, strict=True) for w in widths)
    for w in ws:
        if w.is_number and not (w.is_integer and w >= 1):
            raise PerturbError(f"widths must be integers >= 1 (or symbols), got {w}")
    rows = [[sp.nsimplify(v) for v in row] for row in (X if np.ndim(X) == 2 else [X])]
    N, n0 = len(rows), len(rows[0])
    if N > MAX_INPUTS or any(len(r) != n0 for r in rows):
        raise PerturbError(f"X must be an N × n0 array with N <= {MAX_INPUTS}, got {X!r}")
    _check_X(np.array([[float(v) for v in r] for r in rows]))
    L1 = len(ws) + 1
    cw, cb, lw, lb = ([sp.nsimplify(v) for v in seq] for seq in _layer_params(L1, C_W, C_b, lambda_W, lambda_b))
    mm, exprs, outs = _exact_exprs(act.name, N)
    y = mm.syms
    pairs = [(a, b) for a in range(N) for b in range(a, N)]
    gram = {p: sum(u * v for u, v in zip(rows[p[0]], rows[p[1]], strict=True)) / n0 for p in pairs}
    state = {"K": {p: cb[0] + cw[0] * gram[p] for p in pairs}, "H": {p: lb[0] + lw[0] * gram[p] for p in pairs}}
    for name in STAT_NAMES_MULTI:
        state[name] = {k: sp.S.Zero for k in getattr(y, name)}
    layers = [state]

    def sub_for(st, ell, r):
        return dict(zip(y.args(), _args(y, st, cw[ell], cb[ell], lw[ell], lb[ell], r), strict=True))

    for ell in range(1, L1):
        _check_kernel({p: float(v) for p, v in state["K"].items()}, N, ell)
        r = ws[ell - 1] / ws[ell - 2] if ell > 1 else sp.S.One
        sub = sub_for(state, ell, r)
        state = {name: {k: _tidy_exact(e.xreplace(sub)) for k, e in exprs[name].items()} for name in _ALL}
        layers.append(state)
    sub = sub_for(state, L1 - 1, sp.S.One)
    n_L = ws[-1]
    mean, mean_z, Kout, Hout = (np.empty((N, N), dtype=object) for _ in range(4))
    cov, cov_z = np.empty((N,) * 4, dtype=object), np.empty((N,) * 4, dtype=object)
    for a, b in itertools.product(range(N), repeat=2):
        p = (min(a, b), max(a, b))
        c0, c1 = (e.xreplace(sub) for e in outs["mean"][p])
        mean[a, b] = _tidy_exact(c0 + c1 / n_L)
        c0, c1 = (e.xreplace(sub) for e in outs["mean_z"][p])
        mean_z[a, b] = _tidy_exact(c0 + c1 / n_L)
        Kout[a, b], Hout[a, b] = state["K"][p], state["H"][p]
        for c, d in itertools.product(range(N), repeat=2):
            q = (min(c, d), max(c, d))
            cov[a, b, c, d] = _tidy_exact(outs["cov"][(p, q)].xreplace(sub) / n_L)
            cov_z[a, b, c, d] = _tidy_exact(outs["cov_z"][(p, q)].xreplace(sub) / n_L)
    return NTKMultiStatistics(ws, np.array(rows, dtype=object), Hout, Kout, mean, cov, mean_z, cov_z, layers)
