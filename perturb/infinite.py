"""Infinite-width kernels: the NNGP and NTK recursions (docs/conventions.md, docs/reference.md §1) and training predictions.

The unit of computation is the **layer map** ``(K^{(ℓ)}, Θ^{(ℓ)}) -> (K^{(ℓ+1)}, Θ^{(ℓ+1)})``:

    K' = C_b + C_W <σ_α σ_β>_K
    Θ' = λ_b + λ_W <σ_α σ_β>_K + C_W <σ'_α σ'_β>_K Θ

and a network is a fold of layer maps over the first-layer kernels
``K^{(1)} = C_b + C_W x·x'/n_0``, ``Θ^{(1)} = λ_b + λ_W x·x'/n_0``.  The output is layer ``L+1``.

Two-point expectations are evaluated, per activation, by the best available fidelity:

* ReLU family (relu, leaky ReLU, abs, linear and their combinations): arc-cosine kernels in a
  fused layer map on upper-triangle row blocks (one ``arccos`` per pair serves both σσ and
  σ'σ'), on a few threads (:mod:`perturb.gaussian.blocks`);
* other closed forms of the registry (erf, sin, cos, ...): the compiled closed form on row
  blocks, entries clipped to ``|c| <= sqrt(ab)``;
* anything else (tanh, sigmoid, softplus, SiLU, user expressions): a tensor Chebyshev
  interpolant of Mehler's series in ``(log K_αα, log K_ββ, ρ)`` whose error is measured
  (:func:`perturb.gaussian.pairs.gram_expectations`); where it cannot be certified to 1e-12
  (kinks, variances beyond ~10) Mehler's series (:func:`perturb.gaussian.pair_gram`) with direct
  quadrature where its tail bound is not small;
* ``dps=D``: every entry at ``D`` digits with mpmath (closed forms evaluated in mpmath, otherwise
  :func:`perturb.gaussian.expect_mpmath`), never touching global precision.

>>> import numpy as np
>>> net = Network("relu", depth=3, C_W=2.0, C_b=0.0)
>>> k = kernels(net, np.array([[1.0, 0.0], [0.6, 0.8]]))
>>> k.nngp.round(6)                        # diagonal: C_W |x|²/n0 = 1, constant in depth
array([[1.      , 0.775312],
       [0.775312, 1.      ]])
>>> float(k.ntk[0, 0])                        # (L+1) K at criticality
4.0
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from dataclasses import dataclass, field, replace

import mpmath
import numpy as np
import sympy as sp

from .activations import SIGMA, Activation, Z, get_activation
from .errors import PerturbError
from .gaussian import E, closed_form, closed_form_of, expect, expect_mpmath, pair_gram, zvars
from .gaussian.blocks import mirror_upper, run_blocks
from .gaussian.closed import decompose
from .gaussian.fused import fused_pair
from .gaussian.pairs import gram_expectations
from .network import Network

__all__ = [
    "Kernels",
    "LayerMap",
    "kernels",
    "propagate",
    "first_layer",
    "layer_maps",
    "SymbolicRecursion",
    "symbolic_recursion",
    "Prediction",
    "gradient_flow",
    "gradient_descent",
    "nngp_posterior",
    "train_predictions",
]


# =============================================================================== results


@dataclass(frozen=True)
class Kernels:
    """Infinite-width kernels of a network on a set of inputs.

    Attributes:
        nngp: ``K^{(L+1)}``, shape (N, N) (an object array of ``mpf`` when ``dps`` is set).
        ntk: ``Θ^{(L+1)}``, shape (N, N); ``None`` when the NTK is undefined (the derivative of
            the activation contains a Dirac delta, e.g. ``step``).
        layers: per-layer ``(K^{(ℓ)}, Θ^{(ℓ)})`` for ℓ = 1..L+1 (a tuple; the ReLU family's
            intermediate layers are mirrored into exact symmetry on first access).
        dps: the number of digits of an mpmath computation, or ``None`` for float64.
        methods: how the two-point expectations were evaluated (e.g. ``"closed: relu family"``).
    """

    nngp: np.ndarray
    ntk: np.ndarray | None
    layers: tuple[tuple[np.ndarray, np.ndarray | None], ...] = field(default=(), repr=False)
    dps: int | None = None
    methods: tuple[str, ...] = ()

    def replace(self, **changes) -> Kernels:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """``{"nngp": [[...]], "ntk": [[...]]}`` (the CLI's JSON)."""
        return {"nngp": self.nngp, "ntk": self.ntk}


# =============================================================================== validation


def _check_inputs(X) -> np.ndarray:
    try:
        arr = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        raise PerturbError("inputs must be a list of equal-length numeric vectors") from None
    if arr.ndim == 1 and arr.size:
        raise PerturbError(f"inputs must be a list of vectors (shape (N, n0)); got a flat list of {arr.size} "
                           "numbers — wrap a single input as [[...]]")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise PerturbError(f"inputs must have shape (N, n0) with N, n0 >= 1; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise PerturbError(f"inputs contain NaN or infinity (first at index {bad})")
    return arr


def _check_psd(M, name: str) -> np.ndarray:
    A = np.asarray(M, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise PerturbError(f"{name} must be a square (N, N) matrix; got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise PerturbError(f"{name} contains NaN or infinity")
    scale = max(float(np.max(np.abs(A))), 1e-300)
    if not np.allclose(A, A.T, rtol=0, atol=1e-12 * scale):
        raise PerturbError(f"{name} is not symmetric")
    lam = np.linalg.eigvalsh((A + A.T) / 2)
    if lam[0] < -1e-10 * scale:
        raise PerturbError(f"{name} is not positive semi-definite (smallest eigenvalue {lam[0]:.3g})")
    return (A + A.T) / 2


# =============================================================================== two-point engines


def _pair(expr: sp.Expr) -> sp.Expr:
    z1, z2 = zvars(2)
    return expr.subs(Z, z1) * expr.subs(Z, z2)


def _relu_pair_terms(rho: np.ndarray, p: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """2π E[σ(u1)σ(u2)]/sqrt(ab) and θ = arccos ρ for σ = α relu(z) − β relu(−z), p = α²+β², q = 2αβ.

    J(ρ) = E relu(u1) relu(u2) ∝ sin θ + (π − θ) ρ; the cross terms relu(u1) relu(−u2) give J(−ρ).
    """
    th = np.arccos(rho)
    s = np.multiply(rho, rho)
    np.subtract(1.0, s, out=s)
    np.maximum(s, 0.0, out=s)
    np.sqrt(s, out=s)
    ss = np.subtract(np.pi, th)
    if q:
        ss *= p
        ss -= q * th
        ss *= rho
        s *= p + q
    else:
        ss *= p * rho
        s *= p
    ss += s
    return ss, th


def _relu_coefficients(expr: sp.Expr) -> tuple[float, float] | None:
    """(α, β) with σ(z) = α relu(z) + β relu(-z), or None."""
    parts = decompose(expr, Z)
    if parts is None:
        return None
    alpha = beta = 0.0
    for coeff, prim in parts:
        if not coeff.is_number:
            return None
        c = float(coeff)
        if prim.kind == "relu":
            if prim.scale == 1:
                alpha += c
            elif prim.scale == -1:
                beta += c
            else:
                return None
        elif prim.kind == "lin":   # z = relu(z) - relu(-z)
            alpha += c
            beta -= c
        else:
            return None
    return alpha, beta


#: relative accuracy asked of the interpolated two-point expectations (per layer)
PAIR_TOL = 1e-12
_FAST = "Chebyshev interpolant of Mehler's series, checked to 1e-12"
_SLOW = "Mehler series + direct 2-D quadrature"


def _has_delta(expr: sp.Expr) -> bool:
    return bool(expr.has(sp.DiracDelta))


class _Engine:
    """Evaluates (<σσ>, <σ'σ'>) on a symmetric Gram matrix for one activation."""

    def __init__(self, act: Activation, need_ntk: bool = True):
        if act.is_generic:
            raise PerturbError("the generic activation sigma(z) has no numeric kernels; "
                               "use symbolic_recursion() or choose a concrete activation")
        self.act = act
        self.s = act.expr
        self.ds = act.derivative()
        self.ntk_defined = not _has_delta(self.ds)
        self.relu = _relu_coefficients(self.s)
        self.cf = self.cf_d = None
        if self.relu is None:
            self.cf = closed_form_of(_pair(self.s), 2)
            if self.ntk_defined:
                self.cf_d = (_ConstPair(float(self.ds)) if not self.ds.free_symbols
                             else closed_form_of(_pair(self.ds), 2))
        self.fused = None                                   # (<σσ>, <σ'σ'>) in one compiled pass
        if self.relu is not None:
            self.method = "closed form (ReLU family: arc-cosine kernels)"
        elif self.cf is not None and (self.cf_d is not None or not self.ntk_defined):
            self.method = "closed form (registry)"
            dd = None if self.cf_d is None else (
                sp.Float(self.cf_d.value) ** 2 if isinstance(self.cf_d, _ConstPair) else self.cf_d.expr)
            self.fused = fused_pair(self.cf.expr, dd)
            self.fused_nngp = fused_pair(self.cf.expr, None)
            # the diagonal (ρ = 1 exactly) by the one-variable closed forms <σ²>_K, <σ'²>_K:
            # the two-point form there can be a rounding of ρ = 1 - ε away (arccos: ~1e-8)
            self.cf1 = closed_form_of(self.s**2, 1)
            self.cf1_d = None if not self.ntk_defined else (
                _ConstPair(float(self.ds)) if not self.ds.free_symbols else closed_form_of(self.ds**2, 1))
        else:
            self.method = _FAST
        self.paths: deque[str] = deque(maxlen=4096)      # numeric paths taken, per layer

    # ------------------------------------------------------------------ float64
    def __call__(self, K: np.ndarray, want_ntk: bool = True):
        a = np.diag(K).copy()
        if np.any(a < 0):
            raise PerturbError("kernel has a negative diagonal entry")
        want_ntk = want_ntk and self.ntk_defined
        if self.relu is not None:
            return self._relu(K, a, want_ntk)
        if self.cf is not None and (self.cf_d is not None or not want_ntk):
            ss = _closed_gram(self.cf, K, a, self.s)
            dd = _closed_gram(self.cf_d, K, a, self.ds) if want_ntk else None
            return ss, dd
        # no closed form: the checked Chebyshev interpolant of Mehler's series for all pairs,
        # else (not certified) Mehler's series with direct 2-D quadrature near |ρ| = 1
        todo = [e for e, cf in ((self.s, self.cf), (self.ds, self.cf_d)) if cf is None and (want_ntk or e is self.s)]
        fast = gram_expectations(todo, K, tol=PAIR_TOL)
        self.paths.append(_FAST if fast is not None else _SLOW)

        def gram(expr, cf):
            if cf is not None:
                return _closed_gram(cf, K, a, expr)
            if fast is not None:
                return fast[0][todo.index(expr)]
            return _mehler_gram(expr, K, a)

        return gram(self.s, self.cf), (gram(self.ds, self.cf_d) if want_ntk else None)

    def _relu(self, K, a, want_ntk):
        al, be = self.relu
        n = np.sqrt(a)
        nrm = np.multiply.outer(n, n)                 # exactly symmetric (commutative products)
        rho = np.divide(K, nrm, out=np.zeros_like(K), where=nrm > 0)   # in place from here on
        np.clip(rho, -1.0, 1.0, out=rho)
        np.fill_diagonal(rho, np.where(a > 0, 1.0, 0.0))
        p, q = al * al + be * be, 2 * al * be
        ss, th = _relu_pair_terms(rho, p, q)
        nrm *= 1 / (2 * np.pi)
        ss *= nrm
        dd = None
        if want_ntk:
            # σ' = α H(z) - β H(-z); E H(u1)H(u2) = (π-θ)/2π, E H(u1)H(-u2) = θ/2π
            dd = th
            dd *= -(p + q) / (2 * np.pi)
            dd += p / 2
            zero = a == 0
            if np.any(zero):
                # u_α = 0 exactly: σ'(0) = (α - β)/2 (Heaviside convention H(0) = 1/2) and
                # E σ'(u_β) = (α - β)/2 as well, so every entry touching α is ((α - β)/2)²
                dd[zero, :] = dd[:, zero] = ((al - be) / 2) ** 2
        return ss, dd


    def relu_layer(self, K, Theta, C_W, C_b, lam_W, lam_b, block: int = 32, threads: int | None = None,
                   mirror: bool = True):
        """One ReLU-family layer map, fused and cache-blocked: (K', Θ') with one arccos per pair.

        Only the upper triangle of ``K`` and ``Θ`` is read.  Rows are processed in blocks of
        ``block``; each block computes the columns ``j >= i0`` straight into the outputs, which
        are mirrored at the end in square tiles, so every transcendental is evaluated about
        N²/2 times and the temporaries stay in cache.  Blocks run on ``threads`` threads (numpy releases the GIL in
        ufuncs; blocks write disjoint parts of the outputs).  With ρ = K_αβ/√(K_αα K_ββ),
        θ = arccos ρ, p = α²+β², q = 2αβ for σ = α relu(z) + β relu(-z):

            <σ'σ'> = p/2 - (p+q) θ/(2π)
            <σσ>   = √(K_αα K_ββ) [(p+q)/(2π) √(1-ρ²) + ρ <σ'σ'>]

        (the arc-cosine kernels of :meth:`_relu`, regrouped; on the diagonal ρ = 1 and
        <σσ> = (p/2) K_αα is set exactly).
        """
        al, be = self.relu
        a = np.diag(K).copy()
        if np.any(a < 0):
            raise PerturbError("kernel has a negative diagonal entry")
        want_ntk = Theta is not None and self.ntk_defined
        N = K.shape[0]
        p, q = al * al + be * be, 2 * al * be
        c = (p + q) / (2 * np.pi)
        zero = a == 0
        any_zero = bool(np.any(zero))
        n = np.sqrt(a)
        inv_n = np.divide(1.0, n, out=np.zeros_like(n), where=n > 0)
        diag_ss = a * (p / 2)
        K2 = np.empty((N, N))
        T2 = np.empty((N, N)) if want_ntk else None
        dd_zero = ((al - be) / 2) ** 2                  # σ'(0) = (α - β)/2, H(0) = 1/2

        def rows(i0):
            i1 = min(N, i0 + block)
            r = np.arange(i1 - i0)
            rho = np.multiply(K[i0:i1, i0:], inv_n[i0:])
            rho *= inv_n[i0:i1, None]
            np.clip(rho, -1.0, 1.0, out=rho)
            rho[r, r] = np.where(zero[i0:i1], 0.0, 1.0)
            dd = np.arccos(rho)
            s = np.subtract(1.0, rho)                   # exact for ρ >= 1/2 (Sterbenz)
            s *= 1.0 + rho                              # 1-ρ² without cancellation near |ρ| = 1
            np.sqrt(s, out=s)
            s *= c                                      # (p+q)/(2π) √(1-ρ²)
            dd *= -c
            dd += p / 2                                 # <σ'σ'>
            if any_zero:
                dd[zero[i0:i1], :] = dd_zero
                dd[:, zero[i0:]] = dd_zero
            rho *= dd
            s += rho
            s *= n[i0:]
            s *= n[i0:i1, None]
            s[r, r] = diag_ss[i0:i1]                    # s = <σσ>
            out = K2[i0:i1, i0:]
            np.multiply(s, C_W, out=out)
            if C_b:
                out += C_b
            if want_ntk:
                out = T2[i0:i1, i0:]
                np.multiply(dd, Theta[i0:i1, i0:], out=out)
                out *= C_W
                s *= lam_W
                out += s
                if lam_b:
                    out += lam_b

        run_blocks(rows, range(0, N, block), threads)
        if mirror:                                      # else: upper triangles only (see _fold)
            mirror_upper(K2, threads)
            if want_ntk:
                mirror_upper(T2, threads)
        return K2, T2

    def closed_layer(self, K, Theta, C_W, C_b, lam_W, lam_b, block: int | None = None,
                     threads: int | None = None, mirror: bool = True, cols: int = 1024):
        """One layer map for an activation with registry closed forms, fused and cache-blocked.

        The same shape as :meth:`relu_layer`: only the upper triangles of ``K`` and ``Θ`` are
        read; each row block evaluates ``S = <σσ>`` and ``D = <σ'σ'>`` together
        (:func:`perturb.gaussian.fused.fused_pair`: shared subexpressions once, factors of
        ``K_αα`` or ``K_ββ`` alone as vectors) on the columns ``j >= i0`` with
        ``|K_αβ| <= √(K_αα K_ββ)`` enforced, and writes

            K' = C_b + C_W S,    Θ' = λ_b + λ_W S + C_W D Θ

        straight into the outputs.  Rows or columns of zero variance get
        ``<σ(0) σ(u_β)> = σ(0) <σ>_{K_ββ}`` (and likewise for σ'), as the unfused path; a block
        with a non-finite ``S`` or ``D`` raises :class:`PerturbError`.  The upper triangle is cut in
        tiles of ``block`` (default 16) rows by 1024 columns, so the temporaries of the compiled
        map stay in cache whatever N.
        """
        a = np.diag(K).copy()
        if np.any(a < 0):
            raise PerturbError("kernel has a negative diagonal entry")
        want_ntk = Theta is not None and self.ntk_defined
        N = K.shape[0]
        if block is None:
            block = 16
        cols = max(block, cols)
        zero = a == 0
        fix = None
        if np.any(zero):                                # σ(0) <σ>_{K_ββ}, σ'(0) <σ'>_{K_ββ}
            fix = []
            for expr in (self.s, self.ds) if want_ntk else (self.s,):
                f0 = float(expr.subs(Z, 0))
                mean = np.asarray(expect(expr, a), dtype=float) if expr.free_symbols else \
                    np.full(N, float(expr))
                fix.append((f0 * mean, f0 * f0))
        diag = None
        if self.cf1 is not None and (self.cf1_d is not None or not want_ntk):
            with np.errstate(all="ignore"):
                s1 = np.broadcast_to(np.asarray(self.cf1(a), dtype=float), a.shape)
                dk = C_b + C_W * s1
                dt = None
                if want_ntk:
                    d1 = (np.full(N, self.cf1_d.value ** 2) if isinstance(self.cf1_d, _ConstPair)
                          else np.broadcast_to(np.asarray(self.cf1_d(a), dtype=float), a.shape))
                    dt = lam_b + lam_W * s1 + C_W * d1 * np.diag(Theta)
            diag = (dk, dt)
        K2 = np.empty((N, N))
        T2 = np.empty((N, N)) if want_ntk else None
        col = a[None, :]
        fused = self.fused if want_ntk else self.fused_nngp
        local = threading.local()
        nbuf = fused.ntemp + 1

        def tile(t):                                    # rows i0:i1, columns j0:j1 (j0 >= i0)
            i0, j0 = t
            i1, j1 = min(N, i0 + block), min(N, j0 + cols)
            m, w = i1 - i0, j1 - j0
            ws = getattr(local, "ws", None)
            if ws is None:                              # per-thread workspace, reused by every tile
                ws = local.ws = np.empty((nbuf + 1, block * cols))
            work = [ws[k, :m * w].reshape(m, w) for k in range(nbuf + 1)]
            c = work.pop()
            np.copyto(c, K[i0:i1, j0:j1])
            ok, ot = K2[i0:i1, j0:j1], (T2[i0:i1, j0:j1] if want_ntk else None)
            fused.layer(a[i0:i1, None], col[:, j0:j1], c, Theta[i0:i1, j0:j1] if want_ntk else None,
                        ok, ot, C_W, C_b, lam_W, lam_b, work)
            if diag is not None and j0 == i0:
                r = np.arange(m)
                ok[r, r] = diag[0][i0:i1]
                if want_ntk:
                    ot[r, r] = diag[1][i0:i1]
            if fix is not None:                         # rows / columns of zero variance
                zr, zc = zero[i0:i1], zero[j0:j1]
                hit = zr[:, None] | zc[None, :]
                if hit.any():
                    parts = []
                    for fm, f00 in fix:                 # σ(0) <σ>_{K_ββ} along a zero row, ...
                        P = np.where(zr[:, None], fm[None, j0:j1], fm[i0:i1, None])
                        P[np.ix_(zr, zc)] = f00
                        parts.append(P[hit])
                    ok[hit] = C_b + C_W * parts[0]
                    if want_ntk:
                        ot[hit] = lam_b + lam_W * parts[0] + C_W * parts[1] * Theta[i0:i1, j0:j1][hit]
            for expr, M in ((self.s, ok), (self.ds, ot)):
                if M is not None and not np.isfinite(np.sum(M)) and not np.all(np.isfinite(M)):
                    raise PerturbError(f"the two-point expectation of {expr} is not finite at this kernel")

        tiles = [(i0, j0) for i0 in range(0, N, block) for j0 in range(i0, N, cols)]
        run_blocks(tile, tiles, threads)
        if mirror:                                      # else: upper triangles only (see _fold)
            mirror_upper(K2, threads)
            if want_ntk:
                mirror_upper(T2, threads)
        return K2, T2


@dataclass(frozen=True)
class _ConstPair:
    value: float

    def __call__(self, a, b, c):
        return np.full(np.broadcast(a, b, c).shape, self.value * self.value)

    def mpmath(self, a, b, c, dps=30):
        with mpmath.workdps(dps):
            return mpmath.mpf(self.value) ** 2


def _closed_gram(cf, K, a, expr, block: int = 64):
    """A closed form on the upper triangle in row blocks (the variances broadcast, no index
    arrays), mirrored; zero-variance rows handled exactly."""
    N = K.shape[0]
    out = np.empty((N, N))
    n = np.sqrt(a)

    def rows(i0):
        i1 = min(N, i0 + block)
        lim = np.multiply.outer(n[i0:i1], n[i0:])
        c = np.clip(K[i0:i1, i0:], -lim, lim)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[i0:i1, i0:] = cf(a[i0:i1, None], a[None, i0:], c)

    run_blocks(rows, range(0, N, block))
    mirror_upper(out)
    zero = a == 0
    if np.any(zero):
        _fix_zero_variance(out, expr, a, zero)
    if not np.all(np.isfinite(out)):
        raise PerturbError(f"the two-point expectation of {expr} is not finite at this kernel")
    return out


def _fix_zero_variance(out, expr, a, zero):
    """u_α = 0 exactly: <σ(0) σ(u_β)> = σ(0) <σ>_{K_ββ}."""
    f0 = float(expr.subs(Z, 0))
    mean = np.asarray(expect(expr, a), dtype=float)
    out[zero, :] = f0 * mean[None, :]
    out[:, zero] = f0 * mean[:, None]
    out[np.ix_(zero, zero)] = f0 * f0


def _mehler_gram(expr, K, a):
    ss = pair_gram(expr, expr, a, a, K)
    ss = (ss + ss.T) / 2
    diag = np.asarray(expect(expr**2, a), dtype=float)
    np.fill_diagonal(ss, diag)
    return ss


@functools.lru_cache(maxsize=64)
def _engine(act: Activation) -> _Engine:
    return _Engine(act)


# =============================================================================== mpmath engine


def _mp_two_point(act: Activation, K, dps: int, want_ntk: bool):
    """(<σσ>, <σ'σ'>) as N×N object arrays of mpf at ``dps`` digits."""
    N = K.rows
    s, ds = act.expr, act.derivative()
    cf = closed_form_of(_pair(s), 2)
    cfd = None
    if want_ntk:
        cfd = _ConstPair(float(ds)) if not ds.free_symbols else closed_form_of(_pair(ds), 2)
    out_s = np.empty((N, N), dtype=object)
    out_d = np.empty((N, N), dtype=object) if want_ntk else None
    z1, z2 = zvars(2)
    for i in range(N):
        for j in range(i, N):
            a, b, c = K[i, i], K[j, j], K[i, j]
            lim = mpmath.sqrt(a * b)
            c = max(min(c, lim), -lim)
            vals = []
            for expr, f in ((s, cf), (ds, cfd)) if want_ntk else ((s, cf),):
                if a == 0 or b == 0:
                    v = _mp_zero_var(expr, a, b, dps)
                elif i == j:
                    cf1 = closed_form_of(expr**2, 1) if expr.free_symbols else None
                    if not expr.free_symbols:
                        v = mpmath.mpf(sp.N(expr**2, dps + 5))
                    elif cf1 is not None:
                        v = cf1.mpmath(a, dps=dps + 5)
                    else:
                        v = expect_mpmath(expr**2, a, dps=dps)
                elif f is not None:
                    v = f.mpmath(a, b, c, dps=dps + 5)
                else:
                    v = expect_mpmath(_pair(expr), [[a, c], [c, b]], dps=dps)
                vals.append(mpmath.mpf(v))
            out_s[i, j] = out_s[j, i] = vals[0]
            if want_ntk:
                out_d[i, j] = out_d[j, i] = vals[1]
    return out_s, out_d


def _mp_zero_var(expr, a, b, dps):
    f0 = mpmath.mpf(sp.N(expr.subs(Z, 0), dps + 5))
    if a == 0 and b == 0:
        return f0 * f0
    return f0 * expect_mpmath(expr, a if a != 0 else b, dps=dps)


# =============================================================================== layer maps


@dataclass(frozen=True)
class LayerMap:
    """The map ``(K^{(ℓ)}, Θ^{(ℓ)}) -> (K^{(ℓ+1)}, Θ^{(ℓ+1)})`` of one layer.

    >>> m = LayerMap(get_activation("relu"), C_W=2.0, C_b=0.0, lambda_W=2.0, lambda_b=0.0)
    >>> K, T = m(np.array([[1.0]]), np.array([[1.0]]))
    >>> float(K[0, 0]), float(T[0, 0])
    (1.0, 2.0)
    """

    activation: Activation
    C_W: float
    C_b: float
    lambda_W: float
    lambda_b: float

    def __call__(self, K, Theta=None, *, dps: int | None = None, upper_only: bool = False):
        """(K', Θ') from (K, Θ); ``upper_only=True`` lets the ReLU family fill only the upper
        triangles (all this map reads of its inputs), for folds that mirror once at the end."""
        if dps:
            return self._mp(K, Theta, dps)
        eng = _engine(self.activation)
        if eng.relu is not None:
            return eng.relu_layer(K, Theta, self.C_W, self.C_b, self.lambda_W, self.lambda_b,
                                  mirror=not upper_only)
        if eng.fused is not None:
            return eng.closed_layer(K, Theta, self.C_W, self.C_b, self.lambda_W, self.lambda_b,
                                    mirror=not upper_only)
        ss, dd = eng(K, want_ntk=Theta is not None)       # fresh arrays: finished in place
        T2 = None
        if Theta is not None and dd is not None:
            T2 = np.multiply(dd, self.C_W, out=dd)
            T2 *= Theta
            for i0 in range(0, T2.shape[0], 256):      # no N×N temporary
                T2[i0:i0 + 256] += self.lambda_W * ss[i0:i0 + 256]
            T2 += self.lambda_b
        K2 = np.multiply(ss, self.C_W, out=ss)
        K2 += self.C_b
        return K2, T2

    def _mp(self, K, Theta, dps):
        want = Theta is not None and not _has_delta(self.activation.derivative())
        Km = mpmath.matrix(K.tolist()) if isinstance(K, np.ndarray) else K
        ss, dd = _mp_two_point(self.activation, Km, dps, want)
        N = ss.shape[0]
        cw, cb, lw, lb = (mpmath.mpf(v) for v in (self.C_W, self.C_b, self.lambda_W, self.lambda_b))
        K2 = np.empty((N, N), dtype=object)
        T2 = np.empty((N, N), dtype=object) if want else None
        for i in range(N):
            for j in range(N):
                K2[i, j] = cb + cw * ss[i, j]
                if want:
                    T2[i, j] = lb + lw * ss[i, j] + cw * dd[i, j] * Theta[i, j]
        return K2, T2


def layer_maps(net: Network) -> tuple[LayerMap, ...]:
    """The L layer maps ℓ -> ℓ+1 (ℓ = 1..L) of a network."""
    return tuple(
        LayerMap(net.activation, net.C_W[l], net.C_b[l], net.lambda_W[l], net.lambda_b[l])
        for l in range(1, net.depth + 1)
    )


def first_layer(net: Network, X, *, dps: int | None = None):
    """``K^{(1)} = C_b + C_W X Xᵀ/n_0`` and ``Θ^{(1)} = λ_b + λ_W X Xᵀ/n_0``."""
    X = _check_inputs(X)
    n0 = X.shape[1]
    if dps:
        with mpmath.workdps(dps + 10):
            Xm = [[mpmath.mpf(float(v)) for v in row] for row in X]
            N = len(Xm)
            G = np.empty((N, N), dtype=object)
            for i in range(N):
                for j in range(i, N):
                    G[i, j] = G[j, i] = mpmath.fsum(x * y for x, y in zip(Xm[i], Xm[j])) / n0
            cw, cb, lw, lb = (mpmath.mpf(v) for v in (net.C_W[0], net.C_b[0], net.lambda_W[0], net.lambda_b[0]))
            K = np.vectorize(lambda g: cb + cw * g, otypes=[object])(G)
            T = np.vectorize(lambda g: lb + lw * g, otypes=[object])(G)
        return K, T
    N = X.shape[0]
    K, T = np.empty((N, N)), np.empty((N, N))
    cw, cb, lw, lb = net.C_W[0], net.C_b[0], net.lambda_W[0], net.lambda_b[0]

    def rows(i0, block=128):                            # upper triangle, row blocks
        i1 = min(N, i0 + block)
        g = X[i0:i1] @ X[i0:].T
        g /= n0
        np.multiply(g, cw, out=K[i0:i1, i0:])
        K[i0:i1, i0:] += cb
        np.multiply(g, lw, out=T[i0:i1, i0:])
        T[i0:i1, i0:] += lb

    run_blocks(rows, range(0, N, 128))
    mirror_upper(K)                                     # exactly symmetric
    mirror_upper(T)
    return K, T


def propagate(net: Network, K1, Theta1=None, *, dps: int | None = None) -> Kernels:
    """Fold the layer maps of ``net`` over given first-layer kernels (validated: symmetric PSD).

    >>> net = Network("erf", depth=2, C_W=1.5, C_b=0.1)
    >>> propagate(net, np.eye(2)).nngp.shape
    (2, 2)
    """
    K = _check_psd(K1, "K1")
    T = _check_psd(Theta1, "Theta1") if Theta1 is not None else K.copy()
    if T.shape != K.shape:
        raise PerturbError(f"Theta1 has shape {T.shape}, K1 has {K.shape}")
    if dps:
        with mpmath.workdps(dps + 10):
            K = np.vectorize(mpmath.mpf, otypes=[object])(K)
            T = np.vectorize(mpmath.mpf, otypes=[object])(T)
    return _fold(net, K, T, dps)


def _fold(net: Network, K, T, dps) -> Kernels:
    layers = [(K, T)]
    eng = None if dps else _engine(net.activation)
    method = eng.method if eng else f"mpmath at {dps} digits"
    if eng:
        eng.paths.clear()
    if eng and not eng.ntk_defined:
        T = None
    if dps and _has_delta(net.activation.derivative()):
        T = None
    # the ReLU family's intermediate layers are computed upper-triangle only and mirrored when
    # first looked at (mirroring 2L matrices nobody reads cost a third of the ReLU fold)
    lazy = bool(eng and (eng.relu is not None or eng.fused is not None))
    for m in layer_maps(net):
        if dps:
            with mpmath.workdps(dps + 10):
                K, T = m(K, T, dps=dps + 10)
        else:
            K, T = m(K, T, upper_only=lazy)
        layers.append((K, T))
    if lazy:
        for M in (K, T):
            if M is not None:
                mirror_upper(M)
    if dps:
        with mpmath.workdps(dps):
            rnd = np.vectorize(lambda v: +v, otypes=[object])
            K = rnd(K)
            T = rnd(T) if T is not None else None
    methods = tuple(dict.fromkeys(eng.paths)) if eng and eng.paths else (method,)
    pending = range(1, len(layers) - 1) if lazy else ()
    return Kernels(nngp=K, ntk=T, layers=_Layers(layers, pending), dps=dps, methods=methods)


class _Layers(tuple):
    """The per-layer ``(K, Θ)`` of a fold; layers computed upper-triangle only are mirrored on
    first access (indexing, slicing, iteration), so they always look exactly symmetric.  Pickles
    and copies as a plain tuple."""

    def __new__(cls, layers, pending=()):
        obj = super().__new__(cls, layers)
        obj._pending = set(pending)
        return obj

    def _ready(self, i: int) -> None:
        if i in self._pending:
            for M in tuple.__getitem__(self, i):
                if M is not None:
                    mirror_upper(M)
            self._pending.discard(i)

    def _all_ready(self) -> tuple:
        for i in list(self._pending):
            self._ready(i)
        return tuple(tuple.__iter__(self))

    def __getitem__(self, i):
        for j in range(len(self))[i] if isinstance(i, slice) else (range(len(self))[i],):
            self._ready(j)
        return tuple.__getitem__(self, i)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __reversed__(self):
        for i in reversed(range(len(self))):
            yield self[i]

    def __add__(self, other):
        return self._all_ready() + tuple(other)

    def __radd__(self, other):
        return tuple(other) + self._all_ready()

    def __mul__(self, n):
        return self._all_ready() * n

    __rmul__ = __mul__

    def __contains__(self, x):
        return x in self._all_ready()

    def __eq__(self, other):
        return self._all_ready() == other

    def __ne__(self, other):
        return self._all_ready() != other

    __hash__ = tuple.__hash__

    def count(self, x):
        return self._all_ready().count(x)

    def index(self, *args):
        return self._all_ready().index(*args)

    def __reduce__(self):
        return (tuple, (self._all_ready(),))


def kernels(net: Network, X, *, dps: int | None = None) -> Kernels:
    """NNGP and NTK Gram matrices of the output layer ``L+1`` on inputs ``X`` (shape (N, n0)).

    Args:
        net: the network (its widths are ignored: this is the infinite-width limit).
        X: inputs, shape (N, n0), finite.
        dps: compute every entry with mpmath at ``dps`` significant digits (object arrays of
            ``mpf``); ``None`` for float64.

    >>> import numpy as np
    >>> k = kernels(Network("tanh", depth=2), np.array([[1.0, 2.0], [0.5, -1.0]]))
    >>> bool(np.allclose(k.nngp, k.nngp.T)), k.ntk.shape
    (True, (2, 2))
    """
    if not isinstance(net, Network):
        raise PerturbError(f"kernels() needs a Network, got {type(net).__name__}")
    if dps is not None and (int(dps) != dps or dps < 1):
        raise PerturbError(f"dps must be a positive integer, got {dps!r}")
    K, T = first_layer(net, X, dps=dps)
    return _fold(net, K, T, dps)


# =============================================================================== symbolic recursion

_KAA, _KBB, _KAB, _TAB, _TAA = sp.symbols("K_aa K_bb K_ab Theta_ab Theta_aa", real=True)
_CW, _CB, _LW, _LB = sp.symbols("C_W C_b lambda_W lambda_b", nonnegative=True)
_LATEX_NAMES = {
    _KAA: r"K_{\alpha\alpha}", _KBB: r"K_{\beta\beta}", _KAB: r"K_{\alpha\beta}",
    _TAB: r"\Theta_{\alpha\beta}", _TAA: r"\Theta_{\alpha\alpha}",
    _CW: "C_W", _CB: "C_b", _LW: r"\lambda_W", _LB: r"\lambda_b",
}


@dataclass(frozen=True)
class SymbolicRecursion:
    """The layer map as SymPy expressions (off-diagonal and diagonal entries).

    ``nngp``/``ntk`` give ``K'_{αβ}``, ``Θ'_{αβ}`` in terms of ``K_aa, K_bb, K_ab, Theta_ab``;
    ``nngp_diag``/``ntk_diag`` give ``K'_{αα}``, ``Θ'_{αα}`` in terms of ``K_aa, Theta_aa``.
    Atoms ``E(f, K)`` remain where no closed form is known.
    """

    activation: str
    nngp: sp.Expr
    ntk: sp.Expr
    nngp_diag: sp.Expr
    ntk_diag: sp.Expr
    symbols: dict

    def latex(self) -> str:
        """The recursion as a LaTeX ``align`` block (with the first layer)."""
        p = functools.partial(sp.latex, symbol_names=_LATEX_NAMES)
        lines = [
            r"K^{(1)}_{\alpha\beta} &= C_b + \frac{C_W}{n_0}\, x_\alpha \cdot x_\beta, \qquad "
            r"\Theta^{(1)}_{\alpha\beta} = \lambda_b + \frac{\lambda_W}{n_0}\, x_\alpha \cdot x_\beta",
            rf"K^{{(\ell+1)}}_{{\alpha\beta}} &= {p(self.nngp)}",
            rf"\Theta^{{(\ell+1)}}_{{\alpha\beta}} &= {p(self.ntk)}",
            rf"K^{{(\ell+1)}}_{{\alpha\alpha}} &= {p(self.nngp_diag)}",
            rf"\Theta^{{(\ell+1)}}_{{\alpha\alpha}} &= {p(self.ntk_diag)}",
        ]
        head = f"% NNGP/NTK recursion, activation: {self.activation}; kernels at layer \\ell on the right\n"
        return head + "\\begin{align}\n" + " \\\\\n".join(lines) + "\n\\end{align}\n"


def symbolic_recursion(activation="generic", *, closed: bool = True) -> SymbolicRecursion:
    """The NNGP/NTK layer map as SymPy expressions in the kernel entries, C_W, C_b, λ_W, λ_b.

    Args:
        activation: any activation spec (``"generic"`` keeps σ undefined).
        closed: substitute closed forms where the registry has them.

    >>> r = symbolic_recursion("relu")
    >>> r.nngp_diag
    C_W*K_aa/2 + C_b
    >>> print(symbolic_recursion("generic").nngp_diag)
    C_W*E(sigma(z)**2, K_aa) + C_b
    """
    act = get_activation(activation)
    s, ds = act.expr, act.derivative()
    Kmat = sp.ImmutableMatrix([[_KAA, _KAB], [_KAB, _KBB]])

    def two(expr):
        f = _pair(expr)
        if closed and not act.is_generic:
            cf = closed_form(f, Kmat)
            if cf is not None:
                return cf
        return E(f, Kmat)

    def one(expr):
        f = expr**2
        if closed and not act.is_generic:
            cf = closed_form(f, _KAA)
            if cf is not None:
                return sp.simplify(cf)
        return E(f, _KAA)

    ss, dd = two(s), two(ds)
    s1, d1 = one(s), one(ds)
    return SymbolicRecursion(
        activation=act.name,
        nngp=_CB + _CW * ss,
        ntk=_LB + _LW * ss + _CW * dd * _TAB,
        nngp_diag=_CB + _CW * s1,
        ntk_diag=_LB + _LW * s1 + _CW * d1 * _TAA,
        symbols=dict(K_aa=_KAA, K_bb=_KBB, K_ab=_KAB, Theta_ab=_TAB, Theta_aa=_TAA,
                     C_W=_CW, C_b=_CB, lambda_W=_LW, lambda_b=_LB, sigma=SIGMA),
    )


# =============================================================================== training


@dataclass(frozen=True)
class Prediction:
    """Mean and covariance of the network outputs on test inputs (infinite width).

    Attributes:
        mean: shape (M,) or (M, k) for k output targets.
        cov: shape (M, M) (the same for every output unit).
        t: training time (``inf`` for the converged / posterior result).
        kind: ``"gradient flow"``, ``"gradient descent"`` or ``"nngp posterior"``.
    """

    mean: np.ndarray
    cov: np.ndarray
    t: float
    kind: str

    def as_dict(self) -> dict:
        t = self.t if np.isfinite(self.t) else "inf"      # JSON has no infinity
        return {"mean": self.mean, "cov": self.cov, "t": t, "kind": self.kind}


def _check_train(Theta, K, Y, Theta_tX, K_tX, K_tt):
    Theta = _check_psd(Theta, "Theta(X, X)")
    K = _check_psd(K, "K(X, X)")
    N = Theta.shape[0]
    Y = np.asarray(Y, dtype=float)
    if Y.shape[0] != N or Y.ndim > 2 or not np.all(np.isfinite(Y)):
        raise PerturbError(f"targets must be finite with shape ({N},) or ({N}, k); got {Y.shape}")
    Theta_tX, K_tX = np.atleast_2d(np.asarray(Theta_tX, float)), np.atleast_2d(np.asarray(K_tX, float))
    K_tt = np.atleast_2d(np.asarray(K_tt, float))
    M = K_tt.shape[0]
    for nm, A, shp in (("Theta(x, X)", Theta_tX, (M, N)), ("K(x, X)", K_tX, (M, N)), ("K(x, x)", K_tt, (M, M))):
        if A.shape != shp or not np.all(np.isfinite(A)):
            raise PerturbError(f"{nm} must be finite with shape {shp}; got {A.shape}")
    return Theta, K, Y, Theta_tX, K_tX, K_tt


def _spectral_predict(gfun, Theta, K, Y, Theta_tX, K_tX, K_tt, t, kind):
    lam, V = np.linalg.eigh(Theta)
    lam = np.maximum(lam, 0.0)
    gvals = gfun(lam)                       # Θ⁻¹(I - U_t) in the eigenbasis, finite at λ = 0
    Mmat = (V * gvals) @ V.T
    A = Theta_tX @ Mmat                     # Θ(x,X) Θ⁻¹ (I - U_t)
    mean = A @ Y
    cross = A @ K_tX.T
    cov = K_tt + A @ K @ A.T - cross - cross.T
    return Prediction(mean=mean, cov=(cov + cov.T) / 2, t=float(t), kind=kind)


def gradient_flow(Theta, K, Y, Theta_tX, K_tX, K_tt, t: float, *, eta: float = 1.0) -> Prediction:
    """Mean and covariance at time ``t`` of gradient flow on ½Σ(f − y)² (docs/reference.md §1, [LEE]).

    ``Θ⁻¹(I − e^{−ηΘt})`` is applied in Θ's eigenbasis (``(1 − e^{−ηλt})/λ``, equal to ``ηt``
    at λ = 0), so a singular Θ is fine.  ``t = inf`` gives the converged predictor.

    >>> Th = np.array([[2.0, 0.5], [0.5, 1.0]])
    >>> p = gradient_flow(Th, Th, [1.0, -1.0], Th, Th, Th, t=np.inf)
    >>> p.mean.round(12)                     # interpolates the training targets
    array([ 1., -1.])
    """
    if not (t >= 0) or eta <= 0:
        raise PerturbError(f"need t >= 0 and eta > 0; got t = {t}, eta = {eta}")
    args = _check_train(Theta, K, Y, Theta_tX, K_tX, K_tt)

    def g(lam):
        x = eta * lam * t if np.isfinite(t) else np.where(lam > 0, np.inf, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(lam > 1e-300, -np.expm1(-x) / np.where(lam > 1e-300, lam, 1.0),
                           eta * t if np.isfinite(t) else 0.0)
        return out

    return _spectral_predict(g, *args, t, "gradient flow")


def gradient_descent(Theta, K, Y, Theta_tX, K_tX, K_tt, steps: int, *, eta: float) -> Prediction:
    """Mean and covariance after ``steps`` steps of full-batch GD: ``e^{−ηΘt} -> (I − ηΘ)^t``.

    Raises PerturbError unless ``η < 2/λ_max(Θ)`` (otherwise the linearised dynamics diverge).

    >>> Th = np.array([[2.0, 0.5], [0.5, 1.0]])
    >>> gradient_descent(Th, Th, [1.0, -1.0], Th, Th, Th, steps=2000, eta=0.5).mean.round(9)
    array([ 1., -1.])
    """
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise PerturbError(f"steps must be a non-negative integer, got {steps!r}")
    args = _check_train(Theta, K, Y, Theta_tX, K_tX, K_tt)
    lam_max = float(np.linalg.eigvalsh(args[0])[-1])
    if not (0 < eta < 2 / lam_max):
        raise PerturbError(f"learning rate eta = {eta:g} is outside the stable range 0 < eta < "
                           f"2/lambda_max(Theta) = {2 / lam_max:.6g}")

    def g(lam):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(lam > 1e-300, (1 - (1 - eta * lam) ** int(steps)) / np.where(lam > 1e-300, lam, 1.0),
                            eta * int(steps))

    return _spectral_predict(g, *args, float(steps), "gradient descent")


def nngp_posterior(K, Y, K_tX, K_tt, *, noise: float = 0.0) -> Prediction:
    """The exact Bayesian (NNGP) posterior: ``K(x,X)(K + noise I)⁻¹Y`` and its covariance.

    >>> K = np.array([[1.0, 0.3], [0.3, 1.0]])
    >>> nngp_posterior(K, [1.0, 0.0], K, K).cov.round(12)       # no variance left at the data
    array([[0., 0.],
           [0., 0.]])
    """
    if noise < 0:
        raise PerturbError(f"noise variance must be >= 0, got {noise}")
    K, _, Y, K_tX, _, K_tt = _check_train(K, K, Y, K_tX, K_tX, K_tt)
    lam, V = np.linalg.eigh(K + noise * np.eye(K.shape[0]))
    tol = 1e-12 * max(lam[-1], 1e-300)
    inv = np.where(lam > tol, 1 / np.where(lam > tol, lam, 1.0), 0.0)   # pseudo-inverse
    A = K_tX @ ((V * inv) @ V.T)
    mean = A @ Y
    cov = K_tt - A @ K_tX.T
    return Prediction(mean=mean, cov=(cov + cov.T) / 2, t=float("inf"), kind="nngp posterior")


def train_predictions(net: Network, X_train, Y_train, X_test, *, t: float = float("inf"),
                      eta: float = 1.0, steps: int | None = None) -> Prediction:
    """Infinite-width predictions of ``net`` trained on (X_train, Y_train), at the test inputs.

    Gradient flow to time ``t`` (default: converged), or ``steps`` steps of GD at rate ``eta``.

    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]]); Xt = np.array([[0.6, 0.8]])
    >>> p = train_predictions(Network("relu", depth=2, C_W=2.0), X, [1.0, -1.0], Xt)
    >>> p.mean.shape, p.cov.shape
    ((1,), (1, 1))
    """
    Xtr, Xte = _check_inputs(X_train), _check_inputs(X_test)
    if Xtr.shape[1] != Xte.shape[1]:
        raise PerturbError(f"train inputs have dimension {Xtr.shape[1]}, test inputs {Xte.shape[1]}")
    k = kernels(net, np.vstack([Xtr, Xte]))
    if k.ntk is None:
        raise PerturbError(f"the NTK of activation '{net.activation.name}' is undefined (σ' has a Dirac delta)")
    N = Xtr.shape[0]
    K, T = k.nngp, k.ntk
    parts = (T[:N, :N], K[:N, :N], Y_train, T[N:, :N], K[N:, :N], K[N:, N:])
    if steps is not None:
        return gradient_descent(*parts, steps, eta=eta)
    return gradient_flow(*parts, t, eta=eta)
