"""The catapult of the uv model: phases, trajectories and thresholds (docs/reference.md §5, [LEW]).

The exact GD maps of ``(f, λ)`` are *derived* by :func:`perturb.dynamics.hierarchy.uv_maps`
from the model ``f = v·u x/√n`` and compiled once with :func:`perturb.compile.compile_expr`;
here they are iterated (vectorised over many runs at once).

Phases (for ``y = 0``; ``R = ηλ_0``):

* **lazy** — the loss never rises above its initial value (``R < 2`` at large n);
* **catapult** — the loss rises, λ falls until ``ηλ < 2``, then the loss converges
  (``2 < R < 4``);
* **divergent** — the run overflows (``|f|`` or ``λ`` beyond 1e100), or ``ηλ ≥ 4`` (for y = 0
  the map gives ``λ' − λ = η f² (ηλ − 4)/n ≥ 0``: λ can then never fall, and ``|f|`` grows
  by at least ``ηλ − 1 ≥ 3`` per step until overflow).

>>> res = uv_catapult(3.0, 1000, steps=500, seed=0)
>>> res.phase, res.eta_lambda_final < 2
('catapult', True)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..compile import Compiled, compile_expr
from ..errors import PerturbError
from .hierarchy import ETA, LAM, F, N, Y, uv_maps

__all__ = [
    "CatapultResult",
    "uv_catapult",
    "uv_init",
    "uv_iterate",
    "uv_gd_vectors",
    "uv_phase_grid",
    "uv_lower_threshold_first_step",
    "bisect_threshold",
    "OVERFLOW",
    "PHASES",
]

#: |f| or λ beyond this counts as divergence (the run stops; values before it are reported)
OVERFLOW = 1e100
#: a run stops early once the loss has fallen by this factor (λ is frozen to < 1e-30 relative)
CONVERGED = 1e-32
PHASES = ("lazy", "catapult", "divergent")


@functools.cache
def _compiled() -> tuple[Compiled, Compiled]:
    maps = uv_maps().maps
    args = [F, LAM, ETA, N, Y]
    return compile_expr(maps[F], args), compile_expr(maps[LAM], args)


def _check(eta_lambda, width, steps) -> None:
    if not (isinstance(eta_lambda, (int, float, np.floating, np.integer)) and math.isfinite(eta_lambda)) \
            or eta_lambda <= 0:
        raise PerturbError(f"eta*lambda_0 must be a finite number > 0 (η > 0), got {eta_lambda!r}")
    if isinstance(width, bool) or int(width) != width or width < 1:
        raise PerturbError(f"width must be an integer >= 1, got {width!r}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise PerturbError(f"steps must be an integer >= 1, got {steps!r}")


def uv_init(width: int, seed: int | None = 0, x: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``u, v ~ N(0, I_n)`` from ``numpy.random.default_rng(seed)`` (u drawn first)."""
    if isinstance(width, bool) or int(width) != width or width < 1:
        raise PerturbError(f"width must be an integer >= 1, got {width!r}")
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(int(width))
    v = rng.standard_normal(int(width))
    return u, v


@dataclass(frozen=True)
class CatapultResult:
    """One uv-model GD run.  Trajectories hold the states actually reached (finite)."""

    phase: str
    width: int
    eta: float
    lambda0: float
    lambda_final: float
    eta_lambda_final: float
    loss_max: float
    loss: np.ndarray
    lam: np.ndarray
    f: np.ndarray
    steps_run: int
    settled: bool  # ηλ < 2 and the loss below its initial value at the end

    def as_dict(self) -> dict:
        """The CLI's JSON record."""
        return {"phase": self.phase, "lambda0": self.lambda0, "lambda_final": self.lambda_final,
                "eta_lambda_final": self.eta_lambda_final, "loss_max": self.loss_max}


def uv_iterate(f0, lam0, eta, width, steps: int, y=0.0):
    """Iterate the derived maps on arrays of runs at once.

    Returns ``(f, lam, alive)``: arrays of shape ``(steps + 1, ...)`` (NaN after a run
    overflowed) and the step at which each run overflowed (``steps + 1`` if never).
    """
    fmap, lmap = _compiled()
    f = np.array(f0, dtype=float)
    lam = np.array(lam0, dtype=float)
    eta, width, y = np.broadcast_arrays(np.asarray(eta, float), np.asarray(width, float), np.asarray(y, float))
    shape = np.broadcast(f, lam, eta).shape
    f, lam = np.broadcast_to(f, shape).copy(), np.broadcast_to(lam, shape).copy()
    F_t = np.full((steps + 1,) + shape, np.nan)
    L_t = np.full((steps + 1,) + shape, np.nan)
    F_t[0], L_t[0] = f, lam
    dead = np.full(shape, steps + 1)
    alive = np.ones(shape, bool)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, steps + 1):
            f_new, lam_new = fmap(f, lam, eta, width, y), lmap(f, lam, eta, width, y)
            ok = alive & np.isfinite(f_new) & np.isfinite(lam_new) & (np.abs(f_new) <= OVERFLOW) \
                & (np.abs(lam_new) <= OVERFLOW)
            dead = np.where(alive & ~ok, t, dead)
            alive = ok
            f, lam = np.where(alive, f_new, f), np.where(alive, lam_new, lam)
            F_t[t] = np.where(alive, f, np.nan)
            L_t[t] = np.where(alive, lam, np.nan)
            if not alive.any():
                break
    return F_t, L_t, dead


