"""Estimators with honest uncertainties: moments, k-statistics, joint cumulants, log-moments.

Every estimator returns an :class:`Estimate` ``(value, stderr, n, dof)``.  The value is the
full-sample estimate (for cumulants the unbiased k-statistic); the standard error comes from a
*grouped jackknife*: the samples are split into ``n_groups`` contiguous groups (default 32), the
statistic is recomputed with each group left out, and

    stderr² = (G − 1)/G · Σ_g (θ_(−g) − θ̄)².

For a raw moment this is exactly the batch-means standard error; for a nonlinear statistic
(k-statistics, ratios such as the kurtosis) it is the delta method without the algebra.  The
error estimate has ``dof = G − 1`` degrees of freedom, and :func:`perturb.montecarlo.verdict`
uses a Student-t reference with that many degrees of freedom — which is what keeps the
reported errors honest for heavy-tailed quantities (z⁶, the NTK at large L/n), whose sample
variance is itself noisy.  ``method="bootstrap"`` gives a percentile-free bootstrap standard
error instead.

k-statistics are computed from power sums through the moment–cumulant formula with every product
of moments replaced by its unbiased U-statistic (sums over *distinct* sample indices, expanded in
power sums by Möbius inversion on set partitions).  The construction is generic in the order and
covers joint cumulants of several variables (several inputs, several neurons) with the same code.

>>> import numpy as np
>>> x = np.random.default_rng(0).standard_normal(100_000)
>>> e = cumulant(x, 4)                     # κ4 of a Gaussian is 0
>>> abs(e.value) < 4 * e.stderr
True
>>> round(float(moment(x, 2).value), 2)
1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import PerturbError

__all__ = [
    "Estimate",
    "moment",
    "central_moment",
    "cumulant",
    "joint_cumulant",
    "log_moment",
    "standardized_moment",
    "standardized_cumulant",
    "jackknife",
    "bootstrap",
    "DEFAULT_GROUPS",
]

#: number of jackknife groups (the error estimate then has 31 degrees of freedom)
DEFAULT_GROUPS = 32


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate with its standard error.

    Attributes:
        value: the estimate (a float, or an array for vectorised estimates).
        stderr: its standard error (same shape as ``value``).
        n: the number of samples it was computed from.
        dof: degrees of freedom of the error estimate (``None``: treat it as exact, i.e. normal
            reference); the grouped jackknife gives ``n_groups − 1``.

    >>> e = Estimate(1.02, 0.01, 1000)
    >>> round(float(e.z(1.0)), 9)
    2.0
    """

    value: float | np.ndarray
    stderr: float | np.ndarray
    n: int
    dof: int | None = None

    def z(self, prediction) -> float | np.ndarray:
        """(value − prediction)/stderr."""
        return (np.asarray(self.value) - np.asarray(prediction)) / np.asarray(self.stderr)

    def __getitem__(self, idx) -> Estimate:
        """Index a vectorised estimate: ``est[0, 1]``."""
        return Estimate(np.asarray(self.value)[idx], np.asarray(self.stderr)[idx], self.n, self.dof)

    def as_pair(self) -> list:
        """``[value, stderr]`` (the CLI's JSON form)."""
        return [self.value, self.stderr]

    def __str__(self) -> str:
        if np.ndim(self.value) == 0:
            return f"{float(self.value):.6g} ± {float(self.stderr):.2g}"
        return f"Estimate(value={self.value!r}, stderr={self.stderr!r}, n={self.n})"


# --------------------------------------------------------------------------- input checks


