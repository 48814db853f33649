"""The catapult experiment on finite networks trained by GD (the Monte Carlo laboratory's
:func:`perturb.montecarlo.train_gd`; no trainer of our own).

At ``R = η λ_0`` (``λ_0`` the top eigenvalue of the empirical NTK at initialisation, loss
½Σ_a (f_a − y_a)², NTK parameterisation) a run is classified like the uv model's:

* **lazy** — the loss never rises above its initial value;
* **catapult** — the loss rises, then ends below its initial value with ``λ_end < λ_0``;
* **divergent** — non-finite outputs, or the loss ends above its initial value.

The measured upper threshold ``R_max`` (largest ``R`` that does not diverge) is located by
bisection per seed.  [LEW] report ``R_max ≈ 4`` for wide two-layer nets and up to ~12 for
deep ReLU nets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import PerturbError
from ..network import Network
from .catapult import bisect_threshold

__all__ = ["NetworkCatapult", "network_catapult", "network_lambda0", "network_upper_threshold",
           "default_data"]


def _train_gd():
    try:
        from ..montecarlo import train_gd
    except ImportError as exc:  # pragma: no cover - depends on the laboratory having landed
        raise PerturbError("perturb.montecarlo.train_gd is not available in this installation") from exc
    return train_gd


def default_data(n_inputs: int = 4, input_dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs on the sphere ``|x|² = n_0`` and targets ``y = 0`` (as in the uv experiment)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_inputs, input_dim))
    X *= math.sqrt(input_dim) / np.linalg.norm(X, axis=1, keepdims=True)
    return X, np.zeros(n_inputs)


@dataclass(frozen=True)
class NetworkCatapult:
    """One GD run of a finite network at ``R = ηλ_0``."""

    phase: str
    eta_lambda: float
    eta: float
    lambda0: float
    lambda_end: float  # nan if the run diverged
    loss: np.ndarray   # ½Σ(f − y)² per step, up to the step where GD diverged if it did (then shorter)
    loss_max: float
    diverged_at: int | None = None  # the step at which train_gd stopped a blown-up run


def network_lambda0(net: Network, X: np.ndarray, Y: np.ndarray, seed: int) -> float:
    """Top eigenvalue of the empirical NTK at initialisation (a 0-step run of train_gd)."""
    train_gd = _train_gd()
    res = train_gd(net, X, Y, 1.0, 0, seed)
    return float(np.linalg.eigvalsh(np.asarray(res.ntk_initial, float)).max())


def network_catapult(net: Network, X: np.ndarray, Y: np.ndarray, eta_lambda: float, steps: int,
                     seed: int, *, lambda0: float | None = None) -> NetworkCatapult:
    """Train ``net`` by GD at ``η = eta_lambda/λ_0`` and classify the run."""
    if not (math.isfinite(eta_lambda) and eta_lambda > 0):
        raise PerturbError(f"eta*lambda_0 must be a finite number > 0, got {eta_lambda!r}")
    if int(steps) != steps or steps < 1:
        raise PerturbError(f"steps must be an integer >= 1, got {steps!r}")
    train_gd = _train_gd()
    lam0 = network_lambda0(net, X, Y, seed) if lambda0 is None else lambda0
    eta = eta_lambda / lam0
    from ..montecarlo._train import GDDivergedError

    diverged_at = None
    with np.errstate(all="ignore"):
        try:
            res = train_gd(net, X, Y, eta, int(steps), seed)
            out = np.asarray(res.outputs, float)
            ntk_end = np.asarray(res.ntk_final, float)
        except GDDivergedError as exc:  # train_gd stops a run whose residual is > 1e150 or inf:
            out = np.asarray(exc.outputs, float)  # keep the history up to that step
            ntk_end = np.full((len(Y), len(Y)), np.nan)
            diverged_at = exc.step
        except PerturbError as exc:  # another overflow, without a history
            if not any(w in str(exc) for w in ("diverged", "overflowed", "non-finite")):
                raise
            out = np.full((1, len(Y)), np.inf)
            ntk_end = np.full((len(Y), len(Y)), np.nan)
            diverged_at = 0
        loss = 0.5 * np.sum((out - np.asarray(Y, float)) ** 2, axis=1)
    loss = np.where(np.isfinite(loss), loss, np.inf)
    finite = diverged_at is None and np.isfinite(loss).all() and np.isfinite(ntk_end).all()
    lam_end = float(np.linalg.eigvalsh(ntk_end).max()) if finite else float("nan")
    loss_max = float(loss.max())
    if not finite or loss[-1] > loss[0]:
        phase = "divergent"
    elif loss_max > loss[0] * (1 + 1e-12):
        phase = "catapult"
    else:
        phase = "lazy"
    return NetworkCatapult(phase=phase, eta_lambda=float(eta_lambda), eta=eta, lambda0=lam0,
                           lambda_end=lam_end, loss=loss, loss_max=loss_max, diverged_at=diverged_at)


def network_upper_threshold(net: Network, X: np.ndarray, Y: np.ndarray, seed: int, *, steps: int = 200,
                            lo: float = 1.0, hi: float = 40.0, tol: float = 0.05) -> float:
    """Bisection for the smallest ``R = ηλ_0`` at which GD diverges (one seed)."""
    lam0 = network_lambda0(net, X, Y, seed)

    def diverges(R: float) -> bool:
        return network_catapult(net, X, Y, R, steps, seed, lambda0=lam0).phase == "divergent"

    return bisect_threshold(diverges, lo, hi, tol=tol)
