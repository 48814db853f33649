"""Exact finite-width statistics of ReLU networks at one input (docs/reference.md §4; [LH §5], [HN], [ZP]).

With zero biases, the matrix model of lecture 5 (Prop. 5.2) makes the collective observable at
one input a product of independent factors:

    Σ^{(L)} = K^{(1)} Π_{ℓ=1}^{L} (C_W^{(ℓ+1)}/n_ℓ) χ²_{B_ℓ},     B_ℓ ~ Bin(n_ℓ, ½),

with K^{(1)} = C_W^{(1)} |x|²/n_0, and the output of one neuron is z = √Σ^{(L)} ξ, ξ ~ N(0, 1)
(conditional Gaussianity, docs/reference.md §3).  Every statistic in this module is derived from that law:

* exact moments E z^{2k} (``fractions.Fraction``) and, with symbolic widths, SymPy rational
  functions; exact cumulants of any order; the atom P[z = 0] = 1 − Π(1 − 2^{−n_ℓ});
* the exact mean and variance of log Σ^{(L)} given Σ^{(L)} > 0 (digamma/trigamma averaged over
  the binomials with B_ℓ = 0 excluded);
* the density and CDF of z and of log Σ^{(L)}: a binomial mixture of Meijer G-functions
  (mpmath, any precision; the mixture is grouped by the multiset of B's) and, for plotting, a
  vectorised numpy Fourier inversion in log space (the Mellin transform factorises over layers);
* the log-normal limit β = Σ log(1 + 5/n_ℓ) and its error;
* the input–output Jacobian (same law, K^{(1)} → C_W^{(1)} |u|²/n_0);
* the exact NTK mean at one input and the exact E z⁴ for non-Gaussian symmetric weights.

>>> law = relu_output_law([8, 8, 8], [1, 0.5, -0.3])
>>> law.moment(2)              # E z² = K^{(1)} at criticality (C_W = 2)
Fraction(67, 75)
>>> law.moment(4) / (3 * law.moment(2) ** 2) == Fraction(13, 8) ** 3
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache, lru_cache

import mpmath
import numpy as np
import scipy.special as sc
import sympy as sp

from .errors import PerturbError

__all__ = [
    "ReluLaw",
    "relu_output_law",
    "relu_jacobian_law",
    "chi2_binomial_moment",
    "layer_moment_symbolic",
    "moment_symbolic",
    "moment_series",
    "cumulants_from_moments",
    "beta",
    "beta_approx",
    "lognormal_error",
    "LogNormalError",
    "ntk_mean",
    "fourth_moment_nongaussian",
    "WEIGHT_MU4",
]

#: fourth moment E w⁴ of the unit-variance weight laws understood by the Monte Carlo laboratory
WEIGHT_MU4: dict[str, Fraction] = {
    "gaussian": Fraction(3),
    "uniform": Fraction(9, 5),
    "rademacher": Fraction(1),
}

#: the largest number of distinct multisets {B_ℓ} the Meijer-G mixture will sum by default
MAX_MEIJER_TERMS = 20000


# ---------------------------------------------------------------------------------------------
# input checking
# ---------------------------------------------------------------------------------------------


def _exact(v, name: str) -> Fraction:
    """A finite real number as an exact Fraction (floats via their shortest decimal repr)."""
    if isinstance(v, bool):
        raise PerturbError(f"{name} must be a number, got {v!r}")
    if isinstance(v, Fraction):
        return v
    if isinstance(v, int | np.integer):
        return Fraction(int(v))
    if isinstance(v, sp.Rational):
        return Fraction(int(v.p), int(v.q))
    if isinstance(v, str):
        try:
            return Fraction(v.strip())
        except (ValueError, ZeroDivisionError):
            raise PerturbError(f"{name} must be a number, got {v!r}") from None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise PerturbError(f"{name} must be a number, got {v!r}") from None
    if not math.isfinite(f):
        raise PerturbError(f"{name} must be finite, got {v!r}")
    return Fraction(repr(f))


def _widths(widths) -> tuple[int, ...]:
    if isinstance(widths, int | np.integer) and not isinstance(widths, bool):
        widths = [widths]
    try:
        ws = list(widths)
    except TypeError:
        raise PerturbError(f"widths must be a list of positive integers, got {widths!r}") from None
    if not ws:
        raise PerturbError("widths is empty: give the hidden widths n_1..n_L (at least one layer)")
    out = []
    for w in ws:
        if isinstance(w, bool) or not isinstance(w, int | np.integer | float) or float(w) != int(w):
            raise PerturbError(f"widths must be positive integers, got {w!r}")
        if int(w) < 1:
            raise PerturbError(f"widths must be >= 1, got {int(w)}")
        out.append(int(w))
    return tuple(out)


def _per_layer_cw(C_W, n: int) -> tuple[Fraction, ...]:
    """C_W^{(1)}..C_W^{(L+1)}: a scalar or one value per layer, each > 0."""
    if isinstance(C_W, str | bytes) or not isinstance(C_W, Sequence | np.ndarray):
        vals = [C_W] * n
    else:
        vals = list(C_W)
        if len(vals) != n:
            raise PerturbError(f"C_W has {len(vals)} entries; expected a scalar or one per layer ({n}: "
                               "layers 1..L+1)")
    out = []
    for v in vals:
        f = _exact(v, "C_W")
        if f <= 0:
            raise PerturbError(f"C_W must be > 0, got {v!r}")
        out.append(f)
    return tuple(out)


def _check_cb(C_b, n: int) -> None:
    vals = list(C_b) if isinstance(C_b, Sequence | np.ndarray) and not isinstance(C_b, str) else [C_b]
    for v in vals:
        if _exact(v, "C_b") != 0:
            raise PerturbError(f"C_b must be 0 for the exact ReLU results (the matrix model needs zero "
                               f"biases), got {v!r}")


#: the largest moment order (exact rationals with thousands of digits; the cumulant recursion is O(M²))
MAX_MOMENT = 200


def _moment_order(M) -> int:
    if isinstance(M, bool) or not isinstance(M, int | np.integer):
        raise PerturbError(f"moment order must be a positive even integer, got {M!r}")
    M = int(M)
    if M <= 0 or M % 2:
        raise PerturbError(f"moment order must be a positive even integer (odd moments vanish by "
                           f"symmetry), got {M}")
    if M > MAX_MOMENT:
        raise PerturbError(f"moment order {M} is too large (at most {MAX_MOMENT})")
    return M


def _dps(dps) -> int:
    if isinstance(dps, bool) or not isinstance(dps, int | np.integer) or dps < 1:
        raise PerturbError(f"dps must be a positive integer, got {dps!r}")
    return int(dps)


# ---------------------------------------------------------------------------------------------
# one layer: moments of χ²_B with B ~ Bin(n, ½)
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def chi2_binomial_moment(n: int, k: int) -> Fraction:
    """E[(χ²_B)^k] with B ~ Bin(n, ½), exactly (a Fraction).

    Given B, E[(χ²_B)^k | B] = B(B+2)⋯(B+2k−2); expanded in falling factorials of B (Stirling
    numbers of the second kind) and averaged with E[B(B−1)⋯(B−j+1)] = n(n−1)⋯(n−j+1)/2^j, so the
    cost is O(k²) big-integer operations whatever n is.  (The tests compare with the direct sum
    Σ_B C(n,B) 2^{−n} B(B+2)⋯(B+2k−2).)

    >>> chi2_binomial_moment(4, 1), chi2_binomial_moment(4, 2)
    (Fraction(2, 1), Fraction(9, 1))
    """
    if isinstance(n, bool) or isinstance(k, bool):
        raise PerturbError(f"need integers n >= 1 and k >= 0, got n={n!r}, k={k!r}")
    n, k = int(n), int(k)
    if n < 1 or k < 0:
        raise PerturbError(f"need n >= 1 and k >= 0, got n={n}, k={k}")
    # coefficients of Π_{j<k} (B + 2j) in powers of B
    poly = [1]
    for j in range(k):
        nxt = [0] * (len(poly) + 1)
        for i, c in enumerate(poly):
            nxt[i + 1] += c          # × B
            nxt[i] += 2 * j * c      # × 2j
        poly = nxt
    total = Fraction(0)
    for m, c in enumerate(poly):
        if c == 0:
            continue
        for j in range(m + 1):
            ff = math.prod(range(n - j + 1, n + 1))           # n(n−1)⋯(n−j+1) (0 if j > n)
            total += c * _stirling2(m, j) * Fraction(ff, 2 ** j)
    return total


@cache
def _stirling2(m: int, j: int) -> int:
    """Stirling number of the second kind S(m, j) (integer recursion)."""
    if m == j:
        return 1
    if j == 0 or j > m:
        return 0
    return j * _stirling2(m - 1, j) + _stirling2(m - 1, j - 1)


def layer_moment_symbolic(k: int, n: sp.Expr) -> sp.Expr:
    """E[(χ²_B)^k], B ~ Bin(n, ½), as a polynomial in (possibly symbolic) ``n``.

    Derived from the factorial moments E[B(B−1)⋯(B−j+1)] = n(n−1)⋯(n−j+1)/2^j: the rising
    product B(B+2)⋯(B+2k−2) is expanded in powers of B and each power in falling factorials
    (Stirling numbers of the second kind).

    >>> n = sp.Symbol("n", positive=True)
    >>> sp.factor(layer_moment_symbolic(2, n))
    n*(n + 5)/4
    """
    k = int(k)
    B = sp.Dummy("B")
    poly = sp.Poly(sp.prod([B + 2 * j for j in range(k)]) if k else sp.Integer(1), B)
    out = sp.Integer(0)
    for (m,), coeff in poly.terms():
        for j in range(m + 1):
            out += coeff * sp.functions.combinatorial.numbers.stirling(m, j) * sp.ff(n, j) / 2 ** j
    return sp.expand(out)


@lru_cache(maxsize=1024)
def _log_moments_layer(n: int, dps: int) -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf]:
    """(P[B ≥ 1], E[log χ²_B | B ≥ 1], Var[log χ²_B | B ≥ 1]) for B ~ Bin(n, ½), at ``dps`` digits."""
    # binomial weights below 10^-(dps+30) of the total are dropped (|ψ|, ψ' < log n + 10 there)
    half = (dps + 30) * math.log(10) + math.log(n + 1)
    t = math.ceil(math.sqrt(n * half / 2)) + 1               # Hoeffding: P(|B−n/2| > t) ≤ 2e^{−2t²/n}
    lo, hi = max(1, n // 2 - t), min(n, n // 2 + t + 1)
    bs = range(lo, hi + 1)
    with mpmath.workdps(dps + 10):
        w = [mpmath.exp(mpmath.loggamma(n + 1) - mpmath.loggamma(lo + 1) - mpmath.loggamma(n - lo + 1)
                        - n * mpmath.log(2))]
        for b in bs[:-1]:                                     # C(n,b+1) = C(n,b)(n−b)/(b+1)
            w.append(w[-1] * (n - b) / (b + 1))
        p = 1 - mpmath.mpf(2) ** -n                          # P[B ≥ 1], exactly
        m1 = [mpmath.digamma(mpmath.mpf(b) / 2) + mpmath.log(2) for b in bs]
        mean = mpmath.fsum(wi * mi for wi, mi in zip(w, m1, strict=True)) / p
        var = mpmath.fsum(wi * (mpmath.psi(1, mpmath.mpf(b) / 2) + (mi - mean) ** 2)
                          for b, wi, mi in zip(bs, w, m1, strict=True)) / p
        return +p, +mean, +var


@lru_cache(maxsize=64)
def _multisets(widths: tuple[int, ...], max_terms: int) -> dict[tuple[int, ...], Fraction]:
    """{sorted (B_1..B_L), all ≥ 1: total binomial weight}: the Meijer mixture's terms."""
    cur: dict[tuple[int, ...], Fraction] = {(): Fraction(1)}
    for n in widths:
        nxt: dict[tuple[int, ...], Fraction] = {}
        for key, w in cur.items():
            for b in range(1, n + 1):
                k2 = tuple(sorted(key + (b,)))
                nxt[k2] = nxt.get(k2, 0) + w * Fraction(math.comb(n, b), 2 ** n)
        if len(nxt) > max_terms:
            raise PerturbError(
                f"the Meijer-G mixture has more than {max_terms} terms for widths "
                f"{widths}; use density_numpy (log-space Fourier inversion) or raise max_terms")
        cur = nxt
    return cur