def _as_samples(samples, name: str = "samples", min_n: int = 2) -> np.ndarray:
    x = np.asarray(samples, dtype=float)
    if x.ndim == 0:
        raise PerturbError(f"{name} must be an array of samples (axis 0 = sample index), got a scalar")
    if x.shape[0] < min_n:
        raise PerturbError(f"{name} needs at least {min_n} samples along axis 0, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise PerturbError(f"{name} contains {bad} non-finite values (NaN or inf); refusing to estimate")
    return x


def _check_order(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise PerturbError(f"order k must be a positive integer, got {k!r}")
    return int(k)


def _groups(n: int, n_groups: int) -> list[slice]:
    if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)) or n_groups < 2:
        raise PerturbError(f"n_groups must be an integer >= 2, got {n_groups!r}")
    g = min(int(n_groups), n)
    edges = np.linspace(0, n, g + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


# --------------------------------------------------------------------------- resampling


def jackknife(
    samples: np.ndarray | Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    *,
    n_groups: int = DEFAULT_GROUPS,
) -> Estimate:
    """Grouped (delete-one-group) jackknife of any statistic of the samples.

    Args:
        samples: an array with samples along axis 0, or a tuple of such arrays (same length),
            passed to ``statistic`` as separate arguments.
        statistic: a function of the sample array(s) returning a number or an array.
        n_groups: number of contiguous groups (default 32; the stderr then has 31 dof).

    Returns:
        Estimate with ``value = statistic(all samples)`` and the jackknife standard error.

    >>> x = np.random.default_rng(1).standard_normal(20_000)
    >>> kurt = jackknife(x, lambda s: np.mean(s**4) / np.mean(s**2) ** 2)
    >>> abs(kurt.value - 3) < 4 * kurt.stderr
    True
    """
    arrays = [samples] if isinstance(samples, np.ndarray) or not isinstance(samples, (tuple, list)) else list(samples)
    arrays = [_as_samples(a) for a in arrays]
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise PerturbError("all sample arrays must have the same number of samples")
    full = np.asarray(statistic(*arrays), dtype=float)
    groups = _groups(n, n_groups)
    reps = []
    for sl in groups:
        keep = np.ones(n, bool)
        keep[sl] = False
        reps.append(np.asarray(statistic(*[a[keep] for a in arrays]), dtype=float))
    return _jk_estimate(full, np.stack(reps), n)


def _jk_estimate(full: np.ndarray, reps: np.ndarray, n: int) -> Estimate:
    g = reps.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing error is inf: callers refuse it
        err = np.sqrt((g - 1) / g * np.sum((reps - reps.mean(axis=0)) ** 2, axis=0))
    value = full if full.ndim else float(full)
    stderr = err if err.ndim else float(err)
    return Estimate(value, stderr, n, g - 1)


def bootstrap(
    samples: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> Estimate:
    """Bootstrap standard error of ``statistic`` (resampling whole rows of ``samples``).

    >>> x = np.random.default_rng(2).exponential(size=5000)
    >>> e = bootstrap(x, np.mean, n_boot=100)
    >>> abs(e.value - 1) < 4 * e.stderr
    True
    """
    x = _as_samples(samples)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
        raise PerturbError(f"n_boot must be an integer >= 10, got {n_boot!r}")
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    full = np.asarray(statistic(x), dtype=float)
    reps = np.stack([np.asarray(statistic(x[rng.integers(0, n, n)]), dtype=float) for _ in range(n_boot)])
    err = reps.std(axis=0, ddof=1)
    return Estimate(full if full.ndim else float(full), err if err.ndim else float(err), n, None)


# --------------------------------------------------------------------------- moments


def moment(samples, k: int, *, n_groups: int = DEFAULT_GROUPS, method: str = "jackknife") -> Estimate:
    """Raw moment E[x^k] along axis 0 (vectorised over the other axes).

    The standard error is by batch means over ``n_groups`` groups (``method="jackknife"``,
    identical for a mean) or by bootstrap (``method="bootstrap"``).

    >>> x = np.random.default_rng(3).standard_normal((50_000, 2))
    >>> e = moment(x, 4)
    >>> bool(np.all(abs(e.value - 3) < 4 * e.stderr))
    True
    """
    k = _check_order(k)
    x = _as_samples(samples)
    if method == "bootstrap":
        return bootstrap(x, lambda s: np.mean(s**k, axis=0))
    if method != "jackknife":
        raise PerturbError(f"unknown method '{method}'; valid: jackknife, bootstrap")
    xk = x**k
    groups = _groups(x.shape[0], n_groups)
    sums = np.stack([xk[sl].sum(axis=0) for sl in groups])
    counts = np.array([sl.stop - sl.start for sl in groups], dtype=float).reshape((-1,) + (1,) * (x.ndim - 1))
    total, n = sums.sum(axis=0), x.shape[0]
    reps = (total - sums) / (n - counts)
    return _jk_estimate(total / n, reps, n)


def central_moment(samples, k: int, *, n_groups: int = DEFAULT_GROUPS) -> Estimate:
    """Central moment E[(x − Ex)^k] (plug-in; jackknife error and first-order bias removal).

    >>> x = np.random.default_rng(4).standard_normal(40_000) + 5
    >>> e = central_moment(x, 2)
    >>> abs(e.value - 1) < 4 * e.stderr
    True
    """
    k = _check_order(k)

    def stat(s):
        return np.mean((s - s.mean(axis=0)) ** k, axis=0)

    return jackknife(_as_samples(samples), stat, n_groups=n_groups)


def standardized_moment(samples, k: int, *, n_groups: int = DEFAULT_GROUPS) -> Estimate:
    """E[x^k] / (E[x²])^{k/2} (e.g. k = 4: the kurtosis ratio E z⁴/(E z²)² of a centred output).

    The ratio's standard error is the grouped jackknife (a delta method).

    >>> x = np.random.default_rng(5).standard_normal(40_000)
    >>> e = standardized_moment(x, 4)
    >>> abs(e.value - 3) < 4 * e.stderr
    True
    """
    k = _check_order(k)
    x = _as_samples(samples)
    groups = _groups(x.shape[0], n_groups)
    xk, x2 = x**k, x**2
    sk = np.stack([xk[sl].sum(axis=0) for sl in groups])
    s2 = np.stack([x2[sl].sum(axis=0) for sl in groups])
    n = x.shape[0]
    counts = np.array([sl.stop - sl.start for sl in groups], dtype=float).reshape((-1,) + (1,) * (x.ndim - 1))

    def ratio(a, b, m):
        return (a / m) / (b / m) ** (k / 2)

    full = ratio(sk.sum(axis=0), s2.sum(axis=0), n)
    loo = ratio(sk.sum(axis=0) - sk, s2.sum(axis=0) - s2, n - counts)
    return _jk_estimate(np.asarray(full, dtype=float), loo, n)


def log_moment(samples, k: int = 1, *, zeros: str = "raise", n_groups: int = DEFAULT_GROUPS) -> Estimate:
    """Raw moment E[(log|x|)^k] (for the log-normal regime of deep finite networks).

    Exact zeros (a ReLU network outputs 0 when a layer is completely off) have no logarithm:
    ``zeros="raise"`` (default) refuses, ``zeros="drop"`` estimates the moment conditional on
    x ≠ 0 (the fraction dropped is then part of what you measure).

    >>> x = np.exp(np.random.default_rng(6).standard_normal(40_000))   # log x ~ N(0, 1)
    >>> e = log_moment(x, 2)
    >>> abs(e.value - 1) < 4 * e.stderr
    True
    """
    k = _check_order(k)
    x = _as_samples(samples)
    zero = x == 0
    if np.any(zero):
        if zeros == "drop":
            if x.ndim != 1:
                raise PerturbError("zeros='drop' needs one-dimensional samples")
            x = x[~zero]
        elif zeros == "raise":
            raise PerturbError(
                f"{int(zero.sum())} samples are exactly 0 and have no logarithm; "
                "pass zeros='drop' to condition on x != 0"
            )
        else:
            raise PerturbError(f"zeros must be 'raise' or 'drop', got {zeros!r}")
    return moment(np.log(np.abs(x)), k, n_groups=n_groups)


# --------------------------------------------------------------------------- k-statistics


def _set_partitions(items: tuple[int, ...]):
    """All set partitions of ``items`` (tuples of blocks, each block a tuple)."""
    if not items:
        yield ()
        return
    first, rest = items[0], items[1:]
    for part in _set_partitions(rest):
        yield ((first,),) + part
        for i in range(len(part)):
            yield part[:i] + ((first,) + part[i],) + part[i + 1 :]


def _falling(n, m: int):
    out = 1.0
    for j in range(m):
        out = out * (n - j)
    return out


@lru_cache(maxsize=64)
def _kstat_terms(labels: tuple[int, ...]) -> tuple[tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, float], ...]], ...]:
    """The k-statistic of the joint cumulant of variables ``labels`` as Σ_σ c_σ(n) Π_A S_A.

    Returns a tuple of ``(blocks, coefficient polynomial)`` where blocks are sorted label
    multisets A (power sums S_A = Σ_i Π_{j∈A} x_j(i)) and the coefficient is a list of
    ``(m, c)``: c / n^(m) (falling factorial), summed over m.

    Moment–cumulant: κ = Σ_π (−1)^{|π|−1}(|π|−1)! Π_{B∈π} E[X_B]; the product over the m blocks
    of π is estimated without bias by the U-statistic (1/n^(m)) Σ_{i_1..i_m distinct}
    Π_b X_{B_b}(i_b), and the sum over distinct indices is Σ_{σ ≥ π} μ(π, σ) Π_{C∈σ} S_C with
    μ(π, σ) = Π_{C} (−1)^{k_C − 1}(k_C − 1)! (k_C blocks of π merged into C).
    """
    k = len(labels)
    acc: dict[tuple, dict[int, float]] = {}
    for pi in _set_partitions(tuple(range(k))):
        m = len(pi)
        c_pi = (-1) ** (m - 1) * math.factorial(m - 1)
        for sigma in _set_partitions(tuple(range(m))):
            mu = 1
            blocks = []
            for c in sigma:
                mu *= (-1) ** (len(c) - 1) * math.factorial(len(c) - 1)
                blocks.append(tuple(sorted(labels[j] for b in c for j in pi[b])))
            key = tuple(sorted(blocks))
            d = acc.setdefault(key, {})
            d[m] = d.get(m, 0.0) + c_pi * mu
    out = []
    for key, poly in acc.items():
        poly = tuple((m, c) for m, c in sorted(poly.items()) if c != 0)
        if poly:
            out.append((key, poly))
    return tuple(out)


