"""Criticality of residual MLPs ``z^{(ℓ+1)} = ξ z^{(ℓ)} + γ (b + W σ(z^{(ℓ)}))`` at infinite width.

The residual stream and the fresh weights are uncorrelated, so the kernel recursion is

    K^{(ℓ+1)}_{αβ} = ξ² K^{(ℓ)}_{αβ} + γ² (C_b + C_W <σ_α σ_β>_{K^{(ℓ)}}).

For ``ξ² < 1`` its fixed points are those of a plain MLP with effective variances

    C_W^eff = γ² C_W / (1 − ξ²),   C_b^eff = γ² C_b / (1 − ξ²),

(divide the fixed-point equation by 1 − ξ²), and every susceptibility is an affine image of the
plain one: with χ^eff the χ_∥, χ_⊥ or χ_c of the effective MLP at the same fixed point,

    χ = ∂K^{(ℓ+1)}/∂K^{(ℓ)} = ξ² + γ² C_W (…) = ξ² + (1 − ξ²) χ^eff,

so ``χ − 1 = (1 − ξ²)(χ^eff − 1)``: the phase (ordered / critical / chaotic) is the effective
one, the critical line moves to ``C_W^crit(C_b; ξ, γ) = (1 − ξ²)/γ² · C_W^crit(γ² C_b/(1 − ξ²))``,
and the depth scales ``−1/log χ`` grow by about ``1/(1 − ξ²)`` near the line (ξ → 1: every
point becomes marginal).  For ``ξ² >= 1`` there is no finite fixed point unless the branch
vanishes (K grows by ``γ²(C_b + C_W<σ²>_K) >= 0`` per layer); use :func:`residual_iterate`.

The plain-MLP quantities come from :mod:`perturb.criticality` (closed forms or quadrature,
mpmath with ``dps``); the tests check everything against direct iteration of the recursion.
Notation: the residual scalings are ``xi``/``gamma``; the depth scales are ``depth_q``/``depth_c``
(called ξ_q, ξ_c in :mod:`perturb.criticality`).

>>> fp = residual_fixed_point("tanh", 2.0, 0.1, xi=0.5, gamma=1.0)
>>> fp.phase, round(fp.chi_perp - 1, 12) == round(0.75 * (fp.plain.chi_perp - 1), 12)
('chaotic', True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath
import numpy as np

from ..activations import get_activation
from ..criticality import FixedPoint, critical_line, critical_point, fixed_point
from ..errors import PerturbError
from ..gaussian import expect

__all__ = ["ResidualFixedPoint", "ResidualCriticalPoint", "residual_fixed_point", "residual_critical_point",
           "residual_critical_line", "residual_iterate", "effective_variances"]


def _check_scalings(xi, gamma) -> tuple[float, float]:
    for v, nm in ((xi, "xi"), (gamma, "gamma")):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise PerturbError(f"{nm} must be a finite number, got {v!r}")
    if gamma == 0:
        raise PerturbError("gamma must be nonzero (gamma = 0 removes the residual branch)")
    if xi * xi >= 1:
        raise PerturbError(f"|xi| must be < 1 for a finite fixed point, got xi = {xi:g} (with |xi| >= 1 the "
                           "kernel grows every layer: use residual_iterate to follow it)")
    return float(xi), float(gamma)


def effective_variances(C_W: float, C_b: float, *, xi: float, gamma: float) -> tuple[float, float]:
    """``(γ² C_W/(1 − ξ²), γ² C_b/(1 − ξ²))``: the plain MLP with the same fixed points.

    >>> tuple(round(v, 12) for v in effective_variances(1.0, 0.1, xi=0.6, gamma=0.8))
    (1.0, 0.1)
    """
    xi, gamma = _check_scalings(xi, gamma)
    f = gamma * gamma / (1 - xi * xi)
    return f * C_W, f * C_b


def _affine_chi(chi, s2):
    return s2 + (1 - s2) * chi


def _depth(chi):
    """``−1/log χ`` (``inf`` for χ >= 1)."""
    if isinstance(chi, mpmath.mpf):
        return -1 / mpmath.log(chi) if chi < 1 else mpmath.inf
    return -1.0 / math.log(chi) if chi < 1 else math.inf


@dataclass(frozen=True)
class ResidualFixedPoint:
    """Fixed point of the residual kernel recursion and its susceptibilities.

    Attributes:
        q_star, c_star: fixed-point variance and correlation (those of the effective MLP).
        chi_parallel, chi_perp, chi_c: ``ξ² + (1 − ξ²) χ^eff``.
        depth_q, depth_c: ``−1/log χ_∥``, ``−1/log χ_c`` (``inf`` where χ >= 1).
        phase: ``"ordered"``, ``"critical"`` or ``"chaotic"`` (the effective MLP's).
        plain: the effective MLP's :class:`~perturb.criticality.FixedPoint`.
    """

    activation: str
    C_W: float
    C_b: float
    xi: float
    gamma: float
    q_star: float
    c_star: float
    chi_parallel: float
    chi_perp: float
    chi_c: float
    depth_q: float
    depth_c: float
    phase: str
    plain: FixedPoint

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("xi", "gamma", "q_star", "c_star", "chi_parallel", "chi_perp",
                                              "chi_c", "depth_q", "depth_c", "phase")}
        for k in ("depth_q", "depth_c"):
            if not mpmath.isfinite(out[k]):
                out[k] = None
        out["C_W_eff"], out["C_b_eff"] = self.plain.C_W, self.plain.C_b
        return out


def residual_fixed_point(activation, C_W: float, C_b: float, *, xi: float, gamma: float = 1.0,
                         dps: int | None = None) -> ResidualFixedPoint:
    """Fixed point, χ's and depth scales of ``z' = ξ z + γ(b + W σ(z))`` (|ξ| < 1).

    >>> fp = residual_fixed_point("relu", 2.0, 0.0, xi=0.6, gamma=0.8)   # C_W^eff = 2: critical
    >>> fp.phase, round(fp.chi_parallel, 12)
    ('critical', 1.0)
    """
    cw, cb = effective_variances(C_W, C_b, xi=xi, gamma=gamma)
    plain = fixed_point(activation, cw, cb, dps=dps)
    s2 = xi * xi
    if dps:
        with mpmath.workdps(dps):
            s2 = mpmath.mpf(xi) ** 2
    chis = [_affine_chi(c, s2) for c in (plain.chi_parallel, plain.chi_perp, plain.chi_c)]
    return ResidualFixedPoint(plain.activation, float(C_W), float(C_b), float(xi), float(gamma), plain.q_star,
                              plain.c_star, *chis, _depth(chis[0]), _depth(chis[2]), plain.phase, plain)


@dataclass(frozen=True)
class ResidualCriticalPoint:
    """The critical ``C_W`` of the residual recursion at one ``C_b`` (χ_⊥ = 1), and K* there."""

    activation: str
    C_b: float
    xi: float
    gamma: float
    C_W: float
    K_star: float | None
    C_W_plain: float
    note: str | None = None

    def as_dict(self) -> dict:
        out = {"C_W": self.C_W, "K_star": self.K_star, "xi": self.xi, "gamma": self.gamma,
               "C_W_plain": self.C_W_plain}
        if self.note:
            out["note"] = self.note
        return out


def residual_critical_point(activation, C_b: float = 0.0, *, xi: float, gamma: float = 1.0,
                            dps: int | None = None) -> ResidualCriticalPoint:
    """``C_W^crit(C_b; ξ, γ) = (1 − ξ²)/γ² · C_W^crit(γ² C_b/(1 − ξ²))`` and K* there.

    ``C_W_plain`` is the critical C_W of the plain MLP at the same C_b, for comparison (float64).

    >>> cp = residual_critical_point("erf", 0.0, xi=0.5, gamma=1.0)
    >>> round(cp.C_W / cp.C_W_plain, 12)                     # (1 − ξ²)/γ² at C_b = 0
    0.75
    """
    xi, gamma = _check_scalings(xi, gamma)
    f = gamma * gamma / (1 - xi * xi)
    cp = critical_point(activation, C_b * f, dps=dps)
    plain = cp if f == 1 else critical_point(activation, C_b)
    cw = cp.C_W / f
    if dps:
        with mpmath.workdps(dps):
            cw = mpmath.mpf(cp.C_W) * (1 - mpmath.mpf(xi) ** 2) / mpmath.mpf(gamma) ** 2
    return ResidualCriticalPoint(cp.activation, float(C_b), xi, gamma, cw, cp.K_star, plain.C_W, cp.note)


def residual_critical_line(activation, C_b, *, xi: float, gamma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The χ_⊥ = 1 line (C_W, K*) at each C_b (float64 arrays; NaN where there is none).

    >>> cw, q = residual_critical_line("tanh", [0.0, 0.3], xi=0.0, gamma=1.0)      # the plain line
    >>> tuple(round(float(v), 6) for v in cw)
    (1.0, 2.505127)
    """
    xi, gamma = _check_scalings(xi, gamma)
    f = gamma * gamma / (1 - xi * xi)
    cw, q = critical_line(activation, np.asarray(C_b, dtype=float) * f)
    return cw / f, q


def residual_iterate(activation, C_W: float, C_b: float, *, xi: float, gamma: float = 1.0, K11: float,
                     K22: float | None = None, K12: float | None = None, depth: int) -> np.ndarray:
    """Iterate the residual recursion on one pair of inputs for ``depth`` layers (any ξ).

    Returns an array of shape (depth + 1, 3): ``(K11, K22, K12)`` at ℓ = 1..depth+1 (float64,
    Gaussian expectations by :func:`perturb.gaussian.expect`).

    >>> residual_iterate("relu", 2.0, 0.0, xi=1.0, gamma=1.0, K11=1.0, depth=3)[:, 0].tolist()
    [1.0, 2.0, 4.0, 8.0]
    """
    for v, nm in ((xi, "xi"), (gamma, "gamma"), (C_W, "C_W"), (C_b, "C_b")):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise PerturbError(f"{nm} must be a finite number, got {v!r}")
    if isinstance(depth, bool) or int(depth) != depth or depth < 0:
        raise PerturbError(f"depth must be a non-negative integer, got {depth!r}")
    act = get_activation(activation)
    from ..activations import Z
    from ..gaussian import zvars

    z1, z2 = zvars(2)
    pair = act.expr.subs(Z, z1) * act.expr.subs(Z, z2)
    sq = act.expr**2
    K22 = K11 if K22 is None else K22
    K12 = K11 if K12 is None else K12
    out = [(K11, K22, K12)]
    a, b, c = float(K11), float(K22), float(K12)
    s2, g2 = xi * xi, gamma * gamma
    for _ in range(int(depth)):
        ea = float(expect(sq, a))
        eb = float(expect(sq, b))
        lim = math.sqrt(a * b)
        cc = max(-lim, min(lim, c))
        ec = ea if (a == b and cc == lim) else float(expect(pair, [[a, cc], [cc, b]]))
        a, b, c = (s2 * a + g2 * (C_b + C_W * ea), s2 * b + g2 * (C_b + C_W * eb), s2 * c + g2 * (C_b + C_W * ec))
        if not all(math.isfinite(v) for v in (a, b, c)):
            raise PerturbError(f"the kernel diverged after {len(out)} layers")
        out.append((a, b, c))
    return np.array(out)
