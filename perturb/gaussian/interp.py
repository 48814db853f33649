"""Chebyshev interpolation of one-variable Gaussian expectations over many variances.

``<f>_K`` is analytic in K > 0, so over a range [K_min, K_max] it is represented to near machine
precision by a Chebyshev series in log K.  For large arrays of variances (grids of C_W, C_b,
widths) :func:`expect_interpolated` computes the series from quadrature at a few hundred
Chebyshev points, accepts it only when its trailing coefficients are below the tolerance
(the usual Chebyshev tail criterion), and evaluates it everywhere by Clenshaw's recurrence.

>>> import numpy as np, sympy as sp
>>> from perturb.activations import Z
>>> K = np.linspace(0.1, 3.0, 100_000)
>>> v = expect_interpolated(sp.tanh(Z)**2, K)
>>> from perturb.gaussian import expect_numeric
>>> bool(np.max(np.abs(v[::997] - expect_numeric(sp.tanh(Z)**2, K[::997]))) < 1e-13)
True
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from numpy.polynomial import chebyshev as C

from .quadrature import expect_numeric

__all__ = ["expect_interpolated", "INTERPOLATE_ABOVE"]

#: arrays with more variances than this are interpolated (below it, direct quadrature)
INTERPOLATE_ABOVE = 2_048


def expect_interpolated(f: sp.Expr, K, *, tol: float = 2e-15, max_degree: int = 256,
                        segment_ratio: float = 4.0):
    """<f>_K for a large array of variances K > 0 via piecewise Chebyshev series in log K.

    The range is cut into segments with K_max/K_min <= ``segment_ratio`` so that the tolerance,
    relative to each segment's largest value, is nearly pointwise relative even where <f>_K
    varies over many orders of magnitude.  A segment whose series does not converge by
    ``max_degree`` is integrated directly.
    """
    K = np.asarray(K, dtype=float)
    lo, hi = float(K.min()), float(K.max())
    if lo <= 0 or hi == lo:
        return expect_numeric(f, K)
    logK = np.log(K)
    n_seg = max(1, int(np.ceil((np.log(hi) - np.log(lo)) / np.log(segment_ratio))))
    edges = np.linspace(np.log(lo), np.log(hi), n_seg + 1)
    which = np.clip(np.searchsorted(edges, logK, side="right") - 1, 0, n_seg - 1)
    out = np.empty_like(K)
    for s in range(n_seg):
        mask = which == s
        if not mask.any():
            continue
        a, b = edges[s], edges[s + 1]
        out[mask] = _segment(f, logK[mask], a, b, tol, max_degree)
    return out


def _segment(f, logK, a, b, tol, max_degree):
    deg = 16
    while deg <= max_degree:
        t = np.cos(np.pi * (np.arange(deg + 1) + 0.5) / (deg + 1))   # Chebyshev points (1st kind)
        vals = expect_numeric(f, np.exp((a + b) / 2 + (b - a) / 2 * t))
        coef = C.chebfit(t, vals, deg)
        scale = max(np.max(np.abs(vals)), 1e-300)
        if np.max(np.abs(coef[-4:])) <= tol * scale:
            x = (2 * logK - (a + b)) / (b - a)
            return C.chebval(np.clip(x, -1, 1), coef)
        deg *= 2
    return expect_numeric(f, np.exp(logK))