# ---------------------------------------------------------------------------------------------
# the law
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReluLaw:
    """The exact law of Y = s · Π_ℓ χ²_{B_ℓ} · χ²_1,  B_ℓ ~ Bin(n_ℓ, ½) independent.

    ``Σ = s Π χ²_{B_ℓ}`` is the collective observable Σ^{(L)} (or its Jacobian analogue) and
    ``z = √Σ ξ`` the output of one neuron (a Jacobian entry, or J·u); ``Y = z²``.

    Attributes:
        widths: hidden widths n_1..n_L.
        scale: s = K^{(1)} Π_ℓ C_W^{(ℓ+1)}/n_ℓ, exact (K^{(1)} = C_W^{(1)}|x|²/n_0 for the output,
            C_W^{(1)}|u|²/n_0 for the Jacobian along u).
        what: a label ("output" or "jacobian").
    """

    widths: tuple[int, ...]
    scale: Fraction
    what: str = "output"

    # ---- moments -----------------------------------------------------------------------------
    def sigma_moment(self, k: int) -> Fraction:
        """E[(Σ^{(L)})^k], exactly.

        >>> relu_output_law([3], [1]).sigma_moment(1)   # K^{(1)} = 2
        Fraction(2, 1)
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
            raise PerturbError(f"k must be a non-negative integer, got {k!r}")
        out = self.scale ** int(k)
        for n in self.widths:
            out *= chi2_binomial_moment(n, int(k))
        return out

    def moment(self, M: int) -> Fraction:
        """E z^M for even M > 0, exactly: (M−1)!! E[Σ^{M/2}].

        >>> relu_output_law([2], [1]).moment(4)   # 3 K² (1 + 5/2)  with K = 2
        Fraction(42, 1)
        """
        M = _moment_order(M)
        k = M // 2
        return math.prod(range(1, M, 2)) * self.sigma_moment(k)

    def norm2_moment(self, k: int, n_out: int = 1) -> Fraction:
        """E[(‖z‖²)^k] for ``n_out`` output neurons (‖J u‖² for the Jacobian law), exactly.

        Given Σ the outputs are iid N(0, Σ), so ‖z‖² = Σ χ²_{n_out} and
        E[(‖z‖²)^k] = E[Σ^k] n_out(n_out+2)⋯(n_out+2k−2).

        >>> law = relu_output_law([3], [1])
        >>> law.norm2_moment(2, n_out=1) == law.moment(4)
        True
        """
        if isinstance(n_out, bool) or not isinstance(n_out, int | np.integer) or n_out < 1:
            raise PerturbError(f"n_out (number of outputs) must be a positive integer, got {n_out!r}")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise PerturbError(f"k must be a positive integer, got {k!r}")
        return self.sigma_moment(int(k)) * math.prod(int(n_out) + 2 * j for j in range(int(k)))

    def cumulant(self, M: int) -> Fraction:
        """κ_M of z (M even), exactly, from the moments (odd moments vanish).

        >>> relu_output_law([2], [1]).cumulant(4)   # 42 − 3·2²
        Fraction(30, 1)
        """
        M = _moment_order(M)
        mom = [Fraction(1)] + [self.moment(j) if j % 2 == 0 else Fraction(0) for j in range(1, M + 1)]
        return cumulants_from_moments(mom)[M]

    def p_zero(self, dps: int | None = None):
        """P[z = 0] = P[some B_ℓ = 0] = 1 − Π(1 − 2^{−n_ℓ}), exactly (a Fraction).

        >>> relu_output_law([1, 1], [1]).p_zero()
        Fraction(3, 4)
        """
        out = Fraction(1)
        for n in self.widths:
            out *= 1 - Fraction(1, 2 ** n)
        return 1 - out

    # ---- log-moments ------------------------------------------------------------------------
    def log_moments(self, dps: int = 30) -> tuple[mpmath.mpf, mpmath.mpf]:
        """Mean and variance of log Σ^{(L)} **conditioned on Σ^{(L)} > 0** (every B_ℓ ≥ 1).

        Given B_ℓ ≥ 1, log χ²_{B_ℓ} has mean ψ(B_ℓ/2) + log 2 and variance ψ'(B_ℓ/2); the
        conditional layers stay independent, so means and variances add.  The event Σ = 0
        (probability :meth:`p_zero`) is excluded.  For log z² add E log ξ² = ψ(½) + log 2 and
        Var log ξ² = ψ'(½) = π²/2.

        >>> m, v = relu_output_law([1000], [1]).log_moments(dps=15)
        >>> round(float(v), 6), round(math.log(1 + 5 / 1000), 6)   # ≈ β for wide layers
        (0.005019, 0.004988)
        """
        dps = _dps(dps)
        with mpmath.workdps(dps + 10):
            mean = mpmath.log(mpmath.mpf(self.scale.numerator) / self.scale.denominator)
            var = mpmath.mpf(0)
            for n in self.widths:
                _, m, v = _log_moments_layer(n, dps)
                mean += m
                var += v
        with mpmath.workdps(dps):
            return +mean, +var

    # ---- density ----------------------------------------------------------------------------
    def _multisets(self, max_terms: int) -> dict[tuple[int, ...], Fraction]:
        """The Meijer mixture's terms (cached per widths); PerturbError beyond ``max_terms``."""
        return _multisets(self.widths, max_terms)

    def mixture_size(self, limit: int = MAX_MEIJER_TERMS) -> int | None:
        """Number of Meijer-G terms of the mpmath density (None if more than ``limit``)."""
        try:
            return len(_multisets(self.widths, limit))
        except PerturbError:
            return None

    def _meijer(self, y, readout: bool, dps: int, cdf: bool, max_terms: int):
        with mpmath.workdps(dps + 10):
            y = mpmath.mpf(y)
            s = mpmath.mpf(self.scale.numerator) / self.scale.denominator * 2 ** len(self.widths)
            if readout:
                s *= 2
            if y <= 0:
                return mpmath.mpf(0)
            x = y / s
            total = mpmath.mpf(0)
            try:
                terms = self._multisets(max_terms).items()
                for key, w in terms:
                    total += self._meijer_term(key, w, x, s, readout, cdf)
            except ValueError as exc:
                if isinstance(exc, PerturbError):
                    raise
                raise PerturbError(f"mpmath's Meijer G did not converge at y/s = {mpmath.nstr(x, 6)} "
                                   "(far in the tail, the density is below ~1e-300 there); use "
                                   "density_numpy or a point nearer the bulk") from None
            return total

    @staticmethod
    def _meijer_term(key, w, x, s, readout: bool, cdf: bool):
        """One multiset's term: weight × (density or CDF of s'·ΠGamma(α_i) at x = y/s')."""
        alphas = [mpmath.mpf(b) / 2 for b in key] + ([mpmath.mpf(1) / 2] if readout else [])
        norm = mpmath.fprod(mpmath.gamma(a) for a in alphas)
        ww = mpmath.mpf(w.numerator) / w.denominator
        if cdf:
            g = mpmath.meijerg([[1], []], [alphas, [0]], x, zeroprec=8 * mpmath.mp.prec)
            return ww * g / norm
        return ww * _meijer_g0m(alphas, x) / (norm * s)

    def density(self, z, dps: int = 30, *, max_terms: int = MAX_MEIJER_TERMS) -> mpmath.mpf:
        """Density of the continuous part of z at ``z`` (mpmath, ``dps`` digits).

        A binomial mixture over the multisets {B_ℓ ≥ 1} of Meijer G-functions: given the B's,
        z² is s' times a product of independent Gamma(B_ℓ/2) and Gamma(½) variables, whose
        density is G^{L+1,0}_{0,L+1} (the deep linear network with n_ℓ → B_ℓ).  The atom
        P[z = 0] is not included, so the density integrates to 1 − P[z = 0].  Cost: one Meijer G
        per multiset, C(n+L−1, L) of them for equal widths.

        >>> d = relu_output_law([1], [1]).density(1.0, dps=20)   # ½ · density of 2ξ₁ξ₂
        >>> mpmath.nstr(d, 15), mpmath.nstr(mpmath.besselk(0, 0.5) / (4 * mpmath.pi), 15)
        ('0.073562932337151', '0.073562932337151')
        """
        dps = _dps(dps)
        with mpmath.workdps(dps + 10):
            z = mpmath.mpf(z)
            if z == 0:
                raise PerturbError("the density of z at 0 is infinite (log singularity) when some "
                                   "B_ℓ can be 1; evaluate at z != 0")
            out = abs(z) * self._meijer(z * z, True, dps, False, max_terms)
        with mpmath.workdps(dps):
            return +out

    def cdf(self, z, dps: int = 30, *, max_terms: int = MAX_MEIJER_TERMS) -> mpmath.mpf:
        """P[z ≤ z0], the atom at 0 included (mpmath; Meijer G^{L+1,1}_{1,L+2} mixture).

        >>> mpmath.nstr(relu_output_law([1], [1]).cdf(0, dps=20), 6)     # ½(1 − ½) + ½
        '0.75'
        """
        dps = _dps(dps)
        with mpmath.workdps(dps + 10):
            z = mpmath.mpf(z)
            p0 = _mpf(self.p_zero())
            if z == 0:
                out = (1 - p0) / 2 + p0
            else:
                tail = (1 - p0) - self._meijer(z * z, True, dps, True, max_terms)   # P[z² > z0², z ≠ 0]
                out = 1 - tail / 2 if z > 0 else tail / 2
        with mpmath.workdps(dps):
            return +out

    def log_sigma_density(self, u, dps: int = 30, *, max_terms: int = MAX_MEIJER_TERMS) -> mpmath.mpf:
        """Density of log Σ^{(L)} at ``u`` (continuous part; integrates to 1 − P[Σ = 0])."""
        dps = _dps(dps)
        with mpmath.workdps(dps + 10):
            y = mpmath.exp(mpmath.mpf(u))
            out = y * self._meijer(y, False, dps, False, max_terms)
        with mpmath.workdps(dps):
            return +out

    def log_sigma_cdf(self, u, dps: int = 30, *, max_terms: int = MAX_MEIJER_TERMS) -> mpmath.mpf:
        """P[Σ^{(L)} > 0 and log Σ^{(L)} ≤ u] (mpmath)."""
        dps = _dps(dps)
        with mpmath.workdps(dps + 10):
            out = self._meijer(mpmath.exp(mpmath.mpf(u)), False, dps, True, max_terms)
        with mpmath.workdps(dps):
            return +out

    # ---- numpy: Fourier inversion in log space ------------------------------------------------
    def _log_charfn(self, tau: np.ndarray, readout: bool) -> np.ndarray:
        """E[Y^{iτ}; Y > 0] / s^{iτ}: the Mellin transform on the imaginary axis (unnormalised)."""
        tau = np.asarray(tau, dtype=float)
        out = np.ones_like(tau, dtype=complex)
        cache: dict[int, np.ndarray] = {}
        for n in self.widths:
            if n not in cache:
                b = np.arange(1, n + 1)
                logw = sc.gammaln(n + 1) - sc.gammaln(b + 1) - sc.gammaln(n - b + 1) - n * math.log(2)
                keep = logw > logw.max() - 80.0          # weights below e^-80 of the peak are noise
                b, logw = b[keep], logw[keep]
                a = b[:, None] / 2.0
                terms = np.exp(logw[:, None] + sc.loggamma(a + 1j * tau[None, :]) - sc.gammaln(a))
                cache[n] = terms.sum(axis=0)
            out *= cache[n]
        if readout:
            out *= np.exp(sc.loggamma(0.5 + 1j * tau) - sc.gammaln(0.5))
        return out

    def _grid(self, readout: bool) -> tuple[np.ndarray, float]:
        m, v = self.log_moments(dps=15)
        sd = math.sqrt(float(v) + (math.pi ** 2 / 2 if readout else 0.0))
        period = 2 * (80.0 + 12 * sd)        # left tails decay like e^{u/2}: ~e^-40 at 80
        h = 2 * math.pi / period
        tmax = 8.0
        while True:                           # extend until |φ(τ)| < 1e-18
            if abs(self._log_charfn(np.array([tmax]), readout)[0]) < 1e-18 or tmax > 1e4:
                break
            tmax *= 1.5
        return np.arange(0, tmax + h, h), h

    def _log_density_np(self, u: np.ndarray, readout: bool) -> np.ndarray:
        """Density of log Y (continuous part) at u, vectorised: trapezoid Fourier inversion."""
        tau, h = self._grid(readout)
        phi = self._log_charfn(tau, readout)
        log_s = math.log(self.scale) + len(self.widths) * math.log(2) + (math.log(2) if readout else 0.0)
        uu = np.asarray(u, dtype=float) - log_s
        w = np.full(tau.shape, h)
        w[0] = h / 2
        vals = (np.exp(-1j * np.outer(uu.ravel(), tau)) * phi[None, :]) @ w
        return (vals.real / math.pi).reshape(uu.shape)

    def density_numpy(self, z) -> np.ndarray:
        """The density of the continuous part of z, vectorised over ``z`` (float64).

        Fourier inversion of the characteristic function of log z² (the Mellin transform of the
        law factorises over layers, so the cost is O(Σ n_ℓ) per frequency, not the size of the
        mixture); trapezoid rule in frequency, accurate to ~1e-12 absolute.

        >>> law = relu_output_law([1], [1])
        >>> round(float(law.density_numpy([1.0])[0]), 12)     # K₀(½)/(4π)
        0.073562932337
        """
        z = np.abs(np.asarray(z, dtype=float))
        with np.errstate(divide="ignore"):
            u = 2 * np.log(z)
        out = np.zeros_like(z)
        ok = z > 0
        out[ok] = self._log_density_np(u[ok], True) / z[ok]
        out[~ok] = np.inf
        return out

    def log_sigma_density_numpy(self, u) -> np.ndarray:
        """The density of log Σ^{(L)} (continuous part), vectorised over ``u``."""
        return self._log_density_np(np.asarray(u, dtype=float), False)

    def lognormal_params(self) -> tuple[float, float]:
        """(μ, β): the log-normal approximation log Σ ≈ N(μ, β), β = Σ log(1+5/n), μ = log EΣ − β/2."""
        b = beta(self.widths)
        return math.log(self.sigma_moment(1)) - b / 2, b

    def lognormal_density_numpy(self, z) -> np.ndarray:
        """Density of z = √Σ ξ with log Σ ~ N(μ, β) (the log-normal picture), vectorised."""
        mu, b = self.lognormal_params()
        x, w = np.polynomial.hermite_e.hermegauss(80)
        w = w / w.sum()
        sig2 = np.exp(mu + math.sqrt(b) * x)                  # nodes of Σ
        z = np.asarray(z, dtype=float)[..., None]
        dens = np.exp(-z ** 2 / (2 * sig2)) / np.sqrt(2 * math.pi * sig2)
        return (1 - float(self.p_zero())) * (dens * w).sum(axis=-1)