def _kstat_from_sums(terms, sums: dict, n):
    """Evaluate Σ_σ c_σ(n) Π S_A; ``sums[A]`` arrays (leading axis: jackknife replicate or none)."""
    total = 0.0
    for blocks, poly in terms:
        coef = sum(c / _falling(n, m) for m, c in poly)
        prod = 1.0
        for a in blocks:
            prod = prod * sums[a]
        total = total + coef * prod
    return total


def _joint_kstat_estimate(variables: list[np.ndarray], labels: tuple[int, ...], n_groups: int) -> Estimate:
    """Joint k-statistic of ``variables[labels[0]], variables[labels[1]], ...`` with jackknife error."""
    n = variables[0].shape[0]
    k = len(labels)
    if n <= k:
        raise PerturbError(f"a k-statistic of order {k} needs more than {k} samples, got {n}")
    if k == 1:
        return moment(variables[labels[0]], 1, n_groups=n_groups)
    # cumulants of order >= 2 are shift invariant: centre for numerical accuracy
    centred = [v - v.mean(axis=0) for v in variables]
    terms = _kstat_terms(labels)
    groups = _groups(n, n_groups)
    needed = {a for blocks, _ in terms for a in blocks}
    gsums: dict[tuple, np.ndarray] = {}
    for a in needed:
        prod = centred[a[0]]
        for j in a[1:]:
            prod = prod * centred[j]
        gsums[a] = np.stack([prod[sl].sum(axis=0) for sl in groups])
    shape_tail = (1,) * (variables[0].ndim - 1)
    counts = np.array([sl.stop - sl.start for sl in groups], dtype=float).reshape((-1,) + shape_tail)
    full = _kstat_from_sums(terms, {a: s.sum(axis=0) for a, s in gsums.items()}, n)
    loo = _kstat_from_sums(terms, {a: s.sum(axis=0) - s for a, s in gsums.items()}, n - counts)
    return _jk_estimate(np.asarray(full, dtype=float), np.asarray(loo, dtype=float), n)


