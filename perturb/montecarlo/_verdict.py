"""Verdicts: one rule for comparing a prediction with a Monte Carlo estimate.

For each element i, the z-score is

    z_i = (estimate_i − prediction_i) / sqrt(stderr_i² + prediction_stderr_i²),

and its two-sided p-value p_i uses a Student-t reference with the estimate's ``dof`` (the
jackknife's G − 1; a normal reference when ``dof`` is None).  Over an array of m comparisons the
combined p-value is Bonferroni's, ``p = min(1, m · min_i p_i)``: valid whatever the correlation
between the elements (different inputs of the same networks are strongly correlated, so a
chi-square on "independent" z's would be wrong).  The comparison passes when
``p > 1 − confidence``.

Every statistical test in perturb goes through :func:`verdict` / :func:`assert_agrees`; no test
invents its own tolerance.

>>> from perturb.montecarlo import Estimate
>>> verdict(1.0, Estimate(1.01, 0.01, 10_000)).passed
True
>>> verdict(1.0, Estimate(1.05, 0.01, 10_000)).passed
False
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import PerturbError
from ._estimators import Estimate

__all__ = ["Verdict", "verdict", "assert_agrees"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`verdict`.

    Attributes:
        z: z-scores, one per compared element (an array, 0-d for a scalar).
        p_value: combined two-sided p-value (Bonferroni over the elements).
        passed: ``p_value > 1 − confidence``.
        confidence: the confidence level the decision was made at.
        prediction, value, stderr: what was compared (stderr includes the prediction's own).
    """

    z: np.ndarray
    p_value: float
    passed: bool
    confidence: float
    prediction: np.ndarray
    value: np.ndarray
    stderr: np.ndarray

    def __bool__(self) -> bool:
        return self.passed

    def report(self, label: str = "") -> str:
        """A readable multi-line summary (used by :func:`assert_agrees`)."""
        head = f"{label}: " if label else ""
        state = "agrees" if self.passed else "DISAGREES"
        lines = [f"{head}Monte Carlo {state} with the prediction: p = {self.p_value:.3g} "
                 f"(pass needs p > {1 - self.confidence:.3g}, confidence {self.confidence})"]
        z = np.atleast_1d(self.z)
        pred, val, err = (np.atleast_1d(a) for a in (self.prediction, self.value, self.stderr))
        order = np.argsort(-np.abs(z))[:5]
        for i in order:
            idx = np.unravel_index(i, np.shape(self.z)) if np.ndim(self.z) else ()
            lines.append(f"  {idx if idx else ''} predicted {pred.flat[i]:.6g}, measured "
                         f"{val.flat[i]:.6g} ± {err.flat[i]:.2g}  (z = {z.flat[i]:+.2f})")
        if z.size > 5:
            lines.append(f"  ... {z.size - 5} more elements")
        return "\n".join(lines)


def _num(a, name: str) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=float)
    except (TypeError, ValueError):
        raise PerturbError(f"{name} must be a number or an array of numbers, got {a!r}") from None
    if not np.all(np.isfinite(arr)):
        raise PerturbError(f"{name} contains NaN or inf: {a!r}")
    return arr


def verdict(prediction, estimate: Estimate, *, prediction_stderr=0.0, confidence: float = 0.99) -> Verdict:
    """Compare a prediction with a Monte Carlo :class:`Estimate`.

    Args:
        prediction: a number or an array (broadcast against ``estimate.value``); an
            :class:`Estimate` is accepted too, and its stderr is then the prediction's own.
        estimate: the Monte Carlo estimate.
        prediction_stderr: the prediction's own uncertainty (e.g. quadrature error, or another
            Monte Carlo run); added in quadrature.
        confidence: pass when the combined two-sided p-value exceeds ``1 − confidence``.

    Returns:
        Verdict with z-scores, the Bonferroni-combined p-value and the decision.

    >>> v = verdict([1.0, 2.0], Estimate(np.array([1.0, 2.1]), np.array([0.05, 0.05]), 1000, 31))
    >>> round(float(v.z[1]), 3), v.passed
    (2.0, True)
    """
    if not isinstance(estimate, Estimate):
        raise PerturbError(f"estimate must be an Estimate (from moment, cumulant, ...), got {type(estimate).__name__}")
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise PerturbError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(prediction, Estimate):
        prediction_stderr = np.hypot(prediction_stderr, prediction.stderr)
        prediction = prediction.value
    pred = _num(prediction, "prediction")
    val = _num(estimate.value, "estimate value")
    err = _num(estimate.stderr, "estimate stderr")
    perr = _num(prediction_stderr, "prediction_stderr")
    if np.any(err < 0) or np.any(perr < 0):
        raise PerturbError("standard errors must be >= 0")
    try:
        pred, val, err, perr = np.broadcast_arrays(pred, val, err, perr)
    except ValueError:
        raise PerturbError(f"prediction shape {np.shape(prediction)} does not match the estimate's "
                           f"{np.shape(estimate.value)}") from None
    tot = np.sqrt(err**2 + perr**2)
    diff = val - pred
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(tot > 0, diff / np.where(tot > 0, tot, 1), np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    dof = estimate.dof
    p_each = 2 * (stats.t.sf(np.abs(z), dof) if dof else stats.norm.sf(np.abs(z)))
    m = max(z.size, 1)
    p = float(min(1.0, m * float(np.min(p_each)))) if z.size else 1.0
    return Verdict(z=z, p_value=p, passed=p > 1 - confidence, confidence=float(confidence),
                   prediction=pred, value=val, stderr=tot)


def assert_agrees(prediction, estimate: Estimate, *, prediction_stderr=0.0, confidence: float = 0.99,
                  label: str = "") -> Verdict:
    """Like :func:`verdict`, but raise ``AssertionError`` with a readable report when it fails.

    >>> assert_agrees(3.0, Estimate(3.02, 0.02, 10_000), label="kurtosis").passed
    True
    """
    v = verdict(prediction, estimate, prediction_stderr=prediction_stderr, confidence=confidence)
    if not v.passed:
        raise AssertionError(v.report(label))
    return v