def _meijer_g0m(alphas: list, x) -> mpmath.mpf:
    """G^{m,0}_{0,m}(x | α_1−1, ..., α_m−1): the density kernel of a product of m Gamma(α_i).

    m = 1 is x^{α−1}e^{−x}; m = 2 uses G^{2,0}_{0,2}(x|b1,b2) = 2 x^{(b1+b2)/2} K_{b1−b2}(2√x)
    (a standard identity, e.g. DLMF 10.32.10 with the Mellin–Barnes form; checked against mpmath.meijerg in the tests) — much faster than the
    general Meijer G far in the tail; m ≥ 3 calls mpmath.meijerg.
    """
    bs = [a - 1 for a in alphas]
    if len(bs) == 1:
        return x ** bs[0] * mpmath.exp(-x)
    if len(bs) == 2:
        return 2 * x ** ((bs[0] + bs[1]) / 2) * mpmath.besselk(bs[0] - bs[1], 2 * mpmath.sqrt(x))
    return mpmath.meijerg([[], []], [bs, []], x, zeroprec=8 * mpmath.mp.prec)


def _mpf(q: Fraction) -> mpmath.mpf:
    return mpmath.mpf(q.numerator) / q.denominator


# ---------------------------------------------------------------------------------------------
# constructors
# ---------------------------------------------------------------------------------------------


