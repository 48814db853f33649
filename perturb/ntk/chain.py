"""Fold the derived NTK layer map over depth: the mean and variance of one output's NTK at order 1/n.

Conventions (docs/conventions.md, docs/reference.md §3): one input x ∈ R^{n_0}; hidden widths n_1..n_L; layer ℓ has C_W^{(ℓ)},
C_b^{(ℓ)}, λ_W^{(ℓ)}, λ_b^{(ℓ)} (scalars or one per layer 1..L+1; λ = C by default: the NTK
parameterisation).  Layer 1 is exact at any width:

    K^{(1)} = C_b + C_W |x|²/n_0,   H^{(1)} = λ_b + λ_W |x|²/n_0,   G1 = V = H1 = A = B = D = F = 0,

and the derived map (:func:`~perturb.ntk.derive.derive_ntk_layer_map`) takes layer ℓ to ℓ+1 with
r = n_ℓ/n_{ℓ−1} (r is irrelevant at ℓ = 1, where every statistic is 0).  For one output neuron of
layer L+1:

    E Θ = H + H1/n_L + O(n⁻²),     Var Θ = (A + 2B)/n_L + O(n⁻²),
    E z² = K + G1/n_L,             Cov(z², Θ) = (D + 2F)/n_L,        κ4(z) = 3V/n_L.

Three fidelities: numpy (vectorised over arrays of the C's, λ's and |x|²/n_0; closed-form atoms
where registered, quadrature otherwise), mpmath (``dps``), and exact SymPy when every atom has a
closed form (:func:`ntk_statistics_exact`, e.g. ReLU with rational parameters).

>>> st = ntk_statistics("relu", widths=[100, 100], x=[1.0], C_W=2.0, C_b=0.0, lambda_W=1.0, lambda_b=0.0)
>>> round(float(st.var * 100 / st.H ** 2), 10)       # (A + 2B)/H² at ℓ = 3, critical ReLU
6.4444444444
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from ..activations import get_activation
from ..compile import compile_expr
from ..errors import NotImplementedOrderError, PerturbError
from ..gaussian import closed_form, expect
from ..gaussian.atom import GaussianExpectation
from ..gaussian.dispatch import substitute_activation
from .derive import STAT_NAMES, derive_ntk_layer_map

__all__ = ["NTKStatistics", "ntk_statistics", "ntk_statistics_exact", "ntk_recursions",
           "relu_ntk_exponential"]

_ALL = ("K", "H", *STAT_NAMES)


@dataclass(frozen=True)
class NTKStatistics:
    """Per-layer order-1 NTK statistics and the output NTK's mean and variance.

    Attributes:
        widths: hidden widths n_1..n_L.
        layers: ``layers[name]`` is the list over ℓ = 1..L+1 of K, H, G1, V, H1, A, B, D, F
            (PDLT normalisation: the 1/n statistics of layer ℓ are X/n_{ℓ−1}).
    """

    widths: tuple
    layers: dict = field(repr=False)

    def last(self, name: str):
        """The value of statistic ``name`` at the output layer L+1."""
        return self.layers[name][-1]

    @property
    def K(self):
        return self.last("K")

    @property
    def H(self):
        """The infinite-width NTK H^{(L+1)}."""
        return self.last("H")

    @property
    def _n(self):
        return self.widths[-1]

    @property
    def mean(self):
        """E Θ to order 1/n: H + H1/n_L."""
        return self.H + self.last("H1") / self._n

    @property
    def var(self):
        """Var Θ of one output at order 1/n: (A + 2B)/n_L."""
        return (self.last("A") + 2 * self.last("B")) / self._n

    @property
    def mean_z2(self):
        """E z² of the output to order 1/n: K + G1/n_L."""
        return self.K + self.last("G1") / self._n

    @property
    def cov_z2_ntk(self):
        """Cov(z², Θ) of one output at order 1/n: (D + 2F)/n_L."""
        return (self.last("D") + 2 * self.last("F")) / self._n

    def ratio(self, ell: int | None = None):
        """(A + 2B)/H² at layer ℓ (default L+1): n × Var Θ/(E Θ)² at leading order."""
        i = (ell - 1) if ell is not None else -1
        return (self.layers["A"][i] + 2 * self.layers["B"][i]) / self.layers["H"][i] ** 2

    def as_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var}


# --------------------------------------------------------------------------- compilation


@functools.lru_cache(maxsize=32)
def _compiled(activation_name: str):
    """The derived map with σ substituted, atoms as leaves, compiled once per activation."""
    act = get_activation(activation_name)
    rec = derive_ntk_layer_map()
    exprs = {k: substitute_activation(rec.exprs[k], act) for k in _ALL}
    atoms = sorted(set().union(*[e.atoms(GaussianExpectation) for e in exprs.values()]),
                   key=sp.default_sort_key)
    leaves = [sp.Dummy(f"e{i}") for i in range(len(atoms))]
    rep = dict(zip(atoms, leaves, strict=True))
    args = rec.syms.args() + leaves
    fns = {k: compile_expr(e.xreplace(rep), args) for k, e in exprs.items()}
    K = rec.syms.K
    integrands = []
    for a in atoms:
        f, cov = a.args
        if cov != K:  # pragma: no cover - the derivation only produces atoms at K
            raise AssertionError(f"unexpected covariance in {a}")
        integrands.append(f)
    return rec, atoms, integrands, fns


def ntk_recursions(activation="generic") -> dict[str, sp.Expr]:
    """The derived layer map ``{name: expression}`` with the activation substituted.

    >>> sorted(ntk_recursions("relu"))[:3]
    ['A', 'B', 'D']
    """
    rec = derive_ntk_layer_map()
    act = get_activation(activation)
    return {k: substitute_activation(v, act) for k, v in rec.exprs.items()}


# --------------------------------------------------------------------------- checks


def require_finite(state: dict, layer: int) -> None:
    """Refuse a layer whose statistics are not finite (never return a silent NaN)."""
    bad = [k for k, v in state.items() if not np.all(np.isfinite(v))]
    if bad:
        raise PerturbError(f"layer {layer}: {', '.join(bad)} not finite (divergent Gaussian integral or overflow "
                           "for these parameters)")


def _per_layer(value, n: int, name: str, *, strict: bool = False) -> list:
    if isinstance(value, (str, bytes)):
        raise PerturbError(f"{name} must be a number or one number per layer, got {value!r}")
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise PerturbError(f"{name} has {len(value)} entries; expected one per layer 1..L+1 ({n})")
        vals = list(value)
    else:
        vals = [value] * n
    for v in vals:
        if isinstance(v, (sp.Basic, mpmath.mpf)):
            continue
        arr = np.asarray(v, dtype=float)
        if not np.all(np.isfinite(arr)):
            raise PerturbError(f"{name} must be finite, got {v!r}")
        if np.any(arr < 0) or (strict and np.any(arr <= 0)):
            raise PerturbError(f"{name} must be {'> 0' if strict else '>= 0'}, got {v!r}")
    return vals


def _check_widths(widths) -> tuple[int, ...]:
    if isinstance(widths, (int, np.integer)) or not isinstance(widths, Sequence) or not len(widths):
        raise PerturbError(f"widths must be a non-empty list of hidden widths n_1..n_L, got {widths!r}")
    out = []
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1:
            raise PerturbError(f"widths must be integers >= 1, got {w!r}")
        out.append(int(w))
    return tuple(out)


def _check_x(x) -> list:
    if isinstance(x, (str, bytes)):
        raise PerturbError(f"x must be a list of numbers, got {x!r}")
    xs = list(x) if isinstance(x, Sequence) or isinstance(x, np.ndarray) else [x]
    if not xs:
        raise PerturbError("x must have at least one component")
    for v in xs:
        if not isinstance(v, sp.Basic) and not math.isfinite(float(v)):
            raise PerturbError(f"x must be finite, got {x!r}")
    return xs


def _check_order(order) -> None:
    if order != 1 or isinstance(order, bool):
        raise NotImplementedOrderError(
            f"ntk_statistics is the order 1 fold (PDLT's H1, A, B, D, F), got order {order!r}; for order 2 use "
            "perturb.engine.ntk_series(..., order=2)")


def _layer_params(n_layers: int, C_W, C_b, lambda_W, lambda_b) -> tuple[list, list, list, list]:
    """C_W, C_b, λ_W, λ_b checked and broadcast to one value per layer 1..L+1 (λ = C by default)."""
    cw = _per_layer(C_W, n_layers, "C_W", strict=True)
    cb = _per_layer(C_b, n_layers, "C_b")
    lw = _per_layer(C_W if lambda_W is None else lambda_W, n_layers, "lambda_W")
    lb = _per_layer(C_b if lambda_b is None else lambda_b, n_layers, "lambda_b")
    return cw, cb, lw, lb


def _setup(widths, x, C_W, C_b, lambda_W, lambda_b, order):
    _check_order(order)
    ws = _check_widths(widths)
    xs = _check_x(x)
    cw, cb, lw, lb = _layer_params(len(ws) + 1, C_W, C_b, lambda_W, lambda_b)
    return ws, xs, cw, cb, lw, lb


# --------------------------------------------------------------------------- numeric fold


def require_ntk_defined(act) -> None:
    """Refuse an activation whose derivative has a Dirac delta (``step``): σ'² has no Gaussian
    expectation, so its NTK (and the NTK statistics built on it) is undefined."""
    if act.derivative().has(sp.DiracDelta):
        raise PerturbError(f"the NTK of activation '{act.name}' is undefined: its derivative has a Dirac delta, "
                           "so <σ'σ'>_K does not exist; choose an activation with an ordinary derivative "
                           "(relu, tanh, erf, gelu, ...)")


def ntk_statistics(activation, widths: Sequence[int], x, *, C_W=1.0, C_b=0.0, lambda_W=None,
                   lambda_b=None, order: int = 1, dps: int | None = None,
                   method: str = "auto") -> NTKStatistics:
    """Order-1/n NTK statistics of a finite network at one input, by folding the derived map.

    Args:
        activation: activation spec (``"relu"``, ``"tanh"``, ``"gelu"``, an expression in z, ...).
        widths: hidden widths n_1..n_L (integers >= 1).
        x: the input vector (n_0 = its length).
        C_W, C_b, lambda_W, lambda_b: scalars or one value per layer 1..L+1; numpy arrays
            broadcast (vectorised sweeps).  λ defaults to C (the NTK parameterisation).
        order: must be 1 (the order implemented).
        dps: evaluate with mpmath at this many digits (values are ``mpmath.mpf``).
        method: atom evaluation for numpy (``"auto"``, ``"closed"``, ``"quad"``).

    >>> st = ntk_statistics("tanh", [50, 50, 50], [1.0], C_W=1.0)
    >>> round(float(st.H), 6), bool(st.var > 0)
    (0.735721, True)
    """
    ws, xs, cw, cb, lw, lb = _setup(widths, x, C_W, C_b, lambda_W, lambda_b, order)
    act = get_activation(activation)
    if act.is_generic:
        raise PerturbError("ntk_statistics needs a concrete activation (relu, tanh, gelu, ...)")
    require_ntk_defined(act)
    rec, atoms, integrands, fns = _compiled(act.name)
    if dps:
        with mpmath.workdps(dps + 10):
            norm2 = mpmath.fsum(mpmath.mpf(v) ** 2 for v in xs) / len(xs)
            num = mpmath.mpf
            cw, cb, lw, lb = ([num(v) for v in seq] for seq in (cw, cb, lw, lb))
    else:
        norm2 = sum(float(v) ** 2 for v in xs) / len(xs)
        num = np.asarray
        cw, cb, lw, lb = ([np.asarray(v, dtype=float) for v in seq] for seq in (cw, cb, lw, lb))
    with mpmath.workdps((dps or 15) + 10):
        K = cb[0] + cw[0] * norm2
        H = lb[0] + lw[0] * norm2
    zero = 0 * K
    state = {"K": K, "H": H, **{s: zero for s in STAT_NAMES}}
    layers = {k: [v] for k, v in state.items()}
    for ell in range(1, len(ws) + 1):       # layer ℓ -> ℓ+1 with width n_ℓ, C's of layer ℓ+1
        r = ws[ell - 1] / ws[ell - 2] if ell > 1 else 1.0
        if dps:
            if mpmath.mpf(state["K"]) <= 0:
                raise PerturbError(f"K^({ell}) = 0: the NTK statistics need a non-zero input signal")
            vals = [expect(f, state["K"], method="mpmath", dps=dps + 5) for f in integrands]
            with mpmath.workdps(dps + 10):
                r_mp = mpmath.mpf(ws[ell - 1]) / ws[ell - 2] if ell > 1 else mpmath.mpf(1)
            args = [state["K"], state["H"], cw[ell], cb[ell], lw[ell], lb[ell], r_mp,
                    *[state[s] for s in STAT_NAMES], *vals]
            state = {k: fns[k].mpmath(*args, dps=dps + 10) for k in _ALL}
        else:
            if np.any(np.asarray(state["K"]) <= 0):
                raise PerturbError(f"K^({ell}) = 0: the NTK statistics need a non-zero input signal")
            vals = [expect(f, state["K"], method=method) for f in integrands]
            args = [state["K"], state["H"], cw[ell], cb[ell], lw[ell], lb[ell], r,
                    *[state[s] for s in STAT_NAMES], *vals]
            state = {k: np.asarray(fns[k](*args), dtype=float) for k in _ALL}
            require_finite(state, ell + 1)
        for k in _ALL:
            layers[k].append(state[k])
    if dps:
        with mpmath.workdps(dps):
            layers = {k: [+v for v in vs] for k, vs in layers.items()}
    else:
        layers = {k: [v[()] if v.ndim == 0 else v for v in vs] for k, vs in layers.items()}
    return NTKStatistics(ws, layers)


# --------------------------------------------------------------------------- exact fold


def closed_atoms(atoms, K, numeric_name: str, first=None) -> dict:
    """``{atom: closed form}`` for every atom (one-input atoms at covariance ``K``).

    ``first(f, K)`` is tried before the registry (e.g. a rule for DiracDelta integrands); a
    missing closed form is an error pointing to the numeric function ``numeric_name``.
    """
    closed = {}
    for a in atoms:
        c = first(a.args[0], K) if first is not None else None
        if c is None:
            c = closed_form(a.args[0], K)
        if c is None:
            raise PerturbError(f"no closed form for {a}; use {numeric_name} (numeric) instead")
        closed[a] = c
    return closed


def ntk_statistics_exact(activation, widths: Sequence, x, *, C_W=1, C_b=0, lambda_W=None,
                         lambda_b=None, order: int = 1) -> NTKStatistics:
    """The same fold in exact SymPy arithmetic (every atom needs a closed form).

    Widths may be symbols (then r = n_ℓ/n_{ℓ−1} stays symbolic).

    >>> st = ntk_statistics_exact("relu", [10, 10, 10, 10], [1], C_W=2, C_b=0, lambda_W=1, lambda_b=0)
    >>> [st.ratio(ell) for ell in (2, 3, 4, 5)]
    [3, 58/9, 10, 68/5]
    """
    _check_order(order)
    if not isinstance(widths, Sequence) or not len(widths):
        raise PerturbError(f"widths must be a non-empty list, got {widths!r}")
    ws = tuple(sp.sympify(w, strict=True) for w in widths)
    xs = [sp.nsimplify(v) for v in _check_x(x)]
    L1 = len(ws) + 1
    conv = lambda seq, name: [sp.nsimplify(v) for v in _per_layer(seq, L1, name)]  # noqa: E731
    cw, cb = conv(C_W, "C_W"), conv(C_b, "C_b")
    lw = cw if lambda_W is None else conv(lambda_W, "lambda_W")
    lb = cb if lambda_b is None else conv(lambda_b, "lambda_b")
    act = get_activation(activation)
    require_ntk_defined(act)
    rec = derive_ntk_layer_map()
    exprs = {k: substitute_activation(rec.exprs[k], act) for k in _ALL}
    atoms = sorted(set().union(*[e.atoms(GaussianExpectation) for e in exprs.values()]),
                   key=sp.default_sort_key)
    closed = closed_atoms(atoms, rec.syms.K, "ntk_statistics")
    exprs = {k: e.xreplace(closed) for k, e in exprs.items()}
    norm2 = sum(v**2 for v in xs) / len(xs)
    state = {"K": cb[0] + cw[0] * norm2, "H": lb[0] + lw[0] * norm2, **{s: sp.S.Zero for s in STAT_NAMES}}
    layers = {k: [v] for k, v in state.items()}
    s = rec.syms
    for ell in range(1, len(ws) + 1):
        r = ws[ell - 1] / ws[ell - 2] if ell > 1 else sp.S.One
        sub = {s.K: state["K"], s.H: state["H"], s.C_W: cw[ell], s.C_b: cb[ell], s.lam_W: lw[ell],
               s.lam_b: lb[ell], s.r: r, **{s.stats[k]: state[k] for k in STAT_NAMES}}
        state = {k: sp.simplify(exprs[k].xreplace(sub)) for k in _ALL}
        for k in _ALL:
            layers[k].append(state[k])
    return NTKStatistics(ws, layers)


# --------------------------------------------------------------------------- ReLU: large L/n


@dataclass(frozen=True)
class ReluNTKPictures:
    """Var Θ/(E Θ)² of a ReLU output in three pictures (C_b = λ_b = 0, any C_W, λ_W).

    Attributes:
        order1: (A + 2B)/(H² n_L), the order-1/n value (linear in L/n).
        exponentiated: exp(order1) − 1, the order-1 exponent resummed (log-normal closure).
        hanin_nica: exp(5 β) − 1 with β = Σ_ℓ 1/n_ℓ, the scaling of [HN] / LH §5 (their
            statement holds up to constants; it is an order-of-magnitude picture).
        beta: Σ_ℓ 1/n_ℓ.
    """

    order1: float
    exponentiated: float
    hanin_nica: float
    beta: float


def relu_ntk_exponential(widths: Sequence[int], x=(1.0,), *, C_W=2.0, lambda_W=None) -> ReluNTKPictures:
    """The order-1 value of Var Θ/(EΘ)² for ReLU and its exponential (large L/n) pictures.

    >>> p = relu_ntk_exponential([16, 16, 16])
    >>> round(p.order1, 6), round(p.exponentiated, 4)
    (0.625, 0.8682)
    """
    st = ntk_statistics("relu", widths, x, C_W=C_W, C_b=0.0, lambda_W=lambda_W, lambda_b=0.0)
    o1 = float(st.var / st.mean**2)
    ws = _check_widths(widths)
    beta = float(sum(1.0 / n for n in ws))
    return ReluNTKPictures(o1, math.expm1(o1), math.expm1(5 * beta), beta)
