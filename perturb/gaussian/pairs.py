"""Two-point Gaussian expectations over whole Gram matrices, by a checked interpolant.

For a smooth function g and a Gram matrix K, :func:`gram_expectations` returns
``F_αβ = E[g(u_α) g(u_β)]``, ``(u_α, u_β) ~ N(0, [[K_αα, K_αβ], [K_αβ, K_ββ]])``, for every
pair and for several g at once (the NNGP/NTK layer map needs σ and σ').

Write ``a = K_αα``, ``b = K_ββ``, ``ρ = K_αβ/√(ab)``.  ``F(a, b, ρ)`` is smooth in all three
variables, so over the ranges present in K it is represented by one tensor Chebyshev series in
``(log a, log b, ρ)``::

    F ≈ Σ_{P,Q,m} C_{PQm} T_P(s(a)) T_Q(s(b)) T_m(t(ρ))

with ``s``, ``t`` the affine maps of ``[log a_min, log a_max]`` and ``[ρ_min, ρ_max]`` (the
off-diagonal correlations actually present) onto ``[-1, 1]``.  When all inputs have one norm the
``a``-degree is 0 and the series is one polynomial in ρ.

The values on the Chebyshev grid come from **Mehler's formula**
``F = Σ_k c_k(a) c_k(b) ρ^k`` with the Hermite coefficients ``c_k(a) = E[g(√a x) h_k(x)]``
(``h_k = He_k/√k!``) computed to order 1024 (2048 when needed: larger variances) by composite
Gauss–Legendre quadrature (:func:`~perturb.gaussian.quadrature.hermite_table`: the Hermite
functions and g's poles are resolved), so the series is summed far enough to converge
uniformly on ``|ρ| <= 1``.

Every approximation is measured, not assumed, and any failure returns ``None`` (the caller
then integrates directly):

1. truncation of Mehler's series: by Cauchy–Schwarz its error is at most
   ``√(τ(a) τ(b))`` with ``τ(a) = E g(√a x)² − Σ_k c_k(a)²``, measured against a 1-D quadrature
   of ``E g²`` (Parseval) at every grid variance;
2. the Chebyshev degrees: the trailing coefficients in each direction must be negligible
   (degrees are doubled until they are);
3. end to end: the interpolant against Mehler's sums at the actual ``(a_α, a_β, ρ_αβ)`` of a
   sample of entries (the most correlated pairs and the extreme variances among them).

The largest error measured in 3. is reported.  Diagonal entries are the 1-D expectations
``E g(u_α)²`` and zero-variance rows are ``g(0) E g(u_β)``, both exact.

>>> import numpy as np, sympy as sp
>>> from perturb.activations import Z
>>> X = np.random.default_rng(0).standard_normal((50, 3))
>>> K = X @ X.T / 3
>>> (F,), err = gram_expectations([sp.tanh(Z)], K)
>>> bool(err < 1e-11), bool(np.array_equal(F, F.T))
(True, True)
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from ..activations import Z
from .blocks import mirror_upper, run_blocks, single_threaded_blas
from .interp import expect_interpolated
from .quadrature import (
    MAX_HERMITE,
    _compiled,
    expect_numeric,
    kinks_in,
    table_coefficients,
)

__all__ = ["gram_expectations", "MAX_ORDER"]

#: Hermite orders tried for Mehler's series (the second table, for larger variances, is built
#: only when the first does not converge: 3.3k nodes × 2049 orders, 55 MB)
ORDERS = (MAX_HERMITE, 2 * MAX_HERMITE)
MAX_ORDER = ORDERS[-1]


def _hermite_coefficients(fn, variances, order: int, table: int = MAX_HERMITE):
    """c_k(a) for k < order from the Hermite table of order ``table``, shape (len(a), order);
    None if g overflows."""
    c = table_coefficients(fn, variances, order, table)
    return c if np.all(np.isfinite(c)) else None


def _cheb_nodes(n: int) -> np.ndarray:
    """n Chebyshev points of the first kind on [-1, 1], descending."""
    return np.cos(np.pi * (np.arange(n) + 0.5) / n)


def _cheb_matrix(n: int) -> np.ndarray:
    """V with coefficients = V @ values at the n first-kind points (discrete orthogonality)."""
    k = np.arange(n)
    th = np.pi * (k + 0.5) / n
    V = 2.0 / n * np.cos(np.outer(k, th))
    V[0] /= 2
    return V


def _cheb_basis(x: np.ndarray, n: int) -> np.ndarray:
    """T_0..T_{n-1} at x, shape x.shape + (n,)."""
    T = np.empty(x.shape + (n,))
    T[..., 0] = 1.0
    if n > 1:
        T[..., 1] = x
    for m in range(2, n):
        T[..., m] = 2 * x * T[..., m - 1] - T[..., m - 2]
    return T


class _Series:
    """The tensor Chebyshev series of F for several g, with the maps a -> s, ρ -> t."""

    def __init__(self, coeffs, la, lb, ra, rb):
        self.C = coeffs            # (G, P, P, M)
        self.la, self.lb, self.ra, self.rb = la, lb, ra, rb

    def s(self, a):
        if self.lb == self.la:
            return np.zeros_like(a)
        return np.clip((2 * np.log(a) - (self.la + self.lb)) / (self.lb - self.la), -1.0, 1.0)

    def t(self, rho):
        return np.clip((2 * rho - (self.ra + self.rb)) / (self.rb - self.ra), -1.0, 1.0)

    def __call__(self, a, b, rho):
        """F at scattered points (1-D arrays), shape (G, n)."""
        P, M = self.C.shape[1], self.C.shape[3]
        Ta, Tb, Tr = _cheb_basis(self.s(a), P), _cheb_basis(self.s(b), P), _cheb_basis(self.t(rho), M)
        return np.einsum("gpqm,np,nq,nm->gn", self.C, Ta, Tb, Tr)


def _grid_values(Cs, rho_nodes):
    """Mehler sums Σ_k c_k(A_p) c_k(A_q) ρ_n^k on the grid: (G, P, P, R)."""
    out = []
    for C in Cs:
        P, K = C.shape
        powers = rho_nodes[:, None] ** np.arange(K)                       # (R, K)
        W = (C[:, None, :] * powers[None]).reshape(-1, K) @ C.T           # (P·R, P)
        out.append(W.reshape(P, -1, P).transpose(0, 2, 1))
    return np.stack(out)


def _order(c, eg2, tol):
    """Number of Hermite terms after which every tail Σ_{j>=k} c_j² is below tol/100 · E g²."""
    tails = np.cumsum((c * c)[:, ::-1], axis=1)[:, ::-1]                 # (P, K)
    small = np.all(tails <= 1e-2 * tol * eg2[:, None], axis=0)
    return int(np.argmax(small)) if small.any() else c.shape[1]


def _mehler_coefficients(fns, exprs, A, tol):
    """Hermite coefficients at the variances A for each g, truncated where every tail is
    negligible, with the order and the table used: the first table of ``ORDERS`` whose series
    passes Parseval's check ``|E g² - Σ_k c_k²| <= tol/10 · E g²`` everywhere; None if none does
    (or g overflows)."""
    eg2s = [np.asarray(expect_numeric(g**2, A), dtype=float) for g in exprs]
    for table in ORDERS:
        Cs, order = [], 1
        for fn, eg2 in zip(fns, eg2s):
            c = _hermite_coefficients(fn, A, table + 1, table)
            if c is None:
                return None
            if np.any(np.abs(eg2 - np.einsum("pk,pk->p", c, c)) > 0.1 * tol * eg2):
                break
            order = max(order, _order(c, eg2, tol))
            Cs.append(c)
        else:
            return [c[:, :order] for c in Cs], order, table
    return None


def _fit(fns, exprs, la, lb, ra, rb, tol, n_a, n_r):
    """The checked tensor series at degrees (n_a, n_r), doubled until the tails are below tol,
    and the Hermite order used; None when Mehler's series does not converge (Parseval, at the
    grid variances and both ends of the range) or the degrees run away."""
    Cs, have = None, None
    while True:
        if la == lb:
            A, n_a = np.array([math.exp(la)]), 1
        else:
            A = np.exp((la + lb) / 2 + (lb - la) / 2 * _cheb_nodes(n_a))
        if have != n_a:
            have = n_a
            mehler = _mehler_coefficients(fns, exprs, np.concatenate([A, [math.exp(la), math.exp(lb)]]), tol)
            if mehler is None:
                return None
            Cs, order, table = mehler
            Cs = [c[:A.size] for c in Cs]
        r_nodes = (ra + rb) / 2 + (rb - ra) / 2 * _cheb_nodes(n_r)
        vals = _grid_values(Cs, r_nodes)                          # (G, P, P, R)
        coef = np.tensordot(vals, _cheb_matrix(n_r), axes=([3], [1]))      # (G, P, P, M)
        if n_a > 1:
            Va = _cheb_matrix(n_a)
            coef = np.tensordot(coef, Va, axes=([1], [1])).transpose(0, 3, 1, 2)   # (G, P', q, M)
            coef = np.tensordot(coef, Va, axes=([2], [1])).transpose(0, 1, 3, 2)   # (G, P', Q', M)
        scale = np.max(np.abs(vals), axis=(1, 2, 3))[:, None, None, None] + 1e-300
        rel = np.abs(coef) / scale
        ok_r = n_r <= 3 or rel[..., -3:].max() <= tol / 4
        ok_a = n_a <= 3 or max(rel[:, -3:].max(), rel[:, :, -3:].max()) <= tol / 4
        if ok_r and ok_a:
            return _chop(coef, rel, tol), order, table
        if (not ok_r and n_r >= 256) or (not ok_a and n_a >= 32):      # grid memory < 70 MB
            return None
        n_r = n_r if ok_r else 2 * n_r
        n_a = n_a if ok_a else 2 * n_a


def _chop(coef, rel, tol):
    """Drop trailing coefficients whose total is far below tol."""
    M = coef.shape[-1]
    tail_r = np.cumsum(rel.max(axis=(0, 1, 2))[::-1])[::-1]      # Σ_{m' >= m} max |C|
    keep_r = max(1, int(np.argmax(tail_r <= tol / 16)) if tail_r[-1] <= tol / 16 else M)
    P = coef.shape[1]
    per_a = np.maximum(rel.max(axis=(0, 2, 3)), rel.max(axis=(0, 1, 3)))
    tail_a = np.cumsum(per_a[::-1])[::-1]
    keep_a = max(1, int(np.argmax(tail_a <= tol / 16)) if tail_a[-1] <= tol / 16 else P)
    return coef[:, :keep_a, :keep_a, :keep_r]


def gram_expectations(exprs, K, *, tol: float = 1e-12, block: int = 16, threads: int | None = None,
                      sample: int = 24):
    """E[g(u_α) g(u_β)] over all pairs of the Gram matrix K for each g in ``exprs``.

    Args:
        exprs: SymPy expressions in ``z`` (smooth: no kinks).
        K: symmetric PSD (N, N) matrix; only its upper triangle is read.
        tol: target error relative to ``√(E g(u_α)² E g(u_β)²)``.
        block, threads: row-block size and worker threads of the evaluation.
        sample: number of entries of the end-to-end check.

    Returns:
        ``(tuple of (N, N) arrays, measured error)``, or ``None`` when the interpolant cannot be
        certified to ``tol`` (kinks, overflow, Mehler's series not converged by order 2048, runaway
        degrees, or a failed end-to-end check).
    """
    exprs = [sp.sympify(g) for g in exprs]
    if any(kinks_in(g, Z) for g in exprs):
        return None
    with single_threaded_blas():          # many small products; blocks use their own threads
        return _gram_expectations(exprs, np.asarray(K, dtype=float), tol, block, threads, sample)


def _gram_expectations(exprs, K, tol, block, threads, sample):
    N = K.shape[0]
    a = np.diag(K).copy()
    pos = a > 0
    fns = [_compiled(g, (Z,)) for g in exprs]
    diag = [_one_point(g**2, a) for g in exprs]
    outs = [np.empty((N, N)) for _ in exprs]
    if N == 1 or not pos.any():
        return _finish(outs, diag, exprs, a, None, None, N, block, threads), 0.0
    n = np.sqrt(a)
    inv_n = np.divide(1.0, n, out=np.zeros_like(n), where=pos)
    R = np.multiply(K, inv_n)                               # ρ (rows of zero variance: 0)
    R *= inv_n[:, None]
    np.clip(R, -1.0, 1.0, out=R)
    np.fill_diagonal(R, R[0, 1])                            # off-diagonal range only
    ra, rb = float(R.min()), float(R.max())
    la, lb = float(np.log(a[pos].min())), float(np.log(a[pos].max()))
    if lb - la < 1e-13:
        la = lb
    if rb - ra < 1e-6:                                      # keep the map well conditioned
        mid = (ra + rb) / 2
        ra, rb = max(-1.0, mid - 5e-7), min(1.0, mid + 5e-7)
    fit = _fit(fns, exprs, la, lb, ra, rb, tol, 8, 32)
    if fit is None:
        return None
    series = _Series(fit[0], la, lb, ra, rb)
    err = _check(series, fns, exprs, a, R, tol, sample, fit[1], fit[2])
    if err is None:
        return None
    return _finish(outs, diag, exprs, a, R, series, N, block, threads), err


def _one_point(f, a):
    """E f(u), u ~ N(0, a), for many variances: Chebyshev in log a above 64 of them."""
    a = np.asarray(a, dtype=float)
    if a.size > 64 and np.all(a > 0):
        return np.asarray(expect_interpolated(f, a), dtype=float)
    return np.asarray(expect_numeric(f, a), dtype=float)


def _check(series, fns, exprs, a, R, tol, sample, order, table):
    """Largest error of the series against Mehler's sums at sampled off-diagonal entries of
    positive variance — the largest and smallest ρ, the extreme variances, and random ones —
    relative to √(E g_α² E g_β²); None if above tol."""
    N = a.size
    pos = np.nonzero(a > 0)[0]
    if pos.size < 2:
        return 0.0
    pairs = [np.unravel_index(int(np.argmax(R)), R.shape), np.unravel_index(int(np.argmin(R)), R.shape),
             (int(pos[np.argmin(a[pos])]), int(pos[np.argmax(a[pos])]))]
    rng = np.random.default_rng(12345)
    pairs += [tuple(int(v) for v in rng.choice(pos, size=2, replace=False)) for _ in range(sample)]
    ij = np.array([(i, j) for i, j in pairs if i != j and a[i] > 0 and a[j] > 0 and i < N and j < N])
    if ij.size == 0:
        return 0.0
    i, j = ij[:, 0], ij[:, 1]
    rr = R[i, j]
    approx = series(a[i], a[j], rr)
    powers = rr[:, None] ** np.arange(order)          # Mehler's series, converged by `order`
    worst = 0.0
    for gi, (fn, g) in enumerate(zip(fns, exprs)):
        c = _hermite_coefficients(fn, np.concatenate([a[i], a[j]]), order, table)
        exact = np.einsum("nk,nk,nk->n", c[:i.size], c[i.size:], powers)
        eg2 = np.asarray(expect_numeric(g**2, np.concatenate([a[i], a[j]])), dtype=float)
        scale = np.sqrt(eg2[:i.size] * eg2[i.size:]) + 1e-300
        worst = max(worst, float(np.max(np.abs(approx[gi] - exact) / scale)))
    return worst if worst <= tol else None


def _finish(outs, diag, exprs, a, R, series, N, block, threads, cols: int = 512):
    zero = a == 0
    if series is not None:
        C = series.C                                    # (G, P, P, M)
        G, P, _, M = C.shape
        Ts = _cheb_basis(series.s(np.where(zero, 1.0, a)), P)          # (N, P)
        # W[i, m, (q, g)] = Σ_p T_p(s_i) C[g, p, q, m]
        W = np.einsum("np,gpqm->nmqg", Ts, C).reshape(N, M, P * G)

        Wt = np.ascontiguousarray(W.transpose(0, 2, 1))                   # (N, P·G, M)
        TsT = np.ascontiguousarray(Ts.T)                                  # (P, N)

        scale, shift = 2 / (series.rb - series.ra), (series.ra + series.rb) / (series.rb - series.ra)

        def tile(i0, i1, j0, j1):
            Tr = np.empty((M, i1 - i0, j1 - j0))                           # T_m(t), m-major
            Tr[0] = 1.0
            if M > 1:
                t = Tr[1]
                np.multiply(R[i0:i1, j0:j1], scale, out=t)
                t -= shift
                np.clip(t, -1.0, 1.0, out=t)
                t2 = 2 * t
            for m in range(2, M):
                np.multiply(t2, Tr[m - 1], out=Tr[m])
                Tr[m] -= Tr[m - 2]
            # V[b, (q, g), n] = Σ_m W[b, m, (q, g)] T_m(t_bn)
            V = np.matmul(Wt[i0:i1], Tr.transpose(1, 0, 2))                # (B, P·G, n)
            V = V.reshape(i1 - i0, P, G, j1 - j0)
            for g in range(G):
                if P == 1:
                    outs[g][i0:i1, j0:j1] = V[:, 0, g]
                else:
                    np.einsum("bqn,qn->bn", V[:, :, g], TsT[:, j0:j1], out=outs[g][i0:i1, j0:j1])

        def rows(i0):                           # columns in tiles: temporaries of ~1-3 MB
            i1 = min(N, i0 + block)
            for j0 in range(i0, N, cols):
                tile(i0, i1, j0, min(N, j0 + cols))

        run_blocks(rows, range(0, N, block), threads)
    for g, out in enumerate(outs):
        np.fill_diagonal(out, diag[g])
        mirror_upper(out, threads)
        if zero.any():
            f0 = float(exprs[g].subs(Z, 0))
            mean = np.asarray(expect_numeric(exprs[g], a), dtype=float)
            out[zero, :] = f0 * mean[None, :]
            out[:, zero] = f0 * mean[:, None]
            out[np.ix_(zero, zero)] = f0 * f0
    return tuple(outs)
