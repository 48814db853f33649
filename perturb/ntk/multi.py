"""Fold the derived several-input NTK map over depth: E Θ_{αβ}, Cov(Θ_{αβ}, Θ_{γδ}) at order 1/n.

Conventions as in :mod:`perturb.ntk.chain` (REFERENCE §0, §3), for N inputs x_1..x_N (rows of X,
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

from ..activations import get_activation
from ..compile import compile_expr
from ..errors import PerturbError
from ..gaussian import expect
from ..gaussian.atom import GaussianExpectation
from ..gaussian.dispatch import substitute_activation
from ..montecarlo._simulate import _check_inputs
from .chain import _check_order, _check_widths, _layer_params
from .derive_multi import MAX_INPUTS, STAT_NAMES_MULTI, derive_ntk_multi_map, derive_ntk_output

__all__ = ["NTKMultiStatistics", "ntk_statistics_multi", "MIN_EIGEN_RATIO"]

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
    """The derived map and output formulas compiled once per N for the generic σ, its atoms as leaves."""
    mm = derive_ntk_multi_map(N)
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
    return mm, keys, fn, okeys, ofn, atoms


@functools.lru_cache(maxsize=32)
def _compiled_atoms(activation_name: str, N: int):
    """The generic atoms with the activation substituted (each a combination of concrete atoms),
    compiled as functions of the kernel entries and the concrete atoms' values."""
    act = get_activation(activation_name)
    mm, *_, generic = _compiled_generic(N)
    subbed = [substitute_activation(a, act) for a in generic]
    atoms = sorted(set().union(*[e.atoms(GaussianExpectation) for e in subbed]), key=sp.default_sort_key)
    leaves = [sp.Dummy(f"e{i}") for i in range(len(atoms))]
    rep = dict(zip(atoms, leaves, strict=True))
    fn = compile_expr(sp.Tuple(*[e.xreplace(rep) for e in subbed]), list(mm.syms.K.values()) + leaves)
    return fn, atoms


def _atom_values(atoms, Ksyms: dict, Kvals: dict, method: str) -> list[float]:
    """Numbers for the atoms at the numeric kernel (sub-covariances as the atoms marginalise)."""
    sub = {Ksyms[p]: Kvals[p] for p in Ksyms}
    vals = []
    for a in atoms:
        f, cov = a.args
        if isinstance(cov, sp.MatrixBase):
            num = np.array([[sub[cov[i, j]] for j in range(cov.shape[1])] for i in range(cov.shape[0])])
        else:
            num = sub[cov]
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
                         lambda_b=None, order: int = 1, method: str = "auto") -> NTKMultiStatistics:
    """Order-1/n NTK statistics of one output at N inputs (rows of X), by folding the derived map.

    Args:
        activation: activation spec (``"relu"``, ``"tanh"``, ``"gelu"``, ...).
        widths: hidden widths n_1..n_L.
        X: the inputs, shape (N, n_0), N = 1..3 (a 1-d array is one input).
        C_W, C_b, lambda_W, lambda_b: scalars or one per layer 1..L+1; λ defaults to C (NTK
            parameterisation).
        order: must be 1.
        method: atom evaluation (``"auto"``, ``"closed"``, ``"quad"``).

    The derivation is cached per N (N = 2: ~10 s the first time in a process; N = 3: ~20 min),
    the compiled map per (activation, N).  numpy only (no ``dps``): the map has K⁻¹ up to the
    fourth power, so kernels with eigenvalue ratio below :data:`MIN_EIGEN_RATIO` (inputs closer
    than about 3.6°, correlation above 0.998, at some layer) are refused rather than returned
    with amplified quadrature and rounding errors.
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
    act = get_activation(activation)
    if act.is_generic:
        raise PerturbError("ntk_statistics_multi needs a concrete activation (relu, tanh, gelu, ...)")
    pairs = [(a, b) for a in range(N) for b in range(a, N)]
    gram = {p: float(Xa[p[0]] @ Xa[p[1]]) / n0 for p in pairs}
    state = {"K": {p: cb[0] + cw[0] * gram[p] for p in pairs},
             "H": {p: lb[0] + lw[0] * gram[p] for p in pairs}}
    _check_kernel(state["K"], N, 1)          # before the (cached, seconds-long) derivation
    mm, keys, fn, okeys, ofn, _ = _compiled_generic(N)
    afn, atoms = _compiled_atoms(act.name, N)
    y = mm.syms
    for name in STAT_NAMES_MULTI:
        state[name] = {k: 0.0 for k in getattr(y, name)}
    layers = [state]
    for ell in range(1, len(ws) + 2):
        _check_kernel(state["K"], N, ell)
        concrete = _atom_values(atoms, y.K, state["K"], method)
        vals = _call(afn, [state["K"][p] for p in pairs] + concrete, ell)
        if ell == len(ws) + 1:
            break
        # layer ℓ -> ℓ+1: width n_ℓ, the C's of layer ℓ+1
        r = ws[ell - 1] / ws[ell - 2] if ell > 1 else 1.0
        res = _call(fn, _args(y, state, cw[ell], cb[ell], lw[ell], lb[ell], r) + vals, ell + 1)
        state = {name: {} for name in _ALL}
        for (name, k), v in zip(keys, res, strict=True):
            state[name][k] = float(v)
        layers.append(state)
    # one output neuron of layer L+1 from the last state (its statistics normalised by n_L)
    parts = dict(zip(okeys, _call(ofn, _args(y, state, cw[-1], cb[-1], lw[-1], lb[-1], 1.0) + vals, L1),
                     strict=True))
    n_L = float(ws[-1])
    mean, mean_z, Kout, Hout = (np.empty((N, N)) for _ in range(4))
    cov, cov_z = np.empty((N,) * 4), np.empty((N,) * 4)
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


def _args(y, state, cw, cb, lw, lb, r) -> list:
    out = [*(state["K"][p] for p in y.K), *(state["H"][p] for p in y.H), cw, cb, lw, lb, r]
    for name in STAT_NAMES_MULTI:
        out += [state[name][k] for k in getattr(y, name)]
    return out
