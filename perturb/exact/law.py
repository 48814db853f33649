"""The exact one-input law of a finite-width network output, for any activation.

The output of one neuron is a Gaussian mixture, z | Σ^{(L)} ~ N(0, Σ^{(L)}) (conditional
Gaussianity, [LH] Lemma 4.4), so every statistic is an average over the law of Σ^{(L)}:

    E z^{2k} = (2k−1)!! E[(Σ^{(L)})^k],       p(z) = E[e^{−z²/2Σ}/√(2πΣ)],
    P[|z| > t] = E[erfc(t/√(2Σ))],             E log z² = E log Σ + ψ(½) + log 2,

and the law of Σ^{(L)} comes from the density evolution of :mod:`perturb.exact._chain`.  The
moments use the conditional moments of the last layer exactly; all other statistics use the
final law.  Each run is repeated at resolution levels r and 2r (every step halved); every
discretisation is moment-matching to third order, so errors are ∝ step⁴ (measured: the ratio
of successive errors is 14–16 for the moments), the answer is Richardson's (16 f_{2r} − f_r)/15
and the error estimate |f_{2r} − f_r|/3 (what a second-order error would leave: conservative,
since parts of the discretisation — the lower tail near the zeros of σ — converge more slowly
than the moments' fourth order), plus the mass lost to truncation.  Log-moments converge at
first order (log Y is singular where σ vanishes): 2 f_{2r} − f_r, error |f_{2r} − f_r|.

For a positively homogeneous σ (σ(λz) = λσ(z), λ > 0: ReLU, leaky ReLU, |z|, linear) with zero
biases the chain is multiplicative, Σ^{(L)} = K^{(1)} Π_ℓ X_ℓ with X_ℓ = (C_W/n_ℓ) Σ_j σ(g_j)²
independent, and σ(g)² = g² (a² or b²) on the half-lines (a = σ(1), b = −σ(−1)): the moments are
then exact products (``method = "product"``), the density evolution still gives the rest.

>>> law = exact_law("relu", widths=[4, 4], x=[1.0], C_W=2.0)
>>> round(law.moments[4] / (3 * law.moments[2] ** 2), 12)    # Π (1 + 5/n) (matrix model)
5.0625
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.special as sc

from ..activations import get_activation
from ..errors import PerturbError
from ..network import Network
from ._chain import KMAX, Cells, ChainState, Resolution, Transfer, sum_moments

__all__ = ["ExactLaw", "exact_law", "MAX_RESOLUTION", "ORDERS"]

#: moment orders reported (of z)
ORDERS = (2, 4, 6, 8)
#: the largest resolution level accepted (memory and time grow ∝ r²)
MAX_RESOLUTION = 16.0
#: relative error floor added to every moment's estimate (see exact_law)
FLOOR = 1e-9


@dataclass(frozen=True)
class ExactLaw:
    """The exact one-input law of z^{(L+1)}, with error estimates.

    Attributes:
        moments, cumulants: {M: E z^M}, {M: κ_M(z)} for M in (2, 4, 6, 8) (κ4 = E z⁴ − 3(E z²)²).
        error: {"moments": {M: ..}, "cumulants": {M: ..}, "log_mean": .., "log_var": ..,
            "p_zero": ..}: absolute error estimates.
        p_zero: P[z = 0] (an atom when every neuron of some layer is off and C_b = 0).
        log_mean, log_var: mean and variance of log Σ^{(L)} given Σ^{(L)} > 0.
        method: "density evolution" or "product" (moments of a homogeneous σ with zero biases).
        resolution: the level r of the coarser run.
        seconds: wall time.
    """

    moments: dict
    cumulants: dict
    error: dict
    p_zero: float
    log_mean: float
    log_var: float
    method: str
    resolution: float
    seconds: float
    _finals: tuple = field(repr=False, default=())

    def density(self, z: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """(density, error estimate) of the continuous part of z at points z ≠ 0.

        >>> law = exact_law("linear", widths=[3], x=[1.0])
        >>> float(law.density([1.0])[0][0]) > 0
        True
        """
        return self._extrapolate(lambda f: _density(f, np.asarray(z, dtype=float)))

    def tail(self, t: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """(P[|z| > t], error estimate) for thresholds t > 0."""
        t = np.asarray(t, dtype=float)
        if np.any(t <= 0):
            raise PerturbError("tail thresholds must be > 0")
        return self._extrapolate(lambda f: _tail(f, t))

    def _extrapolate(self, fn):
        a, b = (np.asarray(fn(f)) for f in self._finals)
        lost = max(f.lost for f in self._finals)
        return (16 * b - a) / 15, np.abs(b - a) + lost


def _is_homogeneous(sig) -> bool:
    """σ(λz) = λσ(z) for λ > 0, checked at 40 points and 3 scales (exact in binary for λ = 2^k)."""
    z = np.linspace(-3.7, 4.1, 40)
    f = np.asarray(sig(z), dtype=float)
    return all(np.allclose(np.asarray(sig(lam * z), dtype=float), lam * f, rtol=1e-14, atol=1e-300)
               for lam in (0.25, 2.0, 8.0))


def _zero_set(act, sig) -> tuple[tuple[float, float], ...]:
    """The z-intervals between kinks on which σ ≡ 0 (ReLU's z < 0): there Y = 0 is an atom."""
    pts = [-math.inf, *act.kinks, math.inf]
    out = []
    for lo, hi in zip(pts[:-1], pts[1:], strict=True):
        a = hi - 50.0 if lo == -math.inf and hi != math.inf else lo
        b = lo + 50.0 if hi == math.inf and lo != -math.inf else hi
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        probe = np.linspace(a, b, 41)[1:-1]
        if np.all(np.asarray(sig(probe), dtype=float) == 0):
            out.append((lo, hi))
    return tuple(out)


def _product_moments(sig, widths, cw, K1, kmax: int) -> list[float]:
    """E[(Σ^{(L)})^k], k = 0..kmax, for homogeneous σ and zero biases (exact)."""
    a2 = float(sig(np.array([1.0]))[0]) ** 2
    b2 = float(sig(np.array([-1.0]))[0]) ** 2
    # E[σ(g)^{2j}] = (a^{2j} + b^{2j})/2 · (2j−1)!!
    ymom = np.array([(a2 ** j + b2 ** j) / 2 * math.prod(range(1, 2 * j, 2)) for j in range(kmax + 1)])
    out = np.array([K1 ** k for k in range(kmax + 1)], dtype=float)
    for ell, n in enumerate(widths):
        tm = sum_moments(ymom, n)
        out *= tm * (cw[ell + 1] / n) ** np.arange(kmax + 1)
    return list(out)


def _grid(sig, widths, cw, cb, K1, res: Resolution) -> tuple[tuple[float, int], tuple[float, float]]:
    """The u-grid for log(Σ − C_b) and the range of t = log S covered by reference kernels.

    u runs from 70 below the smallest infinite-width log(K − C_b) to far enough above the largest
    for E Σ⁴ of a log-normal with ReLU's β = Σ log(1 + 5/n) (an upper bound on the spread of
    log Σ at the same widths for the activations tested).  References cover t from 30 below the
    smallest infinite-width log K (the kernel's shape is frozen below: weight e^{−15} corrections
    for smooth σ, counted in the error) to the top of the grid."""
    cells = Cells(0.01)
    K, lo, hi, tlo = K1, math.inf, -math.inf, math.log(K1)
    for ell in range(len(widths)):
        a = cells.mean_y(sig, K)
        K = cb[ell + 1] + cw[ell + 1] * a
        lo, hi = min(lo, math.log(cw[ell + 1] * a)), max(hi, math.log(cw[ell + 1] * a))
        tlo = min(tlo, math.log(K))
    beta = sum(math.log1p(5 / n) for n in widths)
    u0 = lo - 70.0
    u1 = hi + 4 * beta + 9 * math.sqrt(beta) + 6
    thi = max(math.log(K1), math.log(max(cb) + math.exp(u1)))
    return (u0, int(math.ceil((u1 - u0) / res.h)) + 2), (tlo - 30.0, thi)


def _run(sig, widths, cw, cb, K1, r: float, homogeneous: bool, progress,
         zero_set=()) -> tuple[ChainState, np.ndarray]:
    res = Resolution.level(r)
    cells = Cells(res.h_g)
    grid, t_range = _grid(sig, widths, cw, cb, K1, res)
    state = ChainState(u0=grid[0], h=res.h, w=np.zeros(grid[1]), offset=0.0, atoms=[(K1, 1.0)], lost=0.0)
    transfers: dict[int, Transfer] = {}
    L = len(widths)
    mom = None
    for ell, n in enumerate(widths):
        if progress:
            progress(f"resolution {r:g}: layer {ell + 1}/{L}")
        if n not in transfers:
            transfers[n] = Transfer(sig, n, res, cells, t_range, homogeneous, zero_set)
        state, mom = transfers[n].apply(state, cw[ell + 1], cb[ell + 1], grid, moments=ell == L - 1)
    return state, mom


def _finite(state: ChainState):
    """(Σ values, masses) of the final law's continuous part and its atoms with Σ > 0."""
    S = state.offset + np.exp(state.u)
    keep = state.w != 0
    atoms = [(s, m) for s, m in state.atoms if s > 0]
    return (np.concatenate([S[keep], [s for s, _ in atoms]]),
            np.concatenate([state.w[keep], [m for _, m in atoms]]))


def _density(state: ChainState, z: np.ndarray) -> np.ndarray:
    if np.any(z == 0):
        raise PerturbError("the density of z at 0 is infinite when P[z = 0] > 0 or undefined; give z != 0")
    S, m = _finite(state)
    return np.array([float(m @ (np.exp(-zi * zi / (2 * S)) / np.sqrt(2 * np.pi * S))) for zi in z])


def _tail(state: ChainState, t: np.ndarray) -> np.ndarray:
    S, m = _finite(state)
    return np.array([float(m @ sc.erfc(ti / np.sqrt(2 * S))) for ti in t])


def _log_moments(state: ChainState) -> tuple[float, float]:
    S, m = _finite(state)
    tot = m.sum()
    lm = float(m @ np.log(S)) / tot
    lv = float(m @ (np.log(S) - lm) ** 2) / tot
    return lm, lv


def _z_stats(sig_mom) -> tuple[dict, dict]:
    mom = {2 * k: math.prod(range(1, 2 * k, 2)) * float(sig_mom[k]) for k in range(1, 5)}
    mu = [1.0] + [mom.get(j, 0.0) for j in range(1, 9)]
    kap = [0.0] * 9
    for N in range(1, 9):
        kap[N] = mu[N] - sum(math.comb(N - 1, m - 1) * kap[m] * mu[N - m] for m in range(1, N))
    return mom, {M: kap[M] for M in ORDERS}


def exact_law(activation, widths: Sequence[int], x: Sequence[float], C_W=1.0, C_b=0.0, *,
              resolution: float = 1.0, method: str = "auto", progress: bool | None = None) -> ExactLaw:
    """The exact law of one output at one input (any activation, widths, C_W, C_b ≥ 0).

    Args:
        activation: an activation spec (name or expression in z).
        widths: hidden widths n_1..n_L.
        x: the input.
        C_W, C_b: a scalar or one value per layer 1..L+1.
        resolution: level r ≥ 1 of the coarser of the two runs (steps ∝ 1/r; time ∝ r²).
        method: "auto" (product moments for homogeneous σ with zero biases), or
            "evolution" (always density evolution).
        progress: show per-layer progress on stderr (None: only on a terminal).

    >>> law = exact_law("tanh", widths=[6, 6], x=[1.0])
    >>> law.moments[2] < 1.0 and law.error["moments"][2] < 1e-7
    True
    """
    net = Network(activation, widths=widths, C_W=C_W, C_b=C_b)
    act = get_activation(activation)
    if act.is_generic:
        raise PerturbError("the exact law needs a concrete activation, not the generic sigma(z)")
    if act.growth > 0:
        raise PerturbError(f"σ(√S g)² has no finite moments for large S (activation '{act.name}' grows "
                           f"like exp({act.growth:.3g} z²)); the exact law needs a sub-Gaussian σ")
    if method not in ("auto", "evolution"):
        raise PerturbError(f"method must be 'auto' or 'evolution', got {method!r}")
    if isinstance(resolution, bool) or not isinstance(resolution, int | float) or not (1 <= resolution <= MAX_RESOLUTION):
        raise PerturbError(f"resolution must be a number in [1, {MAX_RESOLUTION:g}], got {resolution!r}")
    xv = np.asarray(x, dtype=float)
    if xv.ndim != 1 or xv.size == 0 or not np.all(np.isfinite(xv)):
        raise PerturbError("x must be one finite input vector")
    cw, cb = net.C_W, net.C_b
    K1 = cb[0] + cw[0] * float(xv @ xv) / xv.size
    if K1 <= 0:
        raise PerturbError("the input is zero and C_b = 0: every preactivation vanishes (K1 = 0)")
    sig = act.numpy()
    show = sys.stderr.isatty() if progress is None else progress

    def note(msg):
        print(f"\rperturb exact: {msg}   ", end="", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    finals, stats = [], []
    homogeneous = _is_homogeneous(sig)
    zeros = _zero_set(act, sig)
    for r in (resolution, 2 * resolution):
        state, sig_mom = _run(sig, net.widths, cw, cb, K1, r, homogeneous, note if show else None, zeros)
        mom, kap = _z_stats(sig_mom)
        lm, lv = _log_moments(state)
        finals.append(state)
        stats.append((mom, kap, lm, lv, state.p_zero, state.lost))
    if show:
        print(file=sys.stderr)

    def rich(i, key=None):
        a, b = (s[i] if key is None else s[i][key] for s in stats)
        return (16 * b - a) / 15, abs(b - a) / 3

    lost = max(s[5] for s in stats)
    out_m, out_k, err_m, err_k = {}, {}, {}, {}
    for M in ORDERS:
        out_m[M], err_m[M] = rich(0, M)
        out_k[M], err_k[M] = rich(1, M)
        # + truncated mass, + a resolution-independent floor (FFT rounding, the 1e-17 cut-offs of
        # the small-sum levels and the interpolation in log S: measured up to 5e-10 relative)
        err_m[M] += (lost + FLOOR) * abs(out_m[M])
        err_k[M] += (lost + FLOOR) * abs(out_m[M])
    # log-moments converge at first order in the resolution (log Y is singular at the zeros of
    # σ; measured): linear extrapolation 2 f_2r − f_r, error |f_2r − f_r| (conservative)
    (lm1, lv1), (lm2, lv2) = ((s[2], s[3]) for s in stats)
    lm, elm = 2 * lm2 - lm1, abs(lm2 - lm1)
    lv, elv = 2 * lv2 - lv1, abs(lv2 - lv1)
    reloc = max(f.relocated for f in finals)
    pz, epz = rich(4)
    used = "density evolution"
    if method == "auto" and all(c == 0 for c in cb) and homogeneous:
        sm = _product_moments(sig, net.widths, cw, K1, KMAX)
        out_m, out_k = _z_stats(sm)
        err_m = {M: 4e-16 * abs(v) * (len(widths) + 1) * M for M, v in out_m.items()}
        err_k = {M: 4e-16 * abs(out_m[M]) * (len(widths) + 1) * M for M in ORDERS}
        used = "product"
    return ExactLaw(moments=out_m, cumulants=out_k,
                    error={"moments": err_m, "cumulants": err_k, "log_mean": elm + lost + reloc,
                           "log_var": elv + lost + reloc, "p_zero": epz, "lost_mass": lost,
                           "relocated_mass": reloc},
                    p_zero=pz, log_mean=lm, log_var=lv, method=used, resolution=float(resolution),
                    seconds=time.perf_counter() - t0, _finals=tuple(finals))