def cumulant(samples, k: int, *, n_groups: int = DEFAULT_GROUPS) -> Estimate:
    """The k-th cumulant κ_k along axis 0 as the unbiased k-statistic, with jackknife stderr.

    Vectorised over the remaining axes (each column its own cumulant).  ``E[value] = κ_k``
    exactly for any distribution with finite k-th moment (the k-statistic of Fisher).

    >>> x = np.random.default_rng(7).exponential(size=200_000)    # κ_k = (k−1)!
    >>> e = cumulant(x, 3)
    >>> abs(e.value - 2) < 4 * e.stderr
    True
    """
    k = _check_order(k)
    x = _as_samples(samples, min_n=k + 1)
    return _joint_kstat_estimate([x], (0,) * k, n_groups)


def standardized_cumulant(samples, k: int, *, n_groups: int = DEFAULT_GROUPS) -> Estimate:
    """κ_k / κ_2^{k/2} from the k-statistics (k = 4: the excess kurtosis), jackknife stderr.

    >>> x = np.random.default_rng(9).exponential(size=200_000)   # κ4/κ2² = 6
    >>> e = standardized_cumulant(x, 4)
    >>> abs(e.value - 6) < 4 * e.stderr
    True
    """
    k = _check_order(k)
    x = _as_samples(samples, min_n=k + 1)
    xc = x - x.mean(axis=0)
    groups = _groups(x.shape[0], n_groups)
    powers = {(0,) * r: np.stack([(xc[sl] ** r).sum(axis=0) for sl in groups]) for r in range(1, k + 1)}
    tail = (1,) * (x.ndim - 1)
    counts = np.array([sl.stop - sl.start for sl in groups], dtype=float).reshape((-1,) + tail)
    n = x.shape[0]
    tk, t2 = _kstat_terms((0,) * k), _kstat_terms((0, 0))

    def ratio(sums, m):
        return _kstat_from_sums(tk, sums, m) / _kstat_from_sums(t2, sums, m) ** (k / 2)

    full = ratio({a: p.sum(axis=0) for a, p in powers.items()}, n)
    loo = ratio({a: p.sum(axis=0) - p for a, p in powers.items()}, n - counts)
    return _jk_estimate(np.asarray(full, dtype=float), np.asarray(loo, dtype=float), n)


