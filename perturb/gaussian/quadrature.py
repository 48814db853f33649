"""Vectorised numeric Gaussian expectations (numpy/scipy).

Rule, per variable in Cholesky coordinates ``u = L x`` (x standard normal): composite
Gauss–Legendre on ``[-T, T]`` (T = 12, beyond which the Gaussian weight is < 1e-31) with panels
of width at most 2 (narrower when the variance is large) split also at the kinks (points where
the integrand or a derivative jumps, e.g. 0 for ReLU), whose positions depend on the outer
variables.  Each panel's integrand is analytic, so convergence is geometric both for kinked
activations (where plain Gauss–Hermite stalls near 1e-3) and for activations with complex poles
near the real axis such as tanh (where 100-node Gauss–Hermite stalls near 1e-7 for <tanh⁸>).

:func:`expect_numeric` integrates an expression over ``N(0, K)`` for a whole array of
covariances at once.  :func:`pair_gram` computes ``E[g(u_i) h(u_j)]`` over all pairs of a
Gram matrix with Mehler's expansion (Hermite coefficients of g and h computed once per input),
falling back to direct quadrature where the series' rigorous tail bound is not small enough.

>>> import numpy as np, sympy as sp
>>> from perturb.activations import Z
>>> expect_numeric(sp.tanh(Z)**2, np.array([0.5, 1.0, 2.0])).round(12)
array([0.27367631, 0.39429449, 0.51997575])
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.special as sc
import sympy as sp

from ..activations import Z
from ..compile import compile_expr
from ..errors import PerturbError
from .atom import integration_vars

__all__ = ["expect_numeric", "kinks_in", "pair_gram", "hermite_coefficients", "hermite_table", "table_coefficients", "TAIL"]

#: positions (in inner standard deviations) of the inner kink at which outer panels are broken
_TRANSITION = (-8.0, -5.0, -3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0)
#: half-width of the truncated domain for kinked integrands (Gaussian mass beyond: < 1e-31)
TAIL = 12.0
_KINK_FUNCS = (sp.Max, sp.Min, sp.Abs, sp.Heaviside, sp.sign, sp.Piecewise)


@functools.lru_cache(maxsize=32)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return sc.roots_legendre(n)


@functools.lru_cache(maxsize=1024)
def _compiled(f: sp.Expr, zs: tuple):
    return compile_expr(f, list(zs))


@functools.lru_cache(maxsize=1024)
def kinks_in(f: sp.Expr, var: sp.Symbol) -> list[tuple[sp.Expr, sp.Expr]]:
    """Kinks of f in ``var`` as hyperplanes ``a·u = c``: a list of (linear form, c).

    Each returned pair (lhs, c) says the integrand switches branch where lhs(u) = c; lhs is
    linear in the integration variables (only single-variable kinks are supported).
    """
    out = []
    for node in f.atoms(*_KINK_FUNCS):
        if isinstance(node, (sp.Max, sp.Min)):
            eqs = [a - b for i, a in enumerate(node.args) for b in node.args[i + 1:]]
        elif isinstance(node, sp.Piecewise):
            eqs = [r.lhs - r.rhs for _, cond in node.args for r in cond.atoms(sp.core.relational.Relational)]
        else:
            eqs = [node.args[0]]
        for eq in eqs:
            if var not in eq.free_symbols:
                continue
            sols = sp.solve(sp.Eq(eq, 0), var)
            for s in sols:
                if s.free_symbols:
                    raise PerturbError(f"kink of '{f}' couples several variables ({eq} = 0); not supported")
                if s.is_real:
                    out.append(float(s))
    return tuple(sorted(set(out)))


def _as_array(K) -> np.ndarray:
    K = np.asarray(K, dtype=float)
    if not np.all(np.isfinite(K)):
        raise PerturbError("covariance contains NaN or infinity")
    return K


def expect_numeric(f: sp.Expr, K, *, n_hermite: int = 32, n_legendre: int = 16,
                   chunk_nodes: int = 4_000_000) -> np.ndarray:
    """E f(u), u ~ N(0, K), for an array of covariances.

    Args:
        f: a SymPy expression in ``z`` (scalar K) or in ``z_1..z_m`` (K of shape (..., m, m)).
        K: array of variances (shape S) or covariance matrices (shape S + (m, m)).
        n_hermite, n_legendre: Gauss–Legendre nodes per panel, for one variable / for several.

    Returns:
        array of shape S.
    """
    f = sp.sympify(f)
    K = _as_array(K)
    if f.atoms(sp.core.function.AppliedUndef):
        raise PerturbError(f"cannot integrate the generic activation numerically: {f}")
    if f.has(sp.DiracDelta):
        raise PerturbError(f"integrand {f} contains a Dirac delta (derivative of a step); "
                           "use the closed form or the heat-equation rule instead")
    scalar = not any(s.name.startswith("z_") for s in f.free_symbols)
    if scalar:
        m = 1
        if np.any(K < 0):
            raise PerturbError(f"variance must be >= 0, got {K[K < 0].flat[0]}")
        L = np.sqrt(K)[..., None, None]
        zs = (Z,)
        shape = K.shape
    else:
        m = K.shape[-1]
        if K.ndim < 2 or K.shape[-2] != m:
            raise PerturbError(f"covariance must have shape (..., m, m), got {K.shape}")
        zs = integration_vars(sp.ImmutableMatrix(sp.zeros(m, m)))
        L = _cholesky_psd(K)
        shape = K.shape[:-2]
    fn = _compiled(f, zs)
    kinks = [kinks_in(f, v) for v in zs]
    flat_L = L.reshape(-1, m, m)
    nodes_per_point = _node_count(kinks, n_hermite, n_legendre)
    step = max(1, chunk_nodes // nodes_per_point)
    out = np.empty(flat_L.shape[0])
    for s in range(0, flat_L.shape[0], step):
        out[s:s + step] = _nested(fn, flat_L[s:s + step], kinks, n_hermite, n_legendre)
    if not np.all(np.isfinite(out)):
        raise PerturbError(f"the Gaussian expectation of {f} is not finite at some covariance "
                           "(overflow or a divergent integral)")
    return out.reshape(shape)


def _node_count(kinks, nh, nl) -> int:
    if len(kinks) == 1:
        return (24 + len(kinks[0])) * nh
    n = 1
    for k in kinks:
        n *= (24 + len(k)) * nl
    return n


def _cholesky_psd(K: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of PSD matrices (singular ones allowed), batched."""
    m = K.shape[-1]
    if not np.allclose(K, np.swapaxes(K, -1, -2), rtol=1e-12, atol=1e-14):
        raise PerturbError("covariance matrix is not symmetric")
    L = np.zeros_like(K)
    for i in range(m):
        for j in range(i + 1):
            s = K[..., i, j] - np.einsum("...k,...k->...", L[..., i, :j], L[..., j, :j])
            if i == j:
                tol = 1e-12 * np.maximum(np.abs(K[..., i, i]), 1e-300)
                if np.any(s < -tol * 10):
                    raise PerturbError("covariance matrix is not positive semi-definite")
                L[..., i, i] = np.sqrt(np.maximum(s, 0.0))
            else:
                d = L[..., j, j]
                with np.errstate(divide="ignore", invalid="ignore"):
                    L[..., i, j] = np.where(d > 0, s / np.where(d > 0, d, 1.0), 0.0)
    return L


