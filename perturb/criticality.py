"""Signal propagation: fixed points, criticality, depth scales, universality classes (docs/reference.md §2).

The length map ``q ↦ C_b + C_W <σ²>_q`` and, at its fixed point ``q*``, the correlation map
``c ↦ (C_b + C_W <σ(u_1)σ(u_2)>_{q*[[1,c],[c,1]]}) / q*`` of [SPK] and [PDLT ch. 5]:

* ``χ_∥ = C_W ∂_q<σ²>_q`` at q* (stability of the length; ``ξ_q = -1/log χ_∥``);
* ``χ_⊥ = χ_1 = C_W <σ'²>_{q*}`` (slope of the correlation map at c = 1: order/chaos);
* ``c*``: the stable fixed point of the correlation map (1 in the ordered phase, < 1 in the
  chaotic phase); ``χ_c = C_W <σ'(u_1)σ'(u_2)>`` at (q*, c*); ``ξ_c = -1/log χ_c``;
* phase: ``"ordered"`` (χ_⊥ < 1), ``"chaotic"`` (χ_⊥ > 1), ``"critical"`` (χ_⊥ = 1 within the
  working tolerance); depth scales are ``inf`` where the χ equals 1.

Every Gaussian expectation goes through :func:`perturb.gaussian.expect`: the fast path
(closed forms or vectorised quadrature, float64) works on whole arrays of (C_W, C_b); the
precise path (``dps=D``) polishes the same roots with ``mpmath.findroot`` inside
``mpmath.workdps``.

>>> fp = fixed_point("tanh", 2.0, 0.1)
>>> fp.phase, round(fp.q_star, 10)
('chaotic', 0.8146440101)
>>> cp = critical_point("erf", 0.0)
>>> round(cp.C_W, 12), cp.universality       # π/4 at C_b = 0
(0.785398163397, 'K*=0')
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, fields

import mpmath
import numpy as np
import sympy as sp

from .activations import Activation, Z, get_activation
from .errors import PerturbError
from .gaussian import closed_form_of, expect, zvars

__all__ = [
    "vertex_depth_series",
    "FixedPoint",
    "FixedPointGrid",
    "CriticalPoint",
    "UniversalityClass",
    "DepthSeries",
    "PhaseDiagram",
    "fixed_point",
    "fixed_point_grid",
    "critical_point",
    "critical_points",
    "critical_line",
    "universality_class",
    "gaussian_series",
    "critical_depth_series",
    "iterate_kernels",
    "phase_diagram",
    "plot_phase_diagram",
    "divergence_threshold",
]

#: |χ_⊥ - 1| below which a float64 point is called critical
FAST_TOL = 1e-10
#: the q range scanned for fixed points by the fast path (log-spaced, plus q = 0)
Q_MIN, Q_MAX, Q_POINTS = 1e-12, 1e4, 161


# --------------------------------------------------------------------------- input checks


def _check_params(C_W, C_b) -> None:
    cw = np.asarray(C_W, dtype=float)
    cb = np.asarray(C_b, dtype=float)
    if not np.all(np.isfinite(cw)) or not np.all(np.isfinite(cb)):
        raise PerturbError("C_W and C_b must be finite numbers")
    if np.any(cw <= 0):
        raise PerturbError(f"C_W must be > 0 (it is a weight variance), got C_W = {cw.min():g}")
    if np.any(cb < 0):
        raise PerturbError(f"C_b must be >= 0 (it is a bias variance), got C_b = {cb.min():g}")


def _act(activation) -> Activation:
    act = get_activation(activation)
    if act.is_generic:
        raise PerturbError("criticality needs a concrete activation (e.g. tanh, relu, erf), not 'generic'")
    if act.derivative().has(sp.DiracDelta):  # step: σ'² has no Gaussian expectation
        raise PerturbError(f"χ_⊥ = C_W<σ'²>_K is undefined for activation '{act.name}' (its derivative has a "
                           "Dirac delta); fixed points, susceptibilities and criticality need an activation with "
                           "an ordinary derivative (relu, tanh, erf, ...)")
    return act


# --------------------------------------------------------------------------- integrands


@dataclass(frozen=True)
class _Integrands:
    """The integrands of one activation that the length and correlation maps need."""

    sq: sp.Expr  # σ²
    dsq: sp.Expr  # σ'²
    dq: sp.Expr | None  # σ'² + σσ''  (= ½ (σ²)'', so ∂_q<σ²>_q = <dq>_q) for smooth σ
    sqz2: sp.Expr  # σ² z²  (kinked σ: ∂_q<σ²>_q = (<σ² z²> - q<σ²>) / (2q²))
    pair: sp.Expr  # σ(z_1)σ(z_2) / pair_k
    dpair: sp.Expr  # σ'(z_1)σ'(z_2) / dpair_k
    at0: tuple[float, float, float]  # σ(0)², σ'(0)², σ'(0)² + σ(0)σ''(0)  (nan if kinked at 0)
    pair_k: sp.Expr = sp.S.One  # constant factors pulled out (the closed-form registry matches
    dpair_k: sp.Expr = sp.S.One  # products like exp(-z_1²)exp(-z_2²) only without them)


@functools.lru_cache(maxsize=64)
def _integrands(act: Activation) -> _Integrands:
    s, d1 = act.expr, act.derivative(1)
    z1, z2 = zvars(2)
    smooth = act.is_smooth
    dq = sp.expand(d1**2 + s * act.derivative(2)) if smooth else None
    if 0.0 in act.kinks:
        at0 = (float(s.subs(Z, 0) ** 2), math.nan, math.nan)
    else:
        a0 = float(s.subs(Z, 0))
        b0 = float(d1.subs(Z, 0))
        c0 = float((d1**2 + s * act.derivative(2)).subs(Z, 0))
        at0 = (a0 * a0, b0 * b0, c0)
    ks, rs = s.as_independent(Z, as_Add=False)
    kd, rd = d1.as_independent(Z, as_Add=False)
    return _Integrands(sq=s**2, dsq=d1**2, dq=dq, sqz2=s**2 * Z**2, pair=rs.subs(Z, z1) * rs.subs(Z, z2),
                       dpair=rd.subs(Z, z1) * rd.subs(Z, z2), at0=at0, pair_k=ks**2, dpair_k=kd**2)


def _e1(f, q, dps):
    """<f>_q: numpy array (fast) or mpf (dps)."""
    if dps:
        return expect(f, q, method="mpmath", dps=dps)
    # closed form when registered; otherwise composite Gauss–Legendre panels whose width shrinks
    # with the variance (~1e-15 for tanh-like integrands up to q ~ 10³), Chebyshev in log q for
    # large grids
    return np.asarray(expect(f, q), dtype=float)


def _moments(act: Activation, q, dps=None):
    """(<σ²>_q, ∂_q<σ²>_q, <σ'²>_q) at q (array, or an mpf with dps)."""
    ig = _integrands(act)
    if _is_scale_invariant(act):
        m2 = _scale_invariant_m2(act, dps)
        return (m2 * q, m2 + 0 * q, m2 + 0 * q)
    s0 = _e1(ig.sq, q, dps)
    p = _e1(ig.dsq, q, dps)
    if ig.dq is not None:
        s1 = _e1(ig.dq, q, dps)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            s1 = (_e1(ig.sqz2, q, dps) - q * s0) / (2 * q * q)
        if not dps:
            s1 = np.where(np.asarray(q) == 0, ig.at0[2], s1)
    return s0, s1, p


def _scale_invariant_m2(act: Activation, dps=None):
    """<σ²>_1 (= <σ'²>_1) of a scale-invariant σ."""
    if dps:
        return expect(act.expr**2, 1, method="mpmath", dps=dps)
    return float(expect(act.expr**2, 1.0))


@functools.lru_cache(maxsize=64)
def _is_scale_invariant(act: Activation) -> bool:
    """σ(λz) = λσ(z) for λ > 0 (checked at several λ and z, to 1e-12)."""
    if act.is_generic or float(act.expr.subs(Z, 0)) != 0.0:
        return False
    f = act.numpy()
    zs = np.array([-3.1, -1.7, -0.6, -0.05, 0.07, 0.5, 1.3, 2.9])
    base = f(zs)
    for lam in (0.25, 0.5, 2.0, 7.0):
        if not np.allclose(f(lam * zs), lam * base, rtol=1e-12, atol=1e-14):
            return False
    return bool(np.any(base != 0))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FixedPoint:
    """Fixed point of the kernel recursion at one (C_W, C_b), with its susceptibilities.

    Values are floats (fast path) or ``mpmath.mpf`` (``dps``); depth scales are ``inf`` where
    the corresponding χ is 1.  ``note`` says what is special (line of fixed points, c* at float64
    precision, ...).
    """

    activation: str
    C_W: float
    C_b: float
    q_star: float
    c_star: float
    chi_parallel: float
    chi_perp: float
    chi_c: float
    xi_q: float
    xi_c: float
    phase: str
    dps: int | None = None
    note: str | None = None

    def as_dict(self) -> dict:
        """The CLI/JSON keys; infinite depth scales become ``None`` (JSON null)."""
        out = {k: getattr(self, k) for k in ("q_star", "c_star", "chi_parallel", "chi_perp", "chi_c",
                                              "xi_q", "xi_c", "phase")}
        for k in ("xi_q", "xi_c"):
            if not mpmath.isfinite(out[k]):
                out[k] = None
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class FixedPointGrid:
    """Vectorised fixed points over arrays of (C_W, C_b) (broadcast shape ``shape``).

    Points with no finite fixed point have ``phase == "divergent"`` and NaN in every number;
    nothing else is NaN.
    """

    activation: str
    C_W: np.ndarray
    C_b: np.ndarray
    q_star: np.ndarray
    c_star: np.ndarray
    chi_parallel: np.ndarray
    chi_perp: np.ndarray
    chi_c: np.ndarray
    xi_q: np.ndarray
    xi_c: np.ndarray
    phase: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.q_star.shape


# --------------------------------------------------------------------------- the length map


@functools.lru_cache(maxsize=64)
def _q_grid_table(act: Activation) -> tuple[np.ndarray, np.ndarray]:
    qg = np.concatenate([[0.0], np.logspace(math.log10(Q_MIN), math.log10(Q_MAX), Q_POINTS - 1)])
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            s0 = _e1(_integrands(act).sq, qg, None)
        except PerturbError:  # divergent beyond some q: evaluate piecewise, inf where divergent
            s0 = np.full_like(qg, np.inf)
            for i, q in enumerate(qg):
                try:
                    s0[i] = float(_e1(_integrands(act).sq, q, None))
                except PerturbError:
                    break
    s0 = np.where(np.isfinite(s0), s0, np.inf)
    return qg, s0


def divergence_threshold(activation, C_b: float = 0.0) -> float:
    """The largest C_W with a finite fixed point of the length map at C_b: sup_q (q - C_b)/<σ²>_q.

    >>> round(divergence_threshold("relu"), 6)
    2.0
    >>> round(divergence_threshold("exp(z)"), 5)       # 1/(2e): max of q e^{-2q}
    0.18394
    """
    act = _act(activation)
    if _is_scale_invariant(act):
        return 1.0 / _scale_invariant_m2(act)
    qg, s0 = _q_grid_table(act)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(s0 > 0, (qg - C_b) / s0, -np.inf)
    i = int(np.argmax(r))
    if i in (0, len(qg) - 1):
        return float(r[i])
    import scipy.optimize as so

    res = so.minimize_scalar(lambda lq: -float((math.exp(lq) - C_b) / _e1(_integrands(act).sq, math.exp(lq), None)),
                             bounds=(math.log(qg[i - 1] if qg[i - 1] > 0 else qg[i] / 2),  # the grid starts at q = 0
                                     math.log(qg[i + 1])), method="bounded",
                             options={"xatol": 1e-12})
    return float(max(r[i], -res.fun))


def _solve_q_fast(act: Activation, C_W: np.ndarray, C_b: np.ndarray, q0: float):
    """q* for every point (flat arrays); returns (q, ok) with ok False where it diverges."""
    n = C_W.size
    if _is_scale_invariant(act):
        m2 = _scale_invariant_m2(act)
        slope = C_W * m2
        q = np.full(n, np.nan)
        line = (np.abs(slope - 1) <= FAST_TOL) & (C_b == 0)
        conv = slope < 1 - FAST_TOL
        q[conv] = C_b[conv] / (1 - slope[conv])
        q[line] = q0
        return q, conv | line
    qg, s0 = _q_grid_table(act)
    g = C_b[:, None] + C_W[:, None] * s0[None, :] - qg[None, :]  # (n, Q)
    i0 = int(np.searchsorted(qg, q0))
    lo = np.zeros(n)
    hi = np.zeros(n)
    ok = np.ones(n, bool)
    exact0 = np.zeros(n, bool)
    gq0 = C_b + C_W * float(_e1(_integrands(act).sq, q0, None)) - q0
    for k in range(n):
        gk = g[k]
        if gq0[k] > 0:  # flows up: first grid point above q0 with g <= 0
            idx = np.nonzero(gk[i0:] <= 0)[0]
            if idx.size == 0:
                ok[k] = False
                continue
            j = i0 + idx[0]
            lo[k], hi[k] = (q0 if j == i0 else qg[j - 1]), qg[j]
        elif gq0[k] < 0:  # flows down: last grid point below q0 with g >= 0 (g(0) >= 0 always)
            idx = np.nonzero(gk[:i0] >= 0)[0]
            j = idx[-1]
            if j == 0 and gk[0] == 0 and (i0 == 1 or gk[1] < 0):
                exact0[k] = True
            lo[k], hi[k] = qg[j], (q0 if j + 1 >= i0 else qg[j + 1])
        else:
            lo[k] = hi[k] = q0
    q = np.where(ok, 0.5 * (lo + hi), np.nan)
    q[exact0] = 0.0
    act_idx = np.nonzero(ok & ~exact0 & (hi > lo))[0]
    # safeguarded Newton on g(q) = C_b + C_W<σ²>_q - q inside [lo, hi]
    for _ in range(60):
        if act_idx.size == 0:
            break
        qa = q[act_idx]
        s0a, s1a, _ = _moments(act, qa)
        ga = C_b[act_idx] + C_W[act_idx] * s0a - qa
        dga = C_W[act_idx] * s1a - 1
        lo_a, hi_a = lo[act_idx], hi[act_idx]
        # keep the bracket g(lo) >= 0 >= g(hi) (true whether the map flows up or down to q*)
        move_lo = ga > 0
        lo_a = np.where(move_lo, qa, lo_a)
        hi_a = np.where(move_lo, hi_a, qa)
        with np.errstate(divide="ignore", invalid="ignore"):
            qn = qa - ga / dga
        bad = ~np.isfinite(qn) | (qn <= lo_a) | (qn >= hi_a)
        qn = np.where(bad, 0.5 * (lo_a + hi_a), qn)
        lo[act_idx], hi[act_idx] = lo_a, hi_a
        q[act_idx] = qn
        done = (np.abs(qn - qa) <= 1e-14 * np.maximum(qn, 1e-300) + 1e-300) | (hi_a - lo_a <= 4e-16 * hi_a)
        act_idx = act_idx[~done]
    return q, ok


def _divergence_message(act: Activation, C_W: float, C_b: float, q0: float) -> str:
    thr = divergence_threshold(act, C_b)
    if C_W > thr:
        return (f"no finite fixed point: the variance diverges for C_W > {thr:.8g} at C_b = {C_b:g} "
                f"({act.name}, got C_W = {C_W:g})")
    if _is_scale_invariant(act):
        return (f"no finite fixed point: {act.name} is scale-invariant, so at C_W = {thr:.8g} the variance "
                f"grows linearly in depth for C_b = {C_b:g} > 0")
    return (f"no finite fixed point reachable from K^(1) = {q0:g}: the variance diverges ({act.name}, "
            f"C_W = {C_W:g}, C_b = {C_b:g}; the fixed points below are unstable)")


# --------------------------------------------------------------------------- the correlation map


def _pair_matrix(q, c):
    q = np.asarray(q, dtype=float)
    c = np.asarray(c, dtype=float)
    M = np.empty(q.shape + (2, 2))
    M[..., 0, 0] = q
    M[..., 1, 1] = q
    M[..., 0, 1] = M[..., 1, 0] = q * c
    return M


def _solve_c_fast(act: Activation, C_W, C_b, q):
    """Stable correlation fixed point c* in [0, 1) where χ_⊥ > 1 (flat arrays).

    h(c) = map(c) - c is convex on [0, 1] (Mehler: map(c) = Σ k! a_k² c^k with a_k >= 0
    coefficients), h(0) = map(0) >= 0 and h(1) = 0 with h'(1) = χ_⊥ - 1 > 0, so Newton from
    c = 0 increases monotonically to the unique root in [0, 1).
    """
    ig = _integrands(act)
    c = np.zeros_like(q)
    idx = np.arange(q.size)
    for _ in range(60):
        if idx.size == 0:
            break
        qa, ca = q[idx], c[idx]
        M = _pair_matrix(qa, ca)
        h = (C_b[idx] + C_W[idx] * float(ig.pair_k) * np.asarray(expect(ig.pair, M), dtype=float)) / qa - ca
        dh = C_W[idx] * float(ig.dpair_k) * np.asarray(expect(ig.dpair, M), dtype=float) - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(dh < 0, -h / dh, 0.0)
        step = np.where(np.isfinite(step), np.maximum(step, 0.0), 0.0)
        cn = np.minimum(ca + step, 1.0)
        c[idx] = cn
        done = (np.abs(cn - ca) <= 1e-14) | (h <= 0)
        idx = idx[~done]
    return c


def _chi_c_fast(act: Activation, C_W, q, c):
    ig = _integrands(act)
    return C_W * float(ig.dpair_k) * np.asarray(expect(ig.dpair, _pair_matrix(q, c)), dtype=float)


# --------------------------------------------------------------------------- public: fixed points


def _xi(chi):
    with np.errstate(divide="ignore", invalid="ignore"):
        chi = np.asarray(chi, dtype=float)
        out = np.where(chi < 1, -1.0 / np.log(np.where(chi > 0, chi, np.nan)), np.inf)
        return np.where(chi <= 0, 0.0, out)


def fixed_point_grid(activation, C_W, C_b, *, q0: float = 1.0) -> FixedPointGrid:
    """Fixed points, susceptibilities, depth scales and phases over arrays of (C_W, C_b), float64.

    ``C_W`` and ``C_b`` broadcast together.  ``q0`` is the first-layer variance K^{(1)} the length
    map starts from (it selects the basin when there are several stable fixed points, and is
    q* on the line of fixed points of scale-invariant activations at C_b = 0).

    >>> g = fixed_point_grid("tanh", [0.5, 1.5, 3.0], 0.0)
    >>> g.phase.tolist()
    ['ordered', 'chaotic', 'chaotic']
    """
    act = _act(activation)
    _check_params(C_W, C_b)
    cw, cb = np.broadcast_arrays(np.asarray(C_W, dtype=float), np.asarray(C_b, dtype=float))
    shape = cw.shape
    cw, cb = cw.ravel().copy(), cb.ravel().copy()
    q, ok = _solve_q_fast(act, cw, cb, q0)
    n = q.size
    chi_par = np.full(n, np.nan)
    chi_perp = np.full(n, np.nan)
    if np.any(ok):
        qo = q[ok]
        _, s1, p = _moments(act, qo)
        at0 = _integrands(act).at0
        zero = qo == 0
        if np.any(zero):
            s1 = np.where(zero, at0[2], s1)
            p = np.where(zero, at0[1], p)
        chi_par[ok] = cw[ok] * s1
        chi_perp[ok] = cw[ok] * p
    phase = np.full(n, "divergent", dtype=object)
    phase[ok & (chi_perp < 1 - FAST_TOL)] = "ordered"
    phase[ok & (chi_perp > 1 + FAST_TOL)] = "chaotic"
    phase[ok & (np.abs(chi_perp - 1) <= FAST_TOL)] = "critical"
    c = np.where(ok, 1.0, np.nan)
    chi_c = chi_perp.copy()
    ch = np.nonzero(phase == "chaotic")[0]
    if ch.size:
        c[ch] = _solve_c_fast(act, cw[ch], cb[ch], q[ch])
        chi_c[ch] = _chi_c_fast(act, cw[ch], q[ch], c[ch])
    xi_q = np.where(ok, _xi(chi_par), np.nan)
    xi_c = np.where(ok, _xi(chi_c), np.nan)
    r = lambda a: a.reshape(shape)  # noqa: E731
    return FixedPointGrid(act.name, r(cw), r(cb), r(q), r(c), r(chi_par), r(chi_perp), r(chi_c), r(xi_q),
                          r(xi_c), r(phase.astype(str)))


def fixed_point(activation, C_W: float, C_b: float, *, dps: int | None = None, q0: float = 1.0,
                precise_two_point: bool | None = None) -> FixedPoint:
    """The fixed point q*, c*, χ_∥, χ_⊥, χ_c, ξ_q, ξ_c and the phase at one (C_W, C_b).

    Args:
        activation: an activation spec (``"tanh"``, ``"relu"``, an expression in z).
        C_W, C_b: weight and bias variances (C_W > 0, C_b >= 0).
        dps: polish every root with ``mpmath.findroot`` at ``dps`` digits (values are ``mpf``).
        q0: the first-layer variance K^{(1)} the length map starts from (basin selection; the
            value of q* on the line of fixed points of ReLU-like activations at C_b = 0).
        precise_two_point: in the chaotic phase c* and χ_c need two-dimensional integrals; with
            ``dps`` they are computed by mpmath when the activation has a closed-form two-point
            integral (erf, sin, ReLU family, ...) or when this flag is True (minutes per point for
            tanh); otherwise they keep float64 accuracy and ``note`` says so.

    Raises:
        PerturbError: C_W <= 0, C_b < 0, or no finite fixed point (the message gives the C_W
            beyond which the variance diverges).

    >>> fp = fixed_point("relu", 1.0, 0.5)
    >>> fp.q_star, fp.phase, round(fp.xi_q, 6)
    (1.0, 'ordered', 1.442695)
    """
    act = _act(activation)
    _check_params(C_W, C_b)
    C_W, C_b = float(C_W), float(C_b)
    g = fixed_point_grid(act, C_W, C_b, q0=q0)
    if g.phase[()] == "divergent":
        raise PerturbError(_divergence_message(act, C_W, C_b, q0))
    notes = []
    if _is_scale_invariant(act) and C_b == 0 and g.phase[()] == "critical":
        notes.append(f"line of fixed points: every q is fixed (scale-invariant, C_W = {C_W:g}, C_b = 0); "
                     f"q* = K^(1) = {q0:g}")
    if not dps:
        return FixedPoint(act.name, C_W, C_b, float(g.q_star), float(g.c_star), float(g.chi_parallel),
                          float(g.chi_perp), float(g.chi_c), float(g.xi_q), float(g.xi_c), str(g.phase[()]),
                          None, "; ".join(notes) or None)
    return _fixed_point_mp(act, C_W, C_b, g, dps, q0, precise_two_point, notes)


def _fixed_point_mp(act, C_W, C_b, g, dps, q0, precise_two_point, notes) -> FixedPoint:
    ig = _integrands(act)
    with mpmath.workdps(dps + 10):
        cw, cb = mpmath.mpf(C_W), mpmath.mpf(C_b)
        d = dps + 10
        qf = float(g.q_star)
        if _is_scale_invariant(act):
            m2 = _scale_invariant_m2(act, d)
            q = mpmath.mpf(q0) if notes else cb / (1 - cw * m2)
            s1 = p = m2
        elif qf == 0.0:
            q = mpmath.mpf(0)
            s = act.expr
            s1 = mpmath.mpmathify(sp.N((act.derivative(1) ** 2 + s * act.derivative(2)).subs(Z, 0), d))
            p = mpmath.mpmathify(sp.N((act.derivative(1) ** 2).subs(Z, 0), d))
        else:
            def gfun(x):
                return cb + cw * _e1(ig.sq, x, d) - x

            q = mpmath.findroot(gfun, mpmath.mpf(qf), tol=mpmath.mpf(10) ** (-dps - 5))
            _, s1, p = _moments(act, q, d)
        chi_par, chi_perp = cw * s1, cw * p
        tol = mpmath.mpf(10) ** (-(dps // 2))
        phase = "critical" if abs(chi_perp - 1) <= tol else ("ordered" if chi_perp < 1 else "chaotic")
        if phase != "chaotic":
            c, chi_c = mpmath.mpf(1), chi_perp
        else:
            has_closed = closed_form_of(ig.pair, 2) is not None and closed_form_of(ig.dpair, 2) is not None
            if has_closed or precise_two_point:
                kp = mpmath.mpmathify(sp.N(ig.pair_k, d))
                kd = mpmath.mpmathify(sp.N(ig.dpair_k, d))

                def e2(f, cc):
                    return expect(f, [[q, q * cc], [q * cc, q]], method="mpmath", dps=d)

                def hfun(cc):
                    return (cb + cw * kp * e2(ig.pair, cc)) / q - cc

                c0 = mpmath.mpf(float(g.c_star))
                c = c0 if hfun(c0) == 0 else mpmath.findroot(hfun, c0, tol=mpmath.mpf(10) ** (-dps - 5))
                chi_c = cw * kd * e2(ig.dpair, c)
            else:
                c, chi_c = mpmath.mpf(float(g.c_star)), mpmath.mpf(float(g.chi_c))
                notes.append(f"c_star, chi_c, xi_c at float64 accuracy (no closed form for the two-point "
                             f"integral of {act.name}; pass precise_two_point=True for mpmath, slow)")

        def xi(chi):
            return mpmath.inf if chi >= 1 else (-1 / mpmath.log(chi) if chi > 0 else mpmath.mpf(0))

        vals = [+v for v in (q, c, chi_par, chi_perp, chi_c, xi(chi_par), xi(chi_c))]
    with mpmath.workdps(dps):
        vals = [+v for v in vals]
    return FixedPoint(act.name, C_W, C_b, *vals, phase, dps, "; ".join(notes) or None)


# --------------------------------------------------------------------------- the critical line


@dataclass(frozen=True)
class CriticalPoint:
    """The order/chaos boundary χ_⊥ = 1 at one C_b: critical C_W, K* there, and χ_∥ there.

    ``K_star`` is None where it is not finite or not unique (scale-invariant activations);
    ``universality`` is the class of the activation (see :func:`universality_class`).
    """

    activation: str
    C_b: float
    C_W: float
    K_star: float | None
    chi_parallel: float | None
    universality: str
    note: str | None = None

    def as_dict(self) -> dict:
        out = {"C_W": self.C_W, "K_star": self.K_star, "class": self.universality}
        if self.chi_parallel is not None:
            out["chi_parallel"] = self.chi_parallel
        if self.note:
            out["note"] = self.note
        return out


def _critical_task(task) -> CriticalPoint:
    activation, cb, dps = task
    return critical_point(activation, cb, dps=dps)


def critical_points(activation, C_b, *, dps: int | None = None, executor=None) -> list[CriticalPoint]:
    """:func:`critical_point` at each C_b of a list, each point one task of ``executor``.

    ``executor`` is a :class:`perturb.montecarlo.Executor` (local processes or a Dask cluster;
    default serial); every point is computed on its own, so the numbers do not depend on it.

    >>> tuple(round(cp.C_W, 7) for cp in critical_points("tanh", [0.0, 0.05]))
    (1.0, 1.7609546)
    """
    act = _act(activation)
    cbs = [float(c) for c in np.atleast_1d(np.asarray(C_b, dtype=float))]
    _check_params(1.0, cbs)
    from .montecarlo._executor import Executor

    return (executor or Executor.serial()).map(_critical_task, [(act, cb, dps) for cb in cbs])


def _critical_q_fast(act: Activation, C_b: np.ndarray) -> np.ndarray:
    """q solving q - <σ²>_q/<σ'²>_q = C_b (the joint solution of χ_⊥ = 1 and the length map)."""
    qg, _ = _q_grid_table(act)
    ig = _integrands(act)
    qg = qg[qg <= 1e3]
    with np.errstate(over="ignore", invalid="ignore"):
        s0 = _e1(ig.sq, qg, None)
        p = _e1(ig.dsq, qg, None)
    at0 = ig.at0
    with np.errstate(divide="ignore", invalid="ignore"):
        F = qg - np.where(qg == 0, (at0[0] / at0[1]) if at0[1] > 0 else np.inf, s0 / p)
    F = np.where(np.isfinite(F), F, np.nan)  # overflowing closed forms (sin, cos at huge q): no root there
    out = np.full(C_b.shape, np.nan)
    lo = np.full(C_b.shape, np.nan)
    hi = np.full(C_b.shape, np.nan)
    for k, cb in enumerate(C_b):
        Fk = F - cb
        if Fk[0] == 0:
            out[k] = 0.0
            continue
        idx = np.nonzero((Fk[:-1] < 0) & (Fk[1:] >= 0))[0]
        if idx.size:
            lo[k], hi[k] = qg[idx[0]], qg[idx[0] + 1]
    todo = np.nonzero(np.isfinite(lo))[0]
    # vectorised bisection of F(q) = q - <σ²>_q/<σ'²>_q - C_b on the brackets (F(lo) < 0 <= F(hi))
    for _ in range(64):
        if todo.size == 0:
            break
        mid = 0.5 * (lo[todo] + hi[todo])
        Fm = mid - _e1(ig.sq, mid, None) / _e1(ig.dsq, mid, None) - C_b[todo]
        neg = Fm < 0
        lo[todo] = np.where(neg, mid, lo[todo])
        hi[todo] = np.where(neg, hi[todo], mid)
        todo = todo[hi[todo] - lo[todo] > 2e-16 * hi[todo]]
    ok = np.isfinite(lo) & np.isnan(out)
    out[ok] = 0.5 * (lo[ok] + hi[ok])
    return out


def critical_line(activation, C_b) -> tuple[np.ndarray, np.ndarray]:
    """The χ_⊥ = 1 boundary: (C_W, K*) at each C_b (float64, arrays; NaN where there is none).

    >>> cw, q = critical_line("tanh", [0.0, 0.05])
    >>> [round(float(v), 7) for v in cw], [round(float(v), 7) for v in q]      # docs/reference.md §2
    ([1.0, 1.7609546], [0.0, 0.5700479])
    """
    act = _act(activation)
    cb = np.atleast_1d(np.asarray(C_b, dtype=float))
    _check_params(1.0, cb)
    if _is_scale_invariant(act):
        m2 = _scale_invariant_m2(act)
        return np.full(cb.shape, 1.0 / m2), np.where(cb == 0, np.nan, np.inf)
    q = _critical_q_fast(act, cb)
    ok = np.isfinite(q)
    cw = np.full(cb.shape, np.nan)
    if np.any(ok):
        p = _e1(_integrands(act).dsq, q[ok], None)
        p = np.where(q[ok] == 0, _integrands(act).at0[1], p)
        cw[ok] = 1.0 / p
    return cw, q


def critical_point(activation, C_b: float = 0.0, *, dps: int | None = None) -> CriticalPoint:
    """The critical C_W at C_b (χ_⊥ = 1 with q at the fixed point), K* there and the class.

    Solves q - <σ²>_q / <σ'²>_q = C_b (one equation: C_W = 1/<σ'²>_q eliminated), then
    C_W = 1/<σ'²>_{q}; with ``dps`` the root is polished by ``mpmath.findroot``.

    >>> cp = critical_point("tanh", 0.3, dps=20)
    >>> mpmath.nstr(cp.C_W, 9), mpmath.nstr(cp.K_star, 9)       # docs/reference.md §2
    ('2.50512719', '1.46116945')
    """
    act = _act(activation)
    _check_params(1.0, C_b)
    C_b = float(C_b)
    cls = universality_class(act).name
    if _is_scale_invariant(act):
        m2 = _scale_invariant_m2(act, dps + 5 if dps else None)
        cw = 1 / m2
        if dps:
            with mpmath.workdps(dps):
                cw = +cw
        if C_b == 0:
            note = "line of fixed points: at the critical C_W every K is fixed (K* = K^(1))"
        else:
            note = (f"scale-invariant: the χ_1 = 1 boundary is C_W = {float(cw):g} for every C_b, but for "
                    "C_b > 0 the variance diverges there (K* = C_b/(1 - C_W<σ²>_1) → ∞); criticality needs C_b = 0")
        return CriticalPoint(act.name, C_b, cw, None, cw * m2 if C_b == 0 else None, cls, note)
    q = float(_critical_q_fast(act, np.array([C_b]))[0])
    if not math.isfinite(q):
        raise PerturbError(f"no critical point for {act.name} at C_b = {C_b:g}: χ_⊥ = C_W<σ'²>_q = 1 has no "
                           f"solution with q at the fixed point (q <= 1e3)")
    ig = _integrands(act)
    if not dps:
        p = ig.at0[1] if q == 0 else float(_e1(ig.dsq, q, None))
        s1 = ig.at0[2] if q == 0 else float(_moments(act, np.array(q))[1])
        return CriticalPoint(act.name, C_b, 1.0 / p, q, s1 / p, cls)
    d = dps + 10
    with mpmath.workdps(d):
        if q == 0:
            qm = mpmath.mpf(0)
            p = mpmath.mpmathify(sp.N((act.derivative(1) ** 2).subs(Z, 0), d))
            s1 = mpmath.mpmathify(sp.N((act.derivative(1) ** 2 + act.expr * act.derivative(2)).subs(Z, 0), d))
        else:
            cb = mpmath.mpf(C_b)
            qm = mpmath.findroot(lambda x: x - _e1(ig.sq, x, d) / _e1(ig.dsq, x, d) - cb, mpmath.mpf(q),
                                 tol=mpmath.mpf(10) ** (-dps - 5))
            s0, s1, p = _moments(act, qm, d)
        vals = (1 / p, qm, s1 / p)
    with mpmath.workdps(dps):
        vals = [+v for v in vals]
    return CriticalPoint(act.name, C_b, vals[0], vals[1], vals[2], cls)


# --------------------------------------------------------------------------- universality classes


@dataclass(frozen=True)
class UniversalityClass:
    """The criticality class of an activation [PDLT ch. 5] and the numbers that decide it.

    ``name``: ``"scale-invariant"`` (σ(λz) = λσ(z), λ > 0: relu, leaky_relu, linear, abs);
    ``"K*=0"`` (σ(0) = 0, σ'(0) ≠ 0, smooth at 0, a_1 < 0: tanh, erf, sin) — critical at C_b = 0,
    C_W = 1/σ'(0)², K^{(ℓ)} → 0 like 1/(-a_1 ℓ); ``"half-stable"`` (σ(0) = 0, σ'(0) ≠ 0 but
    a_1 > 0: SiLU/swish, GELU — K* = 0 attracts only from below, so it is not reached from K > 0);
    ``"K*=0 (a1=0)"`` when a_1 vanishes; ``"other"`` (σ(0) ≠ 0 or σ'(0) = 0: sigmoid, softplus,
    cos — no K* = 0 criticality; the χ_⊥ = 1 line still exists where :func:`critical_point`
    finds it).

    ``a1``, ``a2``: the expansion at C_b = 0, C_W = 1/σ'(0)² of the length map
    K' = K + a1 K² + a2 K³ + ...; ``p_perp``: χ_⊥(K) = 1 + p_perp K + ... (exact rationals/
    SymPy numbers derived from the Taylor series of σ).
    """

    name: str
    sigma0: sp.Expr
    sigma1: sp.Expr
    a1: sp.Expr | None = None
    a2: sp.Expr | None = None
    p_perp: sp.Expr | None = None
    description: str = field(default="", compare=False)


def gaussian_series(f: sp.Expr, order: int) -> list[sp.Expr]:
    """Coefficients c_n of <f>_K = Σ_{n<=order} c_n K^n (f analytic at 0): c_n = f^{(2n)}(0)/(2^n n!).

    This is the heat-equation expansion ∂_K <f>_K = ½ <f''>_K, i.e. Wick's theorem term by term.

    >>> gaussian_series(sp.tanh(Z)**2, 3)
    [0, 1, -2, 17/3]
    """
    f = sp.sympify(f)
    out = []
    for n in range(order + 1):
        d = sp.diff(f, Z, 2 * n).subs(Z, 0)
        out.append(sp.nsimplify(sp.simplify(d / (2**n * sp.factorial(n)))) if d.is_number else sp.simplify(d / (2**n * sp.factorial(n))))
    return out


@functools.lru_cache(maxsize=64)
def universality_class(activation) -> UniversalityClass:
    """Classify an activation by its behaviour at criticality (rule in :class:`UniversalityClass`).

    >>> universality_class("tanh").name, universality_class("tanh").a1
    ('K*=0', -2)
    >>> universality_class("gelu").name, universality_class("relu").name
    ('half-stable', 'scale-invariant')
    """
    act = _act(activation)
    s0 = act.expr.subs(Z, 0)
    if _is_scale_invariant(act):
        return UniversalityClass("scale-invariant", sp.Integer(0), sp.nan,
                                 description="σ(λz) = λσ(z): χ_∥ = χ_⊥ = C_W<σ²>_1, critical at C_b = 0 and "
                                             "C_W = 1/<σ²>_1 with a line of fixed points; K^(ℓ) = K^(1)")
    if 0.0 in act.kinks:
        return UniversalityClass("other", s0, sp.nan, description="not smooth at 0 and not scale-invariant")
    s1 = sp.simplify(act.derivative(1).subs(Z, 0))
    if sp.simplify(s0) != 0 or s1 == 0:
        return UniversalityClass("other", sp.simplify(s0), s1,
                                 description="σ(0) ≠ 0 or σ'(0) = 0: no K* = 0 criticality")
    c_sq = gaussian_series(act.expr**2, 3)
    c_dsq = gaussian_series(act.derivative(1) ** 2, 1)
    cw = 1 / s1**2
    a1 = sp.nsimplify(sp.simplify(cw * c_sq[2]))
    a2 = sp.nsimplify(sp.simplify(cw * c_sq[3]))
    p = sp.nsimplify(sp.simplify(cw * c_dsq[1]))
    if a1.is_zero:
        name = "K*=0 (a1=0)"
        desc = "a1 = 0: the approach to K* = 0 is set by a2"
    elif a1.is_negative:
        name = "K*=0"
        desc = f"critical at C_b = 0, C_W = 1/σ'(0)² = {cw}; K^(ℓ) ≈ 1/({-a1}·ℓ)"
    else:
        name = "half-stable"
        desc = (f"a1 = {a1} > 0: at C_b = 0, C_W = {cw} the fixed point K* = 0 repels every K > 0 "
                "(PDLT §5.3.3: SiLU/swish, GELU)")
    return UniversalityClass(name, sp.Integer(0), s1, a1, a2, p, desc)


# --------------------------------------------------------------------------- large depth at criticality


@dataclass(frozen=True)
class DepthSeries:
    """Large-ℓ behaviour of K^{(ℓ)} and of the diagonal NTK at criticality (λ_b = C_b = 0).

    K*=0 class: K^{(ℓ)} = A/ℓ + B log(ℓ)/ℓ² + O(1/ℓ²) with A = 1/(-a1), B = (a2 - a1²)/(-a1)³;
    Θ^{(ℓ)} → -r/p_perp + D ℓ^{p_perp A} (r = λ_W/C_W; ``ntk_exponent`` = p_perp·A), or
    Θ ≈ rA log ℓ when p_perp = 0, or growth like ℓ^{p_perp A} when p_perp > 0.
    Scale-invariant: K^{(ℓ)} = K^{(1)} and Θ^{(ℓ)} = ℓ r K^{(1)} (``A`` = None).
    """

    activation: str
    universality: str
    A: sp.Expr | None
    B: sp.Expr | None
    ntk_exponent: sp.Expr | None
    ntk_limit_per_r: sp.Expr | None
    text: str


def critical_depth_series(activation) -> DepthSeries:
    """The large-depth series of K^{(ℓ)} and Θ^{(ℓ)} at criticality, derived from the Taylor series of σ.

    >>> s = critical_depth_series("tanh")
    >>> s.A, s.B, s.ntk_exponent, s.ntk_limit_per_r
    (1/2, 5/24, -1, 1/2)
    """
    act = _act(activation)
    uc = universality_class(act)
    if uc.name == "scale-invariant":
        return DepthSeries(act.name, uc.name, None, None, sp.Integer(1), None,
                           "K^(ℓ) = K^(1) exactly; Θ^(ℓ) = ℓ (λ_W/C_W) K^(1)")
    if uc.name != "K*=0":
        raise PerturbError(f"{act.name} is in class '{uc.name}': the 1/ℓ series needs the K*=0 class "
                           "(σ(0) = 0, σ'(0) ≠ 0, a1 < 0) or a scale-invariant activation")
    A = sp.nsimplify(1 / -uc.a1)
    B = sp.nsimplify((uc.a2 - uc.a1**2) / (-uc.a1) ** 3)
    p = uc.p_perp
    expo = sp.nsimplify(p * A)
    lim = sp.nsimplify(-1 / p) if p.is_negative else None
    text = f"K^(ℓ) = ({A})/ℓ + ({B}) log ℓ/ℓ² + O(1/ℓ²);  Θ^(ℓ) "
    text += (f"→ ({lim})·λ_W/C_W + O(ℓ^({expo}))" if lim is not None else
             (f"≈ {A}·(λ_W/C_W) log ℓ" if p == 0 else f"∝ ℓ^{expo}"))
    return DepthSeries(act.name, uc.name, A, B, expo, lim, text)


def iterate_kernels(activation, C_W: float, C_b: float, K1: float, depth: int, *, lambda_W: float | None = None,
                    lambda_b: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal K^{(ℓ)} and Θ^{(ℓ)} for ℓ = 1..depth by iterating the recursions (float64).

    Θ^{(1)} = λ_b + (λ_W/C_W)(K^{(1)} - C_b); λ defaults to C (NTK parameterisation).

    >>> K, T = iterate_kernels("relu", 2.0, 0.0, 1.0, 4)
    >>> K.tolist(), T.tolist()
    ([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    """
    act = _act(activation)
    _check_params(C_W, C_b)
    lw = C_W if lambda_W is None else lambda_W
    lb = C_b if lambda_b is None else lambda_b
    ig = _integrands(act)
    K = np.empty(depth)
    T = np.empty(depth)
    K[0] = K1
    T[0] = lb + lw / C_W * (K1 - C_b)
    for ell in range(1, depth):
        k = K[ell - 1]
        s = float(_e1(ig.sq, k, None))
        p = ig.at0[1] if k == 0 else float(_e1(ig.dsq, k, None))
        K[ell] = C_b + C_W * s
        T[ell] = lb + lw * s + C_W * p * T[ell - 1]
    return K, T


# --------------------------------------------------------------------------- phase diagrams


@dataclass(frozen=True)
class PhaseDiagram:
    """The data behind a phase-diagram figure: a (C_b, C_W) grid and the critical line."""

    activation: str
    C_b: np.ndarray  # (nb,)
    C_W: np.ndarray  # (nw,)
    grid: FixedPointGrid  # shape (nw, nb)
    line_C_b: np.ndarray
    line_C_W: np.ndarray
    line_K_star: np.ndarray

    def as_dict(self) -> dict:
        g = self.grid
        xi_c = np.where(np.isfinite(g.xi_c), g.xi_c, -1.0)
        return {
            "activation": self.activation,
            "axes": {"C_b": self.C_b, "C_W": self.C_W, "layout": "arrays are [i_C_W][j_C_b]"},
            "phase": g.phase.tolist(),
            "q_star": np.where(np.isfinite(g.q_star), g.q_star, -1.0),
            "chi_perp": np.where(np.isfinite(g.chi_perp), g.chi_perp, -1.0),
            "xi_c": xi_c,
            "missing_value": "-1 marks an infinite depth scale or a divergent point (see phase)",
            "critical_line": {"C_b": self.line_C_b, "C_W": self.line_C_W,
                              "K_star": np.where(np.isfinite(self.line_K_star), self.line_K_star, -1.0)},
        }


#: grid points per block of a phase diagram: the blocks (rows of C_W) are the tasks an executor
#: maps, fixed by the grid alone, so every executor (serial, processes, Dask) gives the same bits
PHASE_BLOCK_POINTS = 1024


def _phase_block(task) -> FixedPointGrid:
    act, cw, cb, q0 = task
    return fixed_point_grid(act, cw[:, None], cb[None, :], q0=q0)


def phase_diagram(activation="tanh", C_b=None, C_W=None, *, n: int = 60, q0: float = 1.0,
                  executor=None) -> PhaseDiagram:
    """Compute the phase diagram on a grid (defaults: C_b ∈ [0, 2], C_W ∈ [0.5, 4.5], n × n).

    The grid is computed in blocks of rows (about :data:`PHASE_BLOCK_POINTS` points each) mapped
    by ``executor`` (a :class:`perturb.montecarlo.Executor`, e.g. on a Dask cluster; default
    serial) — the same numbers whichever executor runs them.

    >>> d = phase_diagram("tanh", n=8)
    >>> d.grid.shape, sorted(set(d.grid.phase.ravel().tolist()))
    ((8, 8), ['chaotic', 'ordered'])
    """
    act = _act(activation)
    cb = np.linspace(0.0, 2.0, n) if C_b is None else np.asarray(C_b, dtype=float)
    cw = np.linspace(0.5, 4.5, n) if C_W is None else np.asarray(C_W, dtype=float)
    if cb.ndim != 1 or cw.ndim != 1 or cb.size < 2 or cw.size < 2:
        raise PerturbError("phase diagram axes must be 1-D arrays with at least 2 values")
    _check_params(cw, cb)
    from .montecarlo._executor import Executor

    rows = max(1, PHASE_BLOCK_POINTS // cb.size)
    blocks = (executor or Executor.serial()).map(
        _phase_block, [(act, cw[i:i + rows], cb, q0) for i in range(0, cw.size, rows)])
    grid = FixedPointGrid(act.name, *(np.concatenate([getattr(b, f.name) for b in blocks])
                                      for f in fields(FixedPointGrid)[1:]))
    lb = np.linspace(cb.min(), cb.max(), max(4 * cb.size, 50))
    lw, lq = critical_line(act, lb)
    return PhaseDiagram(act.name, cb, cw, grid, lb, lw, lq)


def plot_phase_diagram(diagram: PhaseDiagram, path=None, *, ax=None):
    """Draw ξ_c as a heat map, the critical line χ_⊥ = 1 and the phase labels; save to ``path``.

    Needs matplotlib (the ``plot`` extra). Returns the matplotlib Figure.
    """
    try:
        import matplotlib

        if ax is None and path is not None:
            matplotlib.use("Agg")
        import matplotlib.colors as mcolors
        import matplotlib.pyplot as plt
    except ImportError:
        raise PerturbError("phase-diagram figures need matplotlib: pip install 'perturb[plot]'") from None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.8))
    else:
        fig = ax.figure
    g = diagram.grid
    xi = np.where(np.isfinite(g.xi_c), g.xi_c, np.nan)
    finite = xi[np.isfinite(xi) & (xi > 0)]
    vmax = float(np.nanmax(finite)) if finite.size else 1.0
    vmin = max(float(np.nanmin(finite)) if finite.size else 0.1, vmax * 1e-3)
    mesh = ax.pcolormesh(diagram.C_b, diagram.C_W, np.ma.masked_invalid(xi), shading="auto", cmap="viridis",
                         norm=mcolors.LogNorm(vmin=vmin, vmax=max(vmax, vmin * 1.01)))
    fig.colorbar(mesh, ax=ax, label="ξ_c (correlation depth scale)")
    ok = np.isfinite(diagram.line_C_W)
    ax.plot(diagram.line_C_b[ok], diagram.line_C_W[ok], color="w", lw=2, label="critical line χ₁ = 1",
            gid="critical-line")
    div = g.phase == "divergent"
    if np.any(div):
        ax.contourf(diagram.C_b, diagram.C_W, div.astype(float), levels=[0.5, 1.5], colors=["0.85"])
        ax.text(0.05, 0.95, "divergent", transform=ax.transAxes, va="top", color="k")
    for phase, y in (("ordered", 0.08), ("chaotic", 0.9)):
        if np.any(g.phase == phase):
            ax.text(0.7, y, phase, transform=ax.transAxes, color="w", fontsize=13, weight="bold")
    ax.set(xlabel="σ_b² = C_b", ylabel="σ_w² = C_W", title=f"{diagram.activation}: order/chaos phase diagram",
           xlim=(diagram.C_b.min(), diagram.C_b.max()), ylim=(diagram.C_W.min(), diagram.C_W.max()))
    ax.legend(loc="lower right", fontsize=8)
    if path is not None:
        from ._io import atomic_write

        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))  # no partial figure on failure
    return fig


def _as_dict(obj) -> dict:  # pragma: no cover - convenience for the tour
    return asdict(obj)


def vertex_depth_series(activation) -> str:
    """The large-depth behaviour of the four-point vertex V/K² and of G1/K at criticality.

    Derived by the finite-width engine: for scale-invariant activations the order-1 recursion
    solved in closed form at C_b = 0 (:func:`perturb.finite.solve_fixed_point_chain`); for the
    K*=0 class the large-ℓ matching of :func:`perturb.finite.asymptotics.k_star_zero_series`.

    >>> vertex_depth_series("relu")
    'V^(l)/K^2 = 5*l - 5,  G1^(l) = 0  (exact at order 1/n, equal widths)'
    >>> vertex_depth_series("tanh")
    'V^(l)/K^2 = 2/3 l + o(l),  G1^(l)/K = -1/3 l + o(l)'
    """
    from .finite.asymptotics import k_star_zero_series
    from .finite.solve import ELL, K, N, solve_fixed_point_chain

    act = _act(activation)
    uc = universality_class(act)
    if uc.name == "scale-invariant":
        from .gaussian import closed_form

        chi_perp = closed_form(sp.expand(act.derivative() ** 2), K)  # K-independent here
        cw = sp.nsimplify(1 / chi_perp, rational=True) if chi_perp is not None else \
            sp.nsimplify(critical_point(act, 0.0).C_W, rational=True)
        sol = solve_fixed_point_chain(act, C_W=cw, order=1)
        V = sp.expand(N * sol.variance(1).subs(ELL, ELL - 1) / K**2)  # V^(l) = n Var Σ^(l-1)
        G = sp.simplify(N * sol.moment(1, 1).subs(ELL, ELL - 1))
        g = "0" if G == 0 else f"{G}"
        return f"V^(l)/K^2 = {V},  G1^(l) = {g}  (exact at order 1/n, equal widths)"
    if uc.name == "K*=0":
        s = k_star_zero_series(act)
        return f"V^(l)/K^2 = {s.v} l + o(l),  G1^(l)/K = {s.g} l + o(l)"
    raise PerturbError(f"{act.name} is in class '{uc.name}': the depth series of V needs a scale-invariant "
                       "or K*=0 activation")