def relu_output_law(widths: Sequence[int], x: Sequence[float], C_W=2, C_b=0) -> ReluLaw:
    """The exact law of one output z^{(L+1)}(x) of a ReLU network with zero biases.

    Args:
        widths: hidden widths n_1..n_L (each ≥ 1).
        x: the input (n_0 = len(x)); must be non-zero.  Floats are read as their shortest
            decimal (0.3 → 3/10), so exact results match the input as typed.
        C_W: weight variance, a scalar or one per layer 1..L+1 (default 2, criticality).
        C_b: must be 0 (the matrix model needs zero biases).

    >>> relu_output_law([8, 8], [1, 0.5, -0.3]).scale    # K1 · Π C_W/n_ℓ = (67/75)/16
    Fraction(67, 1200)
    """
    ws = _widths(widths)
    xs = [_exact(v, "x") for v in (x if isinstance(x, Sequence | np.ndarray) else [x])]
    if not xs:
        raise PerturbError("x is empty: give the input vector")
    norm2 = sum(v * v for v in xs)
    if norm2 == 0:
        raise PerturbError("x = 0: with zero biases the output is identically 0 (the law degenerates "
                           "to a point mass); give a non-zero input")
    cw = _per_layer_cw(C_W, len(ws) + 1)
    _check_cb(C_b, len(ws) + 1)
    k1 = cw[0] * norm2 / len(xs)
    scale = k1
    for ell, n in enumerate(ws):
        scale *= cw[ell + 1] / n
    return ReluLaw(ws, scale, "output")