def _nested(fn, L: np.ndarray, kinks, nh: int, nl: int) -> np.ndarray:
    """Integrate fn(u), u = L x, over standard-normal x, axis by axis; L has shape (P, m, m)."""
    P, m, _ = L.shape
    # running node sets: x[k] of shape (P, Q) for the axes done so far, weights w (P, Q)
    xs: list[np.ndarray] = []
    w = np.ones((P, 1))
    for i in range(m):
        Q = w.shape[1]
        # panels of Gauss–Legendre on [-T, T]: base breakpoints (width <= 2, and small enough
        # that poles of σ at distance ~π/(2√K) from the real axis keep geometric convergence)
        # plus the kinks, whose positions depend on the outer variables
        # x_i enters every later u_k through column i of L: its largest entry sets the scale
        scale = float(np.max(np.abs(L[:, i:, i]))) if P else 1.0
        n_base = max(12, int(np.ceil(2 * TAIL * scale / 2.0)))
        base = np.linspace(-TAIL, TAIL, n_base + 1)
        cuts = [np.broadcast_to(base, (P, Q, base.size))]
        if m == 2 and i == 0 and kinks[1]:
            # the inner integral changes over |Δx_0| ~ L_11/|L_10| where the inner kink crosses the
            # bulk of the inner Gaussian (sharp when the covariance is nearly singular): break there
            l10, l11 = L[:, 1, 0], L[:, 1, 1]
            with np.errstate(divide="ignore", invalid="ignore"):
                for c in kinks[1]:
                    for t in _TRANSITION:
                        b = np.where(np.abs(l10) > 0, (c - t * l11) / np.where(np.abs(l10) > 0, l10, 1.0), TAIL)
                        cuts.append(np.broadcast_to(np.clip(b, -TAIL, TAIL)[:, None, None], (P, Q, 1)))
        if kinks[i]:
            offset = np.zeros((P, Q))
            for j in range(i):
                offset = offset + L[:, i, j, None] * xs[j]
            lii = L[:, i, i, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                for c in kinks[i]:
                    b = np.where(lii > 0, (c - offset) / np.where(lii > 0, lii, 1.0), TAIL)
                    cuts.append(np.clip(b, -TAIL, TAIL)[..., None])
        edges = np.sort(np.concatenate(cuts, axis=-1), axis=-1)
        t, tw = _legendre(nl if kinks[i] or m > 1 else nh)
        lo, hi = edges[..., :-1, None], edges[..., 1:, None]
        half = (hi - lo) / 2
        xi = (lo + hi) / 2 + half * t                       # (P, Q, panels, nodes)
        wi = half * tw * np.exp(-xi**2 / 2) / math.sqrt(2 * math.pi)
        xi = xi.reshape(P, Q, -1)
        wi = wi.reshape(P, Q, -1)
        R = xi.shape[-1]
        xs = [np.repeat(x, R, axis=1) for x in xs] + [xi.reshape(P, Q * R)]
        w = (w[..., None] * wi).reshape(P, Q * R)
    u = [sum(L[:, i, j, None] * xs[j] for j in range(i + 1)) for i in range(m)]
    with np.errstate(over="ignore", invalid="ignore"):
        vals = fn(*u)
    if np.ndim(vals) == w.ndim + 1:                    # several integrands stacked (gaussian.batch):
        return np.einsum("fpq,pq->fp", vals, w)        # a non-finite value stays non-finite there
    vals = np.broadcast_to(vals, w.shape)
    bad = ~np.isfinite(vals)
    if bad.any():
        vals = _refine_nonfinite(fn, u, vals, bad, w)
    return np.einsum("pq,pq->p", vals, w)


def _refine_nonfinite(fn, u, vals, bad, w):
    """Re-evaluate nodes where float64 overflowed (e.g. inf/inf in exp(-2z)/(1+exp(-z))^4 far
    in the tail) with mpmath, whose exponent range is unbounded; the weighted value is kept
    when it is finite, so a genuinely divergent integrand still reports a non-finite result."""
    import mpmath

    vals = np.array(vals, dtype=float)
    mp_fn = fn.mp_function
    idx = np.nonzero(bad)
    with mpmath.workdps(20):
        for p, q in zip(*idx):
            val = mp_fn(*[mpmath.mpf(float(ui[p, q])) for ui in u]) * mpmath.mpf(float(w[p, q]))
            weighted = float(val) if mpmath.isfinite(val) else np.inf
            vals[p, q] = weighted / w[p, q] if w[p, q] != 0 and np.isfinite(weighted) else (
                0.0 if w[p, q] == 0 else np.inf)
    return vals


# ---------------------------------------------------------------- Gram matrices: Mehler's series


#: highest order of the shared Hermite table (Mehler's series)
MAX_HERMITE = 1024
_HW, _PANEL, _PANEL_NODES = 13.0, 0.25, 16    # Hermite functions ~ e^{-x²/4}: < 1e-18 beyond 13


def _hermite_rows(x: np.ndarray, order: int) -> np.ndarray:
    """h_0..h_order (orthonormal He_k/√k!) at x, shape x.shape + (order+1,)."""
    H = np.empty(x.shape + (order + 1,))
    h_prev, h = np.zeros_like(x), np.ones_like(x)
    for k in range(order + 1):
        H[..., k] = h
        h_prev, h = h, (x * h - math.sqrt(k) * h_prev) / math.sqrt(k + 1)
    return H


@functools.cache
def hermite_table(order: int = MAX_HERMITE) -> tuple[np.ndarray, np.ndarray]:
    """Nodes x (Q,) and matrix H (Q, order+1) with Σ_q f(x_q) H[q, k] = E[f(x) h_k(x)] for smooth f.

    Composite Gauss–Legendre, panels of width 1/4 (order <= 1024; narrower in proportion above)
    on [-13, 13] with 16 nodes each: resolves the Hermite functions up to ``order`` (wavelength
    ≥ 0.14 at 1024) and poles of f down to ~0.3 from the real axis (e.g. tanh(√a x) for a up to
    ~25), to ~1e-16 absolute.
    """
    t, w = _legendre(_PANEL_NODES)
    panel = min(_PANEL, _PANEL * MAX_HERMITE / order)
    edges = np.arange(-_HW, _HW + panel / 2, panel)
    half = panel / 2
    x = ((edges[:-1] + edges[1:]) / 2)[:, None] + half * t
    wx = (half * w * np.exp(-x**2 / 2) / math.sqrt(2 * math.pi)).ravel()
    x = x.ravel()
    return x, _hermite_rows(x, order) * wx[:, None]


def table_coefficients(fn, variances: np.ndarray, order: int, table: int = MAX_HERMITE) -> np.ndarray:
    """c_k(v) for k < ``order`` of a smooth compiled ``fn`` from :func:`hermite_table` (``table``),
    shape (V, order); non-finite where fn overflows at the nodes."""
    x, H = hermite_table(table)
    v = np.asarray(variances, dtype=float)
    with np.errstate(all="ignore"):
        G = np.broadcast_to(np.asarray(fn(np.sqrt(v)[:, None] * x), dtype=float), (v.size, x.size))
        return G @ H[:, :order]


def hermite_coefficients(g: sp.Expr, variances: np.ndarray, order: int) -> np.ndarray:
    """c_k(v) = E[g(√v x) h_k(x)] for k = 0..order, h_k = He_k/√k! orthonormal; shape (order+1, V).

    Smooth g: the shared table :func:`hermite_table`.  Kinked g: the same panels, also split at
    the kinks of g(√v x) (in x: c/√v), per variance.  (Not Gauss–Hermite: a 240-node rule, the
    former method, left errors of 1e-8 in c_k for tanh at variance 4.)
    """
    v = np.asarray(variances, dtype=float)
    fn = _compiled(g, (Z,))
    kinks = kinks_in(g, Z)
    if not kinks and order <= MAX_HERMITE:
        return table_coefficients(fn, v, order + 1).T
    t, tw = _legendre(_PANEL_NODES)
    base = np.arange(-_HW, _HW + _PANEL / 2, _PANEL)
    with np.errstate(divide="ignore"):
        cuts = [np.clip(c / np.sqrt(np.where(v > 0, v, 1e-300)), -_HW, _HW) for c in kinks]
    edges = np.sort(np.concatenate([np.broadcast_to(base, (v.size, base.size))] + [c[:, None] for c in cuts], 1), 1)
    half = (edges[:, 1:] - edges[:, :-1]) / 2
    x = ((edges[:, 1:] + edges[:, :-1]) / 2)[..., None] + half[..., None] * t
    w = half[..., None] * tw * np.exp(-x**2 / 2) / math.sqrt(2 * math.pi)
    x, w = x.reshape(v.size, -1), w.reshape(v.size, -1)
    gv = np.broadcast_to(fn(np.sqrt(v)[:, None] * x), x.shape) * w
    coeffs = np.empty((order + 1, v.size))
    h_prev, h = np.zeros_like(x), np.ones_like(x)
    for k in range(order + 1):
        coeffs[k] = np.einsum("vq,vq->v", gv, h)
        h_prev, h = h, (x * h - math.sqrt(k) * h_prev) / math.sqrt(k + 1)
    return coeffs


def pair_gram(g: sp.Expr, h: sp.Expr, a: np.ndarray, b: np.ndarray, c: np.ndarray, *,
              tol: float = 1e-12, max_order: int = 400) -> np.ndarray:
    """E[g(u1) h(u2)] for every pair, (u1, u2) ~ N(0, [[a_i, c_ij], [c_ij, b_j]]).

    Mehler's formula E = Σ_k c_k^g(a_i) c_k^h(b_j) ρ_ij^k with a rigorous tail bound
    ``sqrt(tail_g tail_h) |ρ|^{M+1}`` (Cauchy–Schwarz, tail = E g² − Σ_{k≤M} c_k²); entries whose
    bound exceeds ``tol`` (relative to sqrt(E g² E h²)) are integrated directly.
    """
    a, b, c = (np.asarray(x, dtype=float) for x in (a, b, c))
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.sqrt(np.outer(a, b))
        rho = np.where(norm > 0, c / np.where(norm > 0, norm, 1.0), 0.0)
    rho = np.clip(rho, -1.0, 1.0)
    cg = hermite_coefficients(g, a, max_order)
    ch = cg if (h == g and b is a) else hermite_coefficients(h, b, max_order)
    eg2 = expect_numeric(g**2, a)
    eh2 = eg2 if (h == g and b is a) else expect_numeric(h**2, b)
    tail_g = np.maximum(eg2 - np.cumsum(cg**2, axis=0), 0.0)   # (M+1, N)
    tail_h = np.maximum(eh2 - np.cumsum(ch**2, axis=0), 0.0)
    scale = np.sqrt(np.outer(eg2, eh2)) + 1e-300
    r = np.abs(rho)
    rmax = float(r.max(initial=0.0))
    # smallest order M whose worst-case bound is below tol, among entries with |rho| <= rcut
    order, rcut = max_order, min(rmax, 0.995)
    # max over pairs of sqrt(tail_g tail_h) is sqrt(max tail_g · max tail_h): O(N) per order
    worst = np.sqrt(tail_g.max(axis=1) * tail_h.max(axis=1))
    smallest = math.sqrt(float(eg2.min()) * float(eh2.min())) + 1e-300
    for M in range(4, max_order + 1):
        bound = worst[M] * rcut ** (M + 1)
        if bound <= tol * smallest:
            order = M
            break
    out = cg[order][:, None] * ch[order][None, :]
    for k in range(order - 1, -1, -1):
        out = out * rho + cg[k][:, None] * ch[k][None, :]
    bound = np.sqrt(np.outer(tail_g[order], tail_h[order])) * r ** (order + 1)
    bad = bound > tol * scale
    if np.any(bad):
        ii, jj = np.nonzero(bad)
        Ks = np.empty((ii.size, 2, 2))
        Ks[:, 0, 0], Ks[:, 1, 1] = a[ii], b[jj]
        Ks[:, 0, 1] = Ks[:, 1, 0] = c[ii, jj]
        z1, z2 = integration_vars(sp.ImmutableMatrix(sp.zeros(2, 2)))
        out[ii, jj] = expect_numeric(g.subs(Z, z1) * h.subs(Z, z2), Ks)
    return out