def joint_cumulant(samples, k: int | Sequence[int] | None = None, *, axis: int = 1,
                   n_groups: int = DEFAULT_GROUPS) -> Estimate:
    """Joint cumulant κ(x_{i1}, …, x_{ik}) of several variables, as an unbiased joint k-statistic.

    Args:
        samples: shape ``(n_samples, m, ...)``: ``m`` variables (inputs, neurons) along ``axis``.
        k: which variables, as a list of indices into that axis (repeats allowed:
            ``[0, 0, 1, 1]`` is κ(x0, x0, x1, x1)); an integer ``k`` means every variable once
            when ``k == m`` (``None``: all variables once).
        axis: the axis that indexes the variables (default 1).

    >>> rng = np.random.default_rng(8)
    >>> g = rng.standard_normal((100_000, 2)) @ np.array([[1.0, 0.5], [0.0, 1.0]])
    >>> e = joint_cumulant(g, [0, 1])                       # the covariance, 0.5
    >>> abs(e.value - 0.5) < 4 * e.stderr
    True
    """
    x = _as_samples(samples)
    if x.ndim < 2:
        raise PerturbError("joint_cumulant needs samples of shape (n_samples, m, ...)")
    if axis < 0:
        axis += x.ndim
    if axis == 0 or not 0 < axis < x.ndim:
        raise PerturbError(f"axis must index the variables (1..{x.ndim - 1}), got {axis}")
    m = x.shape[axis]
    if k is None:
        idx = tuple(range(m))
    elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
        if k != m:
            raise PerturbError(f"k={k} but there are {m} variables; pass the list of variable indices")
        idx = tuple(range(m))
    else:
        idx = tuple(int(i) for i in k)
        if not idx or any(i < 0 or i >= m for i in idx):
            raise PerturbError(f"variable indices must be in 0..{m - 1}, got {list(k)}")
    variables = [np.take(x, i, axis=axis) for i in range(m)]
    used = sorted(set(idx))
    remap = {v: j for j, v in enumerate(used)}
    labels = tuple(sorted(remap[i] for i in idx))
    return _joint_kstat_estimate([variables[v] for v in used], labels, n_groups)