def relu_jacobian_law(widths: Sequence[int], n0: int, C_W=2, u: Sequence[float] | None = None,
                      C_b=0) -> ReluLaw:
    """The exact law of ∂z/∂x·u (default u = e_p: one Jacobian entry ∂z_1/∂x_p) at any x ≠ 0.

    Same product law as the output with K^{(1)} → C_W^{(1)}|u|²/n_0 [LH (124)]; ‖J u‖² for one
    output is ``law.moment(2)``, for n_{L+1} outputs Σ^{(L)}χ²_{n_{L+1}}.

    >>> relu_jacobian_law([5, 5], n0=3).moment(2)      # E (∂z/∂x_p)² = 2/n_0
    Fraction(2, 3)
    """
    ws = _widths(widths)
    if isinstance(n0, bool) or not isinstance(n0, int | np.integer) or n0 < 1:
        raise PerturbError(f"n0 (input dimension) must be a positive integer, got {n0!r}")
    if u is None:
        norm2 = Fraction(1)
    else:
        us = [_exact(v, "u") for v in u]
        if len(us) != n0:
            raise PerturbError(f"u has {len(us)} entries; expected n0 = {n0}")
        norm2 = sum(v * v for v in us)
        if norm2 == 0:
            raise PerturbError("u = 0: the directional derivative is identically 0; give u != 0")
    cw = _per_layer_cw(C_W, len(ws) + 1)
    _check_cb(C_b, len(ws) + 1)
    scale = cw[0] * norm2 / int(n0)
    for ell, n in enumerate(ws):
        scale *= cw[ell + 1] / n
    return ReluLaw(ws, scale, "jacobian")


