"""Layer kernel maps on pixel-pair kernels (infinite width, NTK parameterisation).

At infinite width the pre-activations of one channel are a centred Gaussian field over
(input α, position p); its law is the pair kernel ``K_{αβ}(p, p')``, held as an array of shape
``(*S, *S, n_α, n_β)`` (``full``) or, when no pooling needs different positions, its pixel
diagonal ``K_{αβ}(p, p)`` of shape ``(*S, n_α, n_β)`` (``diag``).  With ``Θ`` the NTK, area
``|F|`` of the filter ``F``, and the NTK parameterisation (``λ_W = C_W``, ``λ_b = C_b``):

* dense (channel axis):  ``K' = C_b + C_W K``,  ``Θ' = K' + C_W Θ``;
* conv:  ``K'(p, p') = C_b + (C_W/|F|) Σ_{d ∈ F} K(p+d, p'+d)`` (zero outside the input:
  SAME padding), ``Θ' = K' + (C_W/|F|) Σ_d Θ(p+d, p'+d)``  — the same shift on both positions,
  so diagonals map to diagonals, and the sum separates into one shifted sum per axis;
* act:  ``K' = <σ(u)σ(v)>``,  ``Θ' = <σ'(u)σ'(v)> Θ``, ``(u, v) ~ N(0, [[K(p,p), K(p,p')], [·, K(p',p')]])``
  (the two-point maps of :mod:`perturb.infinite`: arc-cosine kernels, the closed-form registry,
  or the checked Chebyshev interpolant of Mehler's series);
* avg_pool (window ``w``, stride ``w``): ``K'(P, P') = |w|⁻² Σ_{p ∈ P, p' ∈ P'} K(p, p')``;
* global_avg_pool: the mean of ``K(p, p')`` over all pairs; flatten: the mean of ``K(p, p)``;
* residual ``x + f(x)``: ``K' = K + K_f``, ``Θ' = Θ + Θ_f`` (``f`` ends with fresh weights, so the
  cross-covariance of ``x`` and ``f(x)`` vanishes).

All linear maps work on float arrays and on object arrays of ``mpf`` alike (the ``--dps``
path).

>>> import numpy as np
>>> K = np.ones((4, 4, 1, 1))                 # 4 positions, one input pair, constant kernel
>>> float(patch_sum(K, (3,), "SAME", full=True)[0, 0, 0, 0])   # corner: 2 of 3 taps inside
0.6666666666666666
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import PerturbError
from ..gaussian import expect
from ..infinite import _engine

__all__ = ["spatial_axes", "patch_sum", "pool_window", "global_mean", "flatten_mean", "direct", "act_pair", "act_embedded"]


def _pads(k: int, padding: str) -> tuple[int, int]:
    if padding == "VALID":
        return 0, 0
    lo = (k - 1) // 2                     # XLA / neural-tangents SAME padding, stride 1
    return lo, k - 1 - lo


def spatial_axes(ndim: int, d: int, full: bool) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """The position axes of a block, which lead: ``full`` arrays are laid out ``(*S, *S, n_α, n_β)``,
    ``diag`` ones ``(*S, n_α, n_β)`` — so every shift along a position axis moves whole contiguous
    ``n_α × n_β`` tiles."""
    if full:
        return tuple(range(d)), tuple(range(d, 2 * d))
    return tuple(range(d)), None


def _scale(out, factor):
    if out.dtype == object:
        import mpmath

        return out * (mpmath.mpf(1) / factor)
    out *= 1.0 / factor
    return out


def patch_sum(M, filt: tuple[int, ...], padding: str, *, full: bool, normalise: bool = True):
    """``(1/|F|) Σ_{d ∈ F} M(p+d, p'+d)`` over the position axes (zero outside the input).

    One axis at a time (the sum over the filter separates); SAME adds shifted views into a copy
    (no padded temporary), VALID sums the windows where the filter fits.
    """
    d = len(filt)
    ax1, ax2 = spatial_axes(M.ndim, d, full)
    out = M
    for k_axis, k in enumerate(filt):
        if k == 1:
            continue
        axes = (ax1[k_axis],) + ((ax2[k_axis],) if full else ())
        n = out.shape[axes[0]]
        src_arr = out
        if padding == "VALID":
            n_out = n - k + 1
            acc = None
            for t in range(k):
                sl = [slice(None)] * out.ndim
                for ax in axes:
                    sl[ax] = slice(t, t + n_out)
                view = src_arr[tuple(sl)]
                acc = view.copy() if acc is None else acc.__iadd__(view)
            out = acc
            continue
        lo = (k - 1) // 2                 # XLA / neural-tangents SAME padding, stride 1
        acc = src_arr.copy()
        for t in range(k):
            s = t - lo
            if s == 0 or abs(s) >= n:
                continue
            dst = [slice(None)] * out.ndim
            src = [slice(None)] * out.ndim
            for ax in axes:
                dst[ax] = slice(max(0, -s), min(n, n - s))
                src[ax] = slice(max(0, s), min(n, n + s))
            acc[tuple(dst)] += src_arr[tuple(src)]
        out = acc
    if out is M:
        out = M.copy()
    return _scale(out, math.prod(filt)) if normalise else out


def pool_window(M, window: tuple[int, ...], *, full: bool):
    """``|w|⁻² Σ_{p ∈ P, p' ∈ P'} M(p, p')`` over non-overlapping windows (VALID, stride = window)."""
    if not full:
        raise PerturbError("avg_pool needs the full pixel-pair kernel")      # planned by the fold
    d = len(window)
    ax1, ax2 = spatial_axes(M.ndim, d, full)
    out = M
    for k_axis, w in enumerate(window):
        if w == 1:
            continue
        for ax in (ax1[k_axis], ax2[k_axis]):
            n_out = out.shape[ax] // w
            acc = None
            for t in range(w):
                sl = [slice(None)] * out.ndim
                sl[ax] = slice(t, t + w * (n_out - 1) + 1, w)
                view = out[tuple(sl)]
                acc = view.copy() if acc is None else acc.__iadd__(view)
            out = acc
    if out is M:
        out = M.copy()
    area = math.prod(window)
    return _scale(out, area * area)


def global_mean(M, d: int, *, full: bool = True):
    """Mean of ``M(p, p')`` over all position pairs."""
    if d == 0:
        return M
    ax1, ax2 = spatial_axes(M.ndim, d, full)
    total = M.sum(axis=ax1 + ax2)
    return _scale(total, math.prod(M.shape[a] for a in ax1 + ax2))


def flatten_mean(M, d: int, *, full: bool):
    """Mean of the pixel diagonal ``M(p, p)`` (flatten, then a dense layer with fan-in C·|S|)."""
    if d == 0:
        return M
    P = math.prod(M.shape[:d])
    if full:
        diag = np.moveaxis(np.diagonal(M.reshape((P, P) + M.shape[2 * d:]), axis1=0, axis2=1), -1, 0)
    else:
        diag = M.reshape((P,) + M.shape[d:])
    return _scale(diag.sum(axis=0), P)


def direct(activation) -> bool:
    """True when the activation's two-point maps are closed forms evaluated entry by entry."""
    eng = _engine(activation)
    return eng.relu is not None or (eng.cf is not None and (eng.cf_d is not None or not eng.ntk_defined))


def act_pair(activation, c: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray | None,
             want_ntk: bool):
    """``(<σσ>, <σ'σ'>)`` entry by entry for closed-form activations.

    ``c`` holds the covariances, ``a``/``b`` the variances of the two entries (broadcastable to
    ``c``), ``same`` marks the entries that are one variable with itself (ρ = 1 exactly there:
    ``arccos`` at ``1 - ε`` would cost ~1e-8).
    """
    eng = _engine(activation)
    want_ntk = want_ntk and eng.ntk_defined
    if eng.relu is not None:
        return _relu_pair(eng.relu, c, a, b, same, want_ntk)
    nrm = np.sqrt(a) * np.sqrt(b)                      # broadcasts from the small variance arrays
    cc = np.clip(c, -nrm, nrm, out=np.empty(c.shape))
    if same is not None:
        cc = np.where(same, np.broadcast_to(a, c.shape), cc)
    with np.errstate(divide="ignore", invalid="ignore"):
        ss = np.asarray(eng.cf(a, b, cc), dtype=float)
        dd = np.asarray(eng.cf_d(a, b, cc), dtype=float) if want_ntk else None
    any_zero = bool(np.any(np.asarray(a) == 0) or np.any(np.asarray(b) == 0))
    for expr, out in ((eng.s, ss), (eng.ds, dd)):
        if out is None:
            continue
        if any_zero:
            A, B = np.broadcast_to(a, c.shape), np.broadcast_to(b, c.shape)
            _zero_variance(expr, out, A, B, (A == 0) | (B == 0))
        if not np.isfinite(out.sum()) and not np.all(np.isfinite(out)):
            raise PerturbError(f"the two-point expectation of {expr} is not finite at this kernel")
    return ss, dd


def _relu_pair(coef, c, a, b, same, want_ntk):
    """σ = α relu(z) + β relu(−z), fused and in place (perturb.infinite's arc-cosine kernels):
    with ρ = c/√(ab), θ = arccos ρ, p = α²+β², q = 2αβ,
    <σ'σ'> = p/2 − (p+q)θ/(2π),  <σσ> = √(ab) [(p+q)/(2π) √((1−ρ)(1+ρ)) + ρ <σ'σ'>]."""
    al, be = coef
    p, q = al * al + be * be, 2 * al * be
    k = (p + q) / (2 * np.pi)
    sa, sb = np.sqrt(a), np.sqrt(b)
    with np.errstate(divide="ignore"):
        ia, ib = np.where(sa > 0, 1 / sa, 0.0), np.where(sb > 0, 1 / sb, 0.0)
    rho = c * ia
    rho *= ib
    np.clip(rho, -1.0, 1.0, out=rho)
    pos = None
    if same is not None:
        pos = same & (sa * sb > 0)
        rho[pos] = 1.0
    dd = np.arccos(rho)
    dd *= -k
    dd += p / 2                                        # <σ'σ'>
    zero = (sa * sb) == 0
    anyzero = bool(np.any(zero))
    if anyzero:
        dd[np.broadcast_to(zero, dd.shape)] = ((al - be) / 2) ** 2   # σ'(0) = (α-β)/2 (H(0) = 1/2)
    ss = np.subtract(1.0, rho)
    rho += 1.0
    ss *= rho                                          # (1-ρ)(1+ρ) without cancellation
    rho -= 1.0
    np.sqrt(ss, out=ss)
    ss *= k
    rho *= dd
    ss += rho
    ss *= sa
    ss *= sb                                           # <σσ>
    if anyzero:
        ss[np.broadcast_to(zero, ss.shape)] = 0.0
    if pos is not None:                                # the exact diagonal: (p/2) K_αα
        ss[pos] = (p / 2) * np.broadcast_to(a, ss.shape)[pos]
    return ss, (dd if want_ntk else None)


def _zero_variance(expr, out, a, b, zero):
    """u = 0 exactly: <σ(0) σ(v)> = σ(0) <σ>_{K_vv}."""
    from ..activations import Z

    f0 = float(expr.subs(Z, 0))
    other = np.where(a[zero] == 0, b[zero], a[zero])
    vals = np.full(other.shape, f0 * f0)
    pos = other > 0
    if np.any(pos):
        vals[pos] = f0 * np.asarray(expect(expr, other[pos]), dtype=float)
    out[zero] = vals


def act_embedded(activation, C: np.ndarray, a: np.ndarray | None, b: np.ndarray | None, want_ntk: bool):
    """``(<σσ>, <σ'σ'>)`` on a matrix of covariances ``C`` (rows: variances ``a``, columns ``b``)
    through perturb's Gram-matrix engine.  ``a is None``: ``C`` is a symmetric Gram matrix; else
    it is embedded as the off-diagonal block of ``[[diag a, C], [Cᵀ, diag b]]``."""
    eng = _engine(activation)
    if a is None:
        return eng(C, want_ntk=want_ntk)
    m = C.shape[0]
    G = np.zeros((m + C.shape[1],) * 2)
    G[:m, m:] = C
    G[m:, :m] = C.T
    idx = np.arange(G.shape[0])
    G[idx, idx] = np.concatenate([a, b])
    ss, dd = eng(G, want_ntk=want_ntk)
    return ss[:m, m:], (dd[:m, m:] if dd is not None else None)
