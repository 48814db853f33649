"""Exact NTK mean and second moment of a leaky-ReLU network at one input (zero biases).

σ(z) = z (z > 0), α z (z < 0).  The derivation of :mod:`perturb.ntk_exact` (condition W^{(ℓ+1)}
on its forward direction u = h^{(ℓ)}/|h^{(ℓ)}|, Euler's identity a = z/|h^{(ℓ)}|) goes through,
but D_ℓ² is no longer a projector containing u, so one more scalar per layer survives.  Given the
B active neurons of layer ℓ, write S^± = Σ_{active/inactive} ξ_i² (χ²_B, χ²_{n−B}), S = S⁺ + S⁻ ~ χ²_n
and T = S⁺/S ~ Beta(B/2, (n−B)/2) independent of S, D(T) = T + α²(1 − T).  In the plane of the
active and inactive parts of ξ (u = cos θ e⁺ + sin θ e⁻, cos²θ = T/D), with ξ' = P^⊥Wᵀg^{(ℓ+1)}
~ N(0, s² P^⊥), s² = c_{ℓ+1} G_{ℓ+1}:

    X_ℓ = S D,    G_ℓ = a² p − 2 a s ω r + s² Y',       Y' = ω² q + Y⁺ + α² Y⁻,

with p = |D_ℓ u|² = (T + α⁴(1 − T))/D, q = α²/D, r = (1 − α²) sin θ cos θ (r² = (1−α²)² α² T(1−T)/D²),
ω ~ N(0, 1), Y⁺ ~ χ²_{B−1}, Y⁻ ~ χ²_{n−B−1} independent (B = 0 or n: no ω term, D = α² or 1).
α = 0 is ReLU (p = 1, r = 0), α² = 1 linear / |z|.

**Moments.** The cross term is odd in ω_ℓ, so in E Θ² it survives only when both copies of Θ
take it at the same layer; then a² s² = P_ℓ c_{ℓ+1} G_{ℓ+1} merges the two copies into one backward
expansion carrying one extra forward factor per layer above.  The transfer matrix of
:mod:`perturb.ntk_exact` gains these merged phases; the per-layer averages are
E[S^k] = n(n+2)⋯ times Beta averages of T^i D^{−m}, which are Gauss hypergeometric values
B(B/2+i, (n−B)/2)/B(B/2, (n−B)/2) · α^{−2m} ₂F₁(m, B/2+i; n/2+i; 1 − α^{−2}) (mpmath, any precision).

>>> m = leaky_ntk_moments([4, 4], [1], alpha=0.5, C_W=1.6, dps=20)
>>> float(m["mean"])                      # the mean is the infinite-width NTK (λ_b = 0)
4.8
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache

import mpmath
import numpy as np

from .errors import PerturbError
from .ntk_exact import _num, _per_layer, _widths, _x_norm2_over_n0

__all__ = ["leaky_ntk_moments", "sample_theta_leaky"]

# phases of one copy; a merged pair is the single phase _M_MID / _M_POST
_PRE_W, _PRE_B, _MID, _POST, _M_MID, _M_POST = range(6)


def _alpha(alpha) -> mpmath.mpf:
    a = _num(alpha, "alpha", signed=True)
    if not a.is_number:
        raise PerturbError(f"alpha must be a number, got {alpha!r}")
    return a


def _beta_ratio(b1, b2, i):
    """B(b1+i, b2)/B(b1, b2) = Π_{j<i} (b1+j)/(b1+b2+j)."""
    out = mpmath.mpf(1)
    for j in range(i):
        out *= (b1 + j) / (b1 + b2 + j)
    return out


@lru_cache(maxsize=20000)
def _t_moment(n: int, B: int, a2: tuple[int, int], i: int, m: int, dps: int) -> mpmath.mpf:
    """E[T^i D^{−m}], T ~ Beta(B/2, (n−B)/2), D = α² + (1−α²)T, 0 < B < n (α² = a2[0]/a2[1])."""
    with mpmath.workdps(dps + 10):
        al2 = mpmath.mpf(a2[0]) / a2[1]
        b1, b2 = mpmath.mpf(B) / 2, mpmath.mpf(n - B) / 2
        base = _beta_ratio(b1, b2, i)
        if m == 0:
            return base
        return base * al2 ** (-m) * mpmath.hyp2f1(m, b1 + i, b1 + b2 + i, 1 - 1 / al2)


def _rising2(k, a: int):
    out = 1
    for j in range(a):
        out *= k + 2 * j
    return out


@lru_cache(maxsize=20000)
def _layer(n: int, a2: tuple[int, int], nx: int, npc: int, ny: int, cross: int, dps: int) -> mpmath.mpf:
    """E[X^nx p^npc Y'^ny (4 ω² r²)^cross] over one hidden layer of width n (α² = a2[0]/a2[1])."""
    with mpmath.workdps(dps + 10):
        al2 = mpmath.mpf(a2[0]) / a2[1]
        ES = _rising2(n, nx)                                  # E S^nx, S ~ χ²_n
        tot = mpmath.mpf(0)
        for B in range(n + 1):
            w = mpmath.mpf(math.comb(n, B)) / 2 ** n
            if B in (0, n):                                   # T = 0 or 1: no plane, no ω term
                if cross:
                    continue
                d = al2 if B == 0 else mpmath.mpf(1)          # D = p here
                y = _rising2(n - 1, ny) * (al2 if B == 0 else 1) ** ny
                tot += w * ES * d ** nx * d ** npc * y
                continue
            # polynomial in (T, q) for E[Y'^ny | T] with q = α²/D:  U = Y⁺ + α²Y⁻
            EU = (B - 1) + al2 * (n - B - 1)
            EU2 = 2 * (B - 1) + 2 * al2 ** 2 * (n - B - 1) + EU ** 2
            # {power of q: coefficient}
            ypoly = {0: mpmath.mpf(1)} if ny == 0 else ({1: mpmath.mpf(1), 0: EU} if ny == 1 else
                                                        {2: mpmath.mpf(3), 1: 2 * EU, 0: EU2})
            val = mpmath.mpf(0)
            for jq, cy in ypoly.items():
                # integrand: D^{nx} · (T + α⁴(1−T))^{npc} D^{−npc} · α^{2jq} D^{−jq} · [4(1−α²)²α² T(1−T) D^{−2}]^cross
                e = nx - npc - jq - 2 * cross
                # polynomial in T: (T + α⁴(1−T))^{npc} · (T(1−T))^cross · D^{max(e,0)}
                poly = [mpmath.mpf(1)]

                def mul(pl, lin):                             # multiply by (c0 + c1 T)
                    out = [mpmath.mpf(0)] * (len(pl) + 1)
                    for k, cf in enumerate(pl):
                        out[k] += cf * lin[0]
                        out[k + 1] += cf * lin[1]
                    return out
                for _ in range(npc):
                    poly = mul(poly, (al2 ** 2, 1 - al2 ** 2))
                for _ in range(cross):
                    poly = mul(poly, (0, 1))
                    poly = mul(poly, (1, -1))
                for _ in range(max(e, 0)):
                    poly = mul(poly, (al2, 1 - al2))
                m = max(-e, 0)
                s = mpmath.fsum(cf * _t_moment(n, B, a2, i, m, dps) for i, cf in enumerate(poly) if cf != 0)
                pref = cy * al2 ** jq * (4 * (1 - al2) ** 2 * al2) ** cross
                val += pref * s
            tot += w * ES * val
        return +tot


def _steps(phase: int, m: int, L1: int, c, lw, lb, nprev) -> list[tuple[tuple[int, int, int, int], int, object]]:
    """(codes (nx, npc, ny, cross-request), new phase, factor) for one copy (or merged pair) at layer m."""
    last = m == L1
    out = []
    if phase in (_PRE_W, _PRE_B):
        if not last:
            out.append(((1, 0, 0, 0), phase, c) if phase == _PRE_W else ((0, 0, 0, 0), phase, 1))
        f = lw / nprev if phase == _PRE_W else lb
        out += _window(m, last, f, merged=False)
    elif phase == _MID:
        out += _window(m, last, c, merged=False)
    elif phase == _POST:
        out.append(((1, 0, 0, 0), _POST, c))
    elif phase == _M_MID:                                     # merged pair: a² gives one X per layer
        out += [((1 + k[0], k[1], k[2], 0), ph, c * c) for k, ph, _ in _window(m, last, 1, merged=True)]
    else:
        out.append(((2, 0, 0, 0), _M_POST, c * c))
    return out


def _window(m: int, last: bool, f, merged: bool):
    """A backward expansion G_m = a² p + s² Y' G_{m+1} (+ cross, unmerged copies only)."""
    if last:                                                  # G_{L+1} = 1
        return [((0, 0, 0, 0), _POST if not merged else _M_POST, f)]
    out = [((0, 1, 0, 0), _POST if not merged else _M_POST, f),
           ((0, 0, 1, 0), _MID if not merged else _M_MID, f)]
    if not merged:
        out.append(((0, 0, 0, 1), _M_MID, f))                # the cross term (pairs with the other copy)
    return out


def leaky_ntk_moments(widths, x, alpha, C_W=None, lambda_W=None, lambda_b=0, dps: int = 30) -> dict:
    """Exact E Θ, E Θ² and Var Θ of a leaky-ReLU network's NTK at one input (mpmath, ``dps`` digits).

    Args:
        widths: hidden widths n_1..n_L (positive integers).
        x: the input vector.
        alpha: the negative slope α (σ(z) = α z for z < 0).
        C_W: weight variance, scalar or per layer (default 2/(1+α²), criticality).
        lambda_W, lambda_b: learning-rate factors (default λ_W = C_W, λ_b = 0); biases are zero.

    >>> m = leaky_ntk_moments([3], [1], alpha=1, C_W=1, dps=20)     # α = 1: linear, Var Θ = 4/n
    >>> mpmath.nstr(m["var"], 12)
    '1.33333333333'
    """
    ws = _widths(widths)
    if not all(w.is_Integer for w in ws):
        raise PerturbError(f"widths must be positive integers, got {widths!r}")
    ws = [int(w) for w in ws]
    if isinstance(dps, bool) or not isinstance(dps, int) or not 5 <= dps <= 200:
        raise PerturbError(f"dps must be an integer in 5..200, got {dps!r}")
    al = _alpha(alpha)
    a2 = (int((al ** 2).p), int((al ** 2).q))
    L1 = len(ws) + 1
    if C_W is None:
        C_W = 2 / (1 + al ** 2)
    if al == 0:
        from .ntk_exact import relu_ntk_moments

        ex = relu_ntk_moments(ws, x, C_W=C_W, lambda_W=lambda_W, lambda_b=lambda_b)
        with mpmath.workdps(dps):
            return {k: mpmath.mpf(ex[k].p) / ex[k].q for k in ("mean", "second", "var")}
    q = _x_norm2_over_n0(x)
    cw = _per_layer(C_W, L1, "C_W", positive=True)
    lw = cw if lambda_W is None else _per_layer(lambda_W, L1, "lambda_W")
    lb = _per_layer(lambda_b, L1, "lambda_b")
    with mpmath.workdps(dps + 10):
        mp = lambda e: mpmath.mpf(e.p) / e.q if e.is_Rational else mpmath.mpf(str(e))   # noqa: E731
        qf, cwf, lwf, lbf = mp(q), [mp(v) for v in cw], [mp(v) for v in lw], [mp(v) for v in lb]
        res = {}
        for p in (1, 2):
            states = {}
            for combo in itertools.product((_PRE_W, _PRE_B), repeat=p):
                key = tuple(sorted(combo))
                states[key] = states.get(key, 0) + qf ** combo.count(_PRE_W)
            for m in range(1, L1 + 1):
                nprev = 1 if m == 1 else ws[m - 2]
                c = cwf[m - 1] / nprev
                new = {}
                for key, val in states.items():
                    opts = [_steps(ph, m, L1, c, lwf[m - 1], lbf[m - 1], nprev) for ph in key]
                    for choice in itertools.product(*opts):
                        crosses = sum(ch[0][3] for ch in choice)
                        if crosses == 1:
                            continue                          # odd in ω: mean zero
                        codes = [sum(ch[0][j] for ch in choice) for j in range(3)]
                        if m == L1:
                            if codes[1] or codes[2]:
                                continue
                            mom = mpmath.mpf(math.prod(range(1, 2 * codes[0], 2)))
                        else:
                            mom = _layer(ws[m - 1], a2, codes[0], codes[1], codes[2], crosses // 2, dps)
                        f = val * mom
                        for ch in choice:
                            f *= ch[2]
                        if crosses == 2:
                            nk = (_M_MID,)
                        else:
                            nk = tuple(sorted(ch[1] for ch in choice))
                        new[nk] = new.get(nk, 0) + f
                states = new
            res[p] = states.get(tuple([_POST] * p), 0) + (states.get((_M_POST,), 0) if p == 2 else 0)
        mean, second = +res[1], +res[2]
        return {"mean": mean, "second": second, "var": second - mean ** 2}


def sample_theta_leaky(widths: Sequence[int], n_samples: int, seed: int, alpha: float,
                       x_norm2_over_n0: float = 1.0, C_W=None, lambda_W=None, lambda_b=0.0) -> np.ndarray:
    """Exact samples of a leaky-ReLU network's Θ at one input from the scalar chain (no network).

    >>> sample_theta_leaky([4, 4], 3, seed=0, alpha=0.2).shape
    (3,)
    """
    ws = [int(w) for w in _widths(widths)]
    al = float(_alpha(alpha))
    L1 = len(ws) + 1
    if C_W is None:
        C_W = 2 / (1 + al * al)
    cw = [float(v) for v in _per_layer(C_W, L1, "C_W", positive=True)]
    lw = cw if lambda_W is None else [float(v) for v in _per_layer(lambda_W, L1, "lambda_W")]
    lb = [float(v) for v in _per_layer(lambda_b, L1, "lambda_b")]
    q = float(_num(x_norm2_over_n0, "x_norm2_over_n0", positive=True))
    rng = np.random.default_rng(seed)
    N = int(n_samples)
    nprev = [1, *ws]
    c = [cw[m] / nprev[m] for m in range(L1)]
    B = [rng.binomial(n, 0.5, N) for n in ws]
    Sp = [rng.gamma(b / 2, 2.0) for b in B]
    Sm = [rng.gamma((n - b) / 2, 2.0) for n, b in zip(ws, B, strict=True)]
    X = [sp_ + al * al * sm for sp_, sm in zip(Sp, Sm, strict=True)]
    X.append(rng.chisquare(1, N))
    r = [np.full(N, q)]
    for ell in range(1, L1):
        r.append(r[-1] * nprev[ell - 1] * c[ell - 1] * X[ell - 1] / nprev[ell])
    theta = lb[L1 - 1] + lw[L1 - 1] * r[L1 - 1]
    P = c[L1 - 1] * X[L1 - 1]
    G = np.ones(N)
    for ell in range(L1 - 1, 0, -1):
        b, n = B[ell - 1], ws[ell - 1]
        Xl = X[ell - 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            cos2 = np.where(Xl > 0, Sp[ell - 1] / Xl, 0.0)     # B = 0 (and α = 0): no active part
        sin2 = 1 - cos2
        inner = (b > 0) & (b < n)
        p = cos2 + al * al * sin2
        qq = np.where(inner, sin2 + al * al * cos2, 0.0)
        rr = (1 - al * al) * np.sqrt(cos2 * sin2)
        om = rng.standard_normal(N)
        Yp = rng.gamma(np.maximum(b - 1, 0) / 2, 2.0)
        Ym = rng.gamma(np.maximum(n - b - 1, 0) / 2, 2.0)
        s = np.sqrt(c[ell] * G)
        a = np.sqrt(P)
        G = a * a * p - 2 * a * s * om * rr + s * s * (om * om * qq + Yp + al * al * Ym)
        theta = theta + G * (lb[ell - 1] + lw[ell - 1] * r[ell - 1])
        P = P * c[ell - 1] * Xl
    return theta