# ---------------------------------------------------------------------------------------------
# symbolic moments, series, cumulants
# ---------------------------------------------------------------------------------------------


def cumulants_from_moments(moments: Sequence) -> list:
    """Cumulants κ_0..κ_N from raw moments μ_0 = 1, μ_1..μ_N (exact arithmetic if the inputs are).

    κ_N = μ_N − Σ_{m=1}^{N−1} C(N−1, m−1) κ_m μ_{N−m}.

    >>> cumulants_from_moments([1, 0, 1, 0, 3])      # standard normal
    [0, 0, 1, 0, 0]
    """
    mu = list(moments)
    kap = [0] * len(mu)
    for N in range(1, len(mu)):
        kap[N] = mu[N] - sum(math.comb(N - 1, m - 1) * kap[m] * mu[N - m] for m in range(1, N))
    return kap


def moment_symbolic(M: int, widths: Sequence[sp.Expr] | int, C_W: sp.Expr | Sequence | None = None,
                    K1: sp.Expr | None = None) -> sp.Expr:
    """E z^M as an exact rational function of symbolic (or numeric) widths and C_W.

    Args:
        M: even moment order.
        widths: a list of widths (SymPy symbols or integers), or an integer L for symbols
            n_1..n_L.
        C_W: per-layer C_W (list of L+1) or scalar; default the symbol C_W in every layer.
        K1: K^{(1)} (default the symbol K).

    >>> n = sp.Symbol("n", positive=True)
    >>> sp.factor(moment_symbolic(4, [n], C_W=2) / moment_symbolic(2, [n], C_W=2) ** 2)
    3*(n + 5)/n
    """
    M = _moment_order(M)
    k = M // 2
    if isinstance(widths, int):
        widths = sp.symbols(f"n_1:{widths + 1}", positive=True)
    widths = list(widths)
    L = len(widths)
    if C_W is None:
        C_W = sp.Symbol("C_W", positive=True)
    cws = list(C_W) if isinstance(C_W, Sequence) else [C_W] * (L + 1)
    if len(cws) != L + 1:
        raise PerturbError(f"C_W has {len(cws)} entries; expected one per layer ({L + 1})")
    K1 = sp.Symbol("K", positive=True) if K1 is None else sp.sympify(K1, strict=True)
    out = sp.factorial2(M - 1) * K1 ** k
    for ell, n in enumerate(widths):
        out *= (sp.sympify(cws[ell + 1], strict=True) / n) ** k * sp.factor(layer_moment_symbolic(k, sp.sympify(n, strict=True)))
    return out