def uv_catapult(eta_lambda: float, width: int, *, steps: int = 1000, seed: int | None = 0,
                y: float = 0.0) -> CatapultResult:
    """Train the uv model (x = 1, u, v standard normal) by GD at ``η = eta_lambda / λ_0``.

    >>> uv_catapult(1.0, 4000, steps=200).phase
    'lazy'
    >>> uv_catapult(4.5, 4000, steps=200).phase
    'divergent'
    """
    _check(eta_lambda, width, steps)
    u, v = uv_init(width, seed)
    n = float(width)
    f0 = float(u @ v / math.sqrt(n))
    lam0 = float((u @ u + v @ v) / n)
    eta = eta_lambda / lam0
    fmap, lmap = _compiled()
    fs, ls = [f0], [lam0]
    f, lam = f0, lam0
    loss0 = 0.5 * (f0 - y) ** 2
    overflowed = False
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            f_new, lam_new = float(fmap(f, lam, eta, n, y)), float(lmap(f, lam, eta, n, y))
            if not (math.isfinite(f_new) and math.isfinite(lam_new)) or abs(f_new) > OVERFLOW \
                    or abs(lam_new) > OVERFLOW:
                overflowed = True
                break
            f, lam = f_new, lam_new
            fs.append(f)
            ls.append(lam)
            if loss0 > 0 and 0.5 * (f - y) ** 2 <= CONVERGED * loss0:
                break
    f_t, l_t = np.array(fs), np.array(ls)
    loss = 0.5 * (f_t - y) ** 2
    loss_max = float(loss.max())
    rose = loss_max > loss0 * (1 + 1e-12)
    if overflowed or (y == 0 and eta * l_t.max() >= 4 and abs(f_t[-1]) > 0):
        phase = "divergent"
    elif rose:
        phase = "catapult"
    else:
        phase = "lazy"
    settled = (not overflowed) and eta * lam < 2 and loss[-1] < loss0
    return CatapultResult(phase=phase, width=int(width), eta=eta, lambda0=lam0, lambda_final=float(lam),
                          eta_lambda_final=float(eta * lam), loss_max=loss_max, loss=loss, lam=l_t, f=f_t,
                          steps_run=len(fs) - 1, settled=bool(settled))


def uv_gd_vectors(u: np.ndarray, v: np.ndarray, eta: float, steps: int, y: float = 0.0):
    """Explicit GD on the vectors ``(u, v)`` (the independent check of the derived maps).

    Returns arrays ``f_t, λ_t`` of length ``steps + 1``.
    """
    n = u.size
    u, v = u.astype(float).copy(), v.astype(float).copy()
    fs, ls = [], []
    for _ in range(steps + 1):
        f = u @ v / math.sqrt(n)
        fs.append(f)
        ls.append((u @ u + v @ v) / n)
        r = f - y
        u, v = u - eta * r * v / math.sqrt(n), v - eta * r * u / math.sqrt(n)
    return np.array(fs), np.array(ls)


def uv_phase_grid(eta_lambdas, widths, *, steps: int = 1000, seed: int = 0) -> np.ndarray:
    """Phase (0 lazy, 1 catapult, 2 divergent) on a grid ``len(widths) × len(eta_lambdas)``."""
    out = np.zeros((len(widths), len(eta_lambdas)), int)
    for i, n in enumerate(widths):
        for j, r in enumerate(eta_lambdas):
            out[i, j] = PHASES.index(uv_catapult(float(r), int(n), steps=steps, seed=seed).phase)
    return out


def uv_lower_threshold_first_step(width: int, seed: int = 0) -> float:
    """The lazy/catapult boundary in ``R = ηλ_0`` predicted from the first step alone.

    With ``y = 0`` the loss ratio of one step is ``q² = (1 − R + R² s)²``, ``s = f_0²/(n λ_0²)``;
    the loss rises iff ``q < −1``, i.e. above the root ``R* = (1 − √(1 − 8s)) / (2s)``
    (≈ ``2 + 4s``).  For ``R < R*`` the loss decreases at every later step as well
    (``q`` only increases along a lazy run), so ``R*`` is the exact boundary.
    """
    u, v = uv_init(width, seed)
    n = float(width)
    f0 = u @ v / math.sqrt(n)
    lam0 = (u @ u + v @ v) / n
    s = f0 ** 2 / (n * lam0 ** 2)
    if s == 0:
        return 2.0
    if 1 - 8 * s < 0:
        raise PerturbError(f"width {width} too small: the loss rises for every learning rate")
    return float((1 - math.sqrt(1 - 8 * s)) / (2 * s))


def bisect_threshold(predicate, lo: float, hi: float, tol: float = 1e-6, max_iter: int = 200) -> float:
    """The boundary in ``[lo, hi]`` where ``predicate`` turns from False (lo) to True (hi)."""
    if predicate(lo) or not predicate(hi):
        raise PerturbError(f"bisection needs predicate(lo={lo}) False and predicate(hi={hi}) True")
    for _ in range(max_iter):
        if hi - lo <= tol:
            break
        mid = 0.5 * (lo + hi)
        if predicate(mid):
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)
