"""Resummed 1/n series, and when to trust a truncated one.

The engine (:mod:`perturb.finite`) gives a moment as a truncated series f ≈ c_0 + c_1 + … + c_K,
c_k = O(n^{−k}) at the given widths.  Where L/n is of order one the terms stop decreasing: the
series is asymptotic, not convergent (the exact ReLU law has E z⁴/(E z²)² = 3 Π(1 + 5/n_ℓ), whose
log is a convergent series but whose expansion in 1/n at fixed L/n has terms growing like (5L/n)^k/k!
only after the exponential is undone — and for smooth σ the log-normal picture of [LH] §5 holds).
Two resummations, both built from c_0..c_K alone (nothing fitted to the exact law):

* ``"log"`` — exponentiate the log series: with t_k = c_k/c_0, log(1 + Σ t_k ε^k) = Σ l_k ε^k,
  l_k = t_k − (1/k) Σ_{j<k} j l_j t_{k−j}; f ≈ c_0 exp(l_1 + … + l_K).  Exact for a log-normal
  Σ with variance linear in 1/n, the [LH] §5 picture;
* ``"pade"`` — the [⌈K/2⌉/⌊K/2⌋] Padé approximant of Σ c_k ε^k at ε = 1.

:func:`series_note` is the reliability flag printed by ``perturb cumulants``: a truncated series is
called unreliable when its last term is not small, |c_K| > ``RATIO`` · |c_{K−1}| (K ≥ 2) or
|c_K| > ``LAST`` · |Σ c_k| (any K ≥ 1) — in E z² or in E z⁴.  Validated against the exact law in
docs/exact.md (tanh, GELU, ReLU at n = 8, L = 1..8).

>>> resum([1.0, 0.5, 0.125], "log")       # exp(0.5 − 0.125 + 0.125) with l_2 = t_2 − t_1²/2
1.6487212707001282
>>> series_note([1.0, 0.1, 0.01]) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import PerturbError

__all__ = ["resum", "series_note", "RESUM_METHODS", "RATIO", "LAST"]

RESUM_METHODS = ("log", "pade")
#: successive-term ratio above which a series is flagged (1: "terms not decreasing")
RATIO = 1.0
#: size of the last term, relative to the sum, above which a series is flagged
LAST = 0.1
#: terms below this fraction of the largest one count as zero (rounding remainders of exact zeros)
NEGLIGIBLE = 1e-9


def _terms(terms: Sequence[float]) -> list[float]:
    t = [float(v) for v in terms]
    if not t or not all(math.isfinite(v) for v in t):
        raise PerturbError(f"series terms must be finite numbers, got {terms!r}")
    return t


def resum(terms: Sequence[float], method: str = "log") -> float:
    """Resum the series c_0 + c_1 + … + c_K (c_k the order-k contribution at the given widths).

    >>> resum([2.0, 1.0], "pade")             # K = 1: the [1/0] approximant is the sum
    3.0
    """
    c = _terms(terms)
    if method not in RESUM_METHODS:
        raise PerturbError(f"unknown resummation {method!r}; valid: {', '.join(RESUM_METHODS)}")
    K = len(c) - 1
    if method == "log":
        if c[0] <= 0:
            raise PerturbError(f"the log resummation needs a positive leading term, got {c[0]}")
        t = [v / c[0] for v in c]
        ell = [0.0] * (K + 1)
        for k in range(1, K + 1):
            ell[k] = t[k] - sum(j * ell[j] * t[k - j] for j in range(1, k)) / k
        return c[0] * math.exp(sum(ell[1:]))
    m = (K + 1) // 2
    q = K - m
    if q == 0:
        return sum(c)
    # denominator b_0 = 1, b_1..b_q from Σ_j b_j c_{k−j} = 0, k = m+1..m+q
    A = np.array([[c[k - j] if k - j >= 0 else 0.0 for j in range(1, q + 1)] for k in range(m + 1, m + q + 1)])
    rhs = -np.array([c[k] for k in range(m + 1, m + q + 1)])
    try:
        b = np.linalg.solve(A, rhs)
    except np.linalg.LinAlgError:
        raise PerturbError("the Padé approximant does not exist for these terms (singular system)") from None
    b = np.concatenate([[1.0], b])
    a = [sum(b[j] * c[k - j] for j in range(0, min(k, q) + 1)) for k in range(m + 1)]
    den = float(b.sum())
    if den == 0:
        raise PerturbError("the Padé approximant has a pole at 1/n")
    return float(sum(a)) / den


def series_note(z2_terms: Sequence[float], z4_terms: Sequence[float] | None = None) -> str | None:
    """A one-line warning when the truncated series of E z² (or of E z⁴) is unreliable, else None.

    >>> series_note([0.77, 1.17])[:30]
    'the 1/n series is unreliable a'
    """
    pairs = [("E z^2", z2_terms)] + ([("E z^4", z4_terms)] if z4_terms is not None else [])
    for name, series in pairs:
        c = _terms(series)
        K = len(c) - 1
        if K < 1:
            continue
        total = sum(c)
        # terms at the rounding level of the largest one are zeros (a series that terminates, e.g.
        # ReLU's E z² = K at C_W = 2, evaluates to ±1e-14-sized remainders, not to a diverging tail)
        floor = NEGLIGIBLE * max(abs(v) for v in c)
        last, prev = (abs(v) if abs(v) > floor else 0.0 for v in (c[-1], c[-2]))
        if K >= 2 and prev > 0 and last > RATIO * prev:
            return (f"the 1/n series is unreliable at these widths: in {name} the order-{K} term is "
                    f"{last / prev:.3g} times the order-{K - 1} one (terms not decreasing); use "
                    "`perturb exact` for the exact law")
        if total != 0 and last > LAST * abs(total):
            return (f"the 1/n series is unreliable at these widths: in {name} the order-{K} term is "
                    f"{last / abs(total):.2g} of the sum; use `perturb exact` for the exact law")
    return None