def moment_series(M: int, L: int, order: int, C_W=2) -> sp.Expr:
    """E z^M / K^{M/2} for L equal hidden widths n, expanded in 1/n to ``order`` (exact).

    The finite-width engine's ReLU series must equal this truncation.

    >>> moment_series(4, 3, 2)
    3 + 45/n + 225/n**2
    """
    n = sp.Symbol("n", positive=True)
    eps = sp.Symbol("epsilon", positive=True)
    expr = moment_symbolic(M, [n] * L, C_W=C_W, K1=1)
    ser = sp.series(expr.subs(n, 1 / eps), eps, 0, order + 1).removeO()
    return sp.expand(ser.subs(eps, 1 / n))


# ---------------------------------------------------------------------------------------------
# log-normal limit
# ---------------------------------------------------------------------------------------------


def beta(widths: Sequence[int]) -> float:
    """β = Σ_ℓ log(1 + 5/n_ℓ) = Σ log(E[(χ²_B)²]/E[χ²_B]²): Var log Σ in the log-normal picture.

    >>> round(beta([10, 10]), 12)
    0.810930216216
    """
    return float(sum(math.log1p(5 / n) for n in _widths(widths)))


def beta_approx(widths: Sequence[int]) -> float:
    """5 Σ 1/n_ℓ (≈ 5 L/n): the leading-order value of β."""
    return float(5 * sum(Fraction(1, n) for n in _widths(widths)))


@dataclass(frozen=True)
class LogNormalError:
    """How far the exact law is from the log-normal picture, for one set of widths.

    Attributes:
        widths: hidden widths.
        depth_ratio: L/n (mean 1/n_ℓ times L).
        beta, beta_approx: Σ log(1+5/n_ℓ) and 5 Σ 1/n_ℓ.
        log_mean_error: exact E[log Σ | Σ>0] − (log EΣ − β/2).
        log_var_error: exact Var[log Σ | Σ>0] − β.
        moment6_ratio: E z⁶ exact / E z⁶ log-normal (the log-normal matches E z², E z⁴ by
            construction).
        ks: sup_u |F_exact(u) − F_lognormal(u)| for log Σ (conditioned on Σ > 0), numpy.
    """

    widths: tuple[int, ...]
    depth_ratio: float
    beta: float
    beta_approx: float
    log_mean_error: float
    log_var_error: float
    moment6_ratio: float
    ks: float


def lognormal_error(widths: Sequence[int]) -> LogNormalError:
    """Compare the exact law of log Σ^{(L)} (C_W = 2, x with K^{(1)} = 1) with N(−β/2, β).

    >>> e = lognormal_error([50] * 10)
    >>> e.depth_ratio, round(e.beta, 4)
    (0.2, 0.9531)
    """
    ws = _widths(widths)
    law = ReluLaw(ws, Fraction(2 ** len(ws), math.prod(ws)), "output")   # K^{(1)} = 1, C_W = 2
    b = beta(ws)
    mu = -b / 2
    m, v = law.log_moments(dps=20)
    mom6_ln = 15 * math.exp(3 * mu + 9 * b / 2)
    mom6 = float(law.moment(6))
    # KS distance on a grid, conditional law of log Σ
    sd = math.sqrt(float(v))
    u = np.linspace(float(m) - 10 * sd - 5, float(m) + 8 * sd + 1, 4001)
    dens = law.log_sigma_density_numpy(u)
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(u))])
    cdf /= 1 - float(law.p_zero())
    ln_cdf = 0.5 * sc.erfc(-(u - mu) / math.sqrt(2 * b))
    return LogNormalError(ws, float(sum(Fraction(1, n) for n in ws)), b, beta_approx(ws),
                          float(m) - mu, float(v) - b, mom6 / mom6_ln,
                          float(np.max(np.abs(cdf - ln_cdf))))


# ---------------------------------------------------------------------------------------------
# NTK mean and non-Gaussian weights
# ---------------------------------------------------------------------------------------------