def all_orders(samples, ks: Sequence[int], kind: str = "cumulant") -> dict[int, Estimate]:
    """Convenience: ``{k: cumulant(samples, k)}`` (or moments) for several orders."""
    fn = {"cumulant": cumulant, "moment": moment}.get(kind)
    if fn is None:
        raise PerturbError(f"kind must be 'cumulant' or 'moment', got {kind!r}")
    return {k: fn(samples, k) for k in ks}



# --------------------------------------------------------------------------- width extrapolation


def extrapolate_in_width(ns, estimates, *, degree: int | None = None, times_n: bool = False) -> Estimate:
    """The n → ∞ limit of independent estimates at widths ``ns``: fit y(n) = Σ_{k≤d} c_k n^{-k}.

    Weighted least squares (weights 1/stderr²) of the polynomial in 1/n of degree ``d``
    (default ``len(ns) − 1``: the exact interpolation through the points); returns c_0 with its
    propagated standard error.  ``times_n=True`` extrapolates n·E(n) instead of E(n) — the
    coefficient of 1/n of an O(1/n) statistic.  Vector estimates are fitted entry by entry.

    >>> ests = [Estimate(2.0 + 3.0 / n, 0.01, 1000) for n in (32, 64, 128)]
    >>> e = extrapolate_in_width((32, 64, 128), ests, degree=1)
    >>> round(float(e.value), 10), bool(e.stderr > 0.01)
    (2.0, True)
    """
    ns = np.asarray(ns, dtype=float)
    if ns.ndim != 1 or len(ns) != len(estimates) or len(ns) < 2 or np.any(ns <= 0):
        raise PerturbError(f"need one positive width per estimate (at least two), got ns={ns.tolist()} and "
                           f"{len(estimates)} estimates")
    d = len(ns) - 1 if degree is None else int(degree)
    if not 0 <= d < len(ns):
        raise PerturbError(f"degree must be 0..{len(ns) - 1} for {len(ns)} widths, got {degree!r}")
    scale = ns if times_n else np.ones_like(ns)
    ys = np.array([s * np.asarray(e.value, dtype=float) for s, e in zip(scale, estimates, strict=True)])
    ses = np.array([s * np.asarray(e.stderr, dtype=float) for s, e in zip(scale, estimates, strict=True)])
    A = np.vander(1 / ns, d + 1, increasing=True)             # columns 1, 1/n, ..., 1/n^d
    flat_y, flat_s = ys.reshape(len(ns), -1), ses.reshape(len(ns), -1)
    val, err = np.empty(flat_y.shape[1]), np.empty(flat_y.shape[1])
    for j in range(flat_y.shape[1]):
        w = 1 / flat_s[:, j] ** 2
        cov = np.linalg.inv(A.T @ (A * w[:, None]))
        val[j] = (cov @ (A.T @ (w * flat_y[:, j])))[0]
        err[j] = np.sqrt(cov[0, 0])
    shape = np.shape(estimates[0].value)
    dofs = [e.dof for e in estimates]
    return Estimate(val.reshape(shape)[()], err.reshape(shape)[()], int(sum(e.n for e in estimates)),
                    None if any(v is None for v in dofs) else min(dofs))