def ntk_mean(widths: Sequence[int], x: Sequence[float], C_W=2, lambda_W=None, lambda_b=0,
             C_b=0) -> Fraction:
    """Exact E Θ(x, x) of one ReLU output at one input, any widths (zero biases; λ's per layer).

    Derivation (matrix-model style, Gaussian weights): with g^{(ℓ)} = ∂z/∂z^{(ℓ)} and N_ℓ the
    number of active neurons, rotation invariance of the rows of W^{(ℓ+1)} and Euler's identity
    for the degree-1 homogeneous ReLU net give E[|g^{(ℓ)}|² | layers ≤ ℓ] = κ_ℓ N_ℓ with
    κ_ℓ = (C_W^{(ℓ+1)}/n_ℓ) P_{ℓ+1}, P_ℓ = Π_{k=ℓ}^{L} C_W^{(k+1)}/2.  Hence
    E N_ℓ = (n_ℓ/2) P[layers 1..ℓ−1 not all off] and hence
    E Θ = Σ_{ℓ=1}^{L+1} P_ℓ [λ_b^{(ℓ)} a_ℓ + λ_W^{(ℓ)} E Σ^{(ℓ−1)} / C_W^{(ℓ)}],
    E Σ^{(m)} = K^{(1)} Π_{k≤m} C_W^{(k+1)}/2,  a_ℓ = Π_{k<ℓ, k≤L} (1 − 2^{−n_k}) (a_{L+1} = 1:
    the output bias always has gradient 1).  The weight part equals the infinite-width NTK; the
    bias part is smaller by the probability that an earlier layer is entirely off.  The second
    and higher moments are in :func:`perturb.ntk_exact.relu_ntk_moments`.

    >>> ntk_mean([10, 10], [1, 1])            # critical, NTK parameterisation, K = 2: Θ = 3K
    Fraction(6, 1)
    >>> ntk_mean([1, 1], [1], lambda_W=0, lambda_b=1)   # biases: layer 1 (1) + layer 2 (½) + output (1)
    Fraction(5, 2)
    """
    ws = _widths(widths)
    L = len(ws)
    xs = [_exact(v, "x") for v in x]
    norm2 = sum(v * v for v in xs)
    if norm2 == 0:
        raise PerturbError("x = 0: the NTK at a zero input degenerates; give a non-zero input")
    cw = _per_layer_cw(C_W, L + 1)
    _check_cb(C_b, L + 1)
    lw = cw if lambda_W is None else tuple(_exact(v, "lambda_W") for v in
                                           (lambda_W if isinstance(lambda_W, Sequence) else [lambda_W] * (L + 1)))
    lb = tuple(_exact(v, "lambda_b") for v in (lambda_b if isinstance(lambda_b, Sequence) else [lambda_b] * (L + 1)))
    if len(lw) != L + 1 or len(lb) != L + 1:
        raise PerturbError(f"lambda_W and lambda_b need a scalar or one value per layer ({L + 1})")
    # P[ℓ] for ℓ = 1..L+1 (index ℓ-1), P_{L+1} = 1
    P = [Fraction(1)] * (L + 2)
    for ell in range(L, 0, -1):
        P[ell] = P[ell + 1] * cw[ell] / 2          # C_W^{(ℓ+1)} is cw[ℓ]
    k1 = cw[0] * norm2 / len(xs)
    total = Fraction(0)
    esig = k1                                      # E Σ^{(0)} = K^{(1)}
    alive = Fraction(1)                            # P[layers 1..ℓ−1 all have an active neuron]
    for ell in range(1, L + 2):
        a = alive if ell <= L else Fraction(1)
        total += P[ell] * (lb[ell - 1] * a + lw[ell - 1] * esig / cw[ell - 1])
        if ell <= L:
            esig = esig * cw[ell] / 2
            alive *= 1 - Fraction(1, 2 ** ws[ell - 1])
    return total


def fourth_moment_nongaussian(widths: Sequence[int], x: Sequence[float], mu4=3, C_W=2) -> Fraction:
    """Exact E z⁴ of one ReLU output when the weights are iid symmetric with E w² = 1, E w⁴ = μ4.

    W_ij = √(C_W/n_{ℓ−1}) w_ij; ``mu4`` is a number, a name in :data:`WEIGHT_MU4` ("gaussian"
    3, "uniform" 9/5, "rademacher" 1) or one per layer.  Conditioning on the post-activations v
    of the previous layer, E[z_i⁴|v] = p²[3|v|⁴ + (μ4 − 3) Σ_j v_j⁴] (p = C_W/n), rows are
    independent and symmetric, so (E|v|⁴, E Σ v_j⁴) obey an exact 2×2 linear recursion; the input
    layer starts from (|x|⁴, Σ x_j⁴) — the answer depends on x beyond |x|.

    >>> law = relu_output_law([4, 4], [1, 2])
    >>> fourth_moment_nongaussian([4, 4], [1, 2], mu4="gaussian") == law.moment(4)
    True
    """
    ws = _widths(widths)
    L = len(ws)
    xs = [_exact(v, "x") for v in x]
    if sum(v * v for v in xs) == 0:
        raise PerturbError("x = 0: the output is identically 0; give a non-zero input")
    cw = _per_layer_cw(C_W, L + 1)

    def _mu(v):
        if isinstance(v, str):
            if v not in WEIGHT_MU4:
                raise PerturbError(f"unknown weight law {v!r}; known: {', '.join(WEIGHT_MU4)}")
            return WEIGHT_MU4[v]
        f = _exact(v, "mu4")
        if f < 1:
            raise PerturbError(f"mu4 = E w⁴ must be >= (E w²)² = 1, got {v!r}")
        return f

    mus = [_mu(v) for v in mu4] if isinstance(mu4, Sequence) and not isinstance(mu4, str) else [_mu(mu4)] * (L + 1)
    if len(mus) != L + 1:
        raise PerturbError(f"mu4 has {len(mus)} entries; expected one per layer ({L + 1})")
    n_prev = len(xs)
    S2 = sum(v * v for v in xs) ** 2          # (Σ v_j²)²
    Q = sum(v ** 4 for v in xs)               # Σ v_j⁴
    for ell in range(L):
        p = cw[ell] / n_prev
        n = ws[ell]
        ez4 = p * p * (3 * S2 + (mus[ell] - 3) * Q)     # E z_i⁴ (averaged over v)
        ez2z2 = p * p * S2                              # E[(E[z_i²|v])²] = E z_i² z_k², i ≠ k
        Q = n * ez4 / 2
        S2 = n * ez4 / 2 + n * (n - 1) * ez2z2 / 4
        n_prev = n
    p = cw[L] / n_prev
    return p * p * (3 * S2 + (mus[L] - 3) * Q)
