"""Density evolution of the one-input Markov chain Σ^{(0)} → Σ^{(1)} → … → Σ^{(L)} (one resolution).

Given ``Σ^{(ℓ−1)} = S`` the n = n_ℓ neurons of layer ℓ are iid N(0, S), so

    Σ^{(ℓ)} = C_b + (C_W/n) T,     T = Y_1 + … + Y_n,   Y_k = σ(√S g_k)² iid,  g_k ~ N(0, 1).

The law of Σ^{(ℓ)} is kept as masses on a uniform grid in ``u = log(Σ^{(ℓ)} − C_b)`` (spacing h),
plus atoms (the input kernel K^{(1)}; C_b when every neuron of a layer is off, Σ = 0 included).

**The kernel at one S** (:class:`_Reference`), in three exact-in-the-limit moves:

1. *the law of Y*: [−G, G] is cut into equal g-cells with exact Gaussian masses (``ndtr``
   differences), each at Y(g_mid) (midpoint rule, error O(h_g²)); cells where σ ≡ 0 give Y = 0
   exactly, so the atom P[Y = 0] of ReLU-like σ is exact;
2. *the n-fold sum*: the masses are linearly binned (mean-preserving) on a lattice of spacing
   Δ = δ·E[Y|S]·max(1, √n/3) and convolved n times by FFT — exact for lattice variables.  The
   term "one neuron on with 0 < Y < Δ, all others off" is taken out of the lattice and kept
   cell by cell; what is left at T = 0 besides the exact atom P[Y = 0]^n (mass O(Δ) or
   O(Δ^{n/2})) is put at the mean of log T under the local law ∝ t^{γ−1} on (0, Δ);
3. *to log space*: every value of log(T/E[Y|S]) is linearly binned on a grid of spacing h.

**Transfer** ([LH] Lemma 4.4 makes it exact): the kernel's shape, log(T/E[Y|S]), depends on S
smoothly (not at all for positively homogeneous σ), so it is computed at reference points
t_r = log S_r on a uniform grid (step ``DT``) and interpolated by 8-point Lagrange weights
λ_r(t); the position, log(C_W E[Y|S]/n), is exact per node.  The new law is then
Σ_r (μ_r ⋆ H_r): H_r the reference kernels, μ_r the node masses times λ_r binned at their
shifts — R FFT convolutions per layer.  Errors: O(h²), O(δ²), O(h_g²) (removed by running two
resolutions, :mod:`perturb.exact.law`) and the interpolation in t (DT⁸, below 1e-10).
The moments of Σ^{(L)} are taken one step earlier, exactly given Σ^{(L−1)}:
E[(C_b + C_W T/n)^k | S] from the cumulants of T (n times those of Y), also interpolated in t.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
import scipy.special as sc

from ..errors import PerturbError

#: g-range: the Gaussian mass beyond |g| = G is 1.5e-23
G_MAX = 10.0
#: nodes lighter than this fraction of the layer's mass are skipped (counted as lost mass)
NODE_FLOOR = 1e-26
#: spacing of the reference points in t = log S, and the Lagrange stencil
DT = 0.2
STENCIL = 8
#: the v = log(T/E[Y|S]) grid of a reference kernel starts here
V_LO = -60.0
#: the highest moment of Σ^{(L)} taken exactly
KMAX = 4
#: small-sum levels: τ_j = SPLIT·D_j, D_{j+1} = D_j/REFINE, at most MAX_LEVELS
SPLIT, REFINE, MAX_LEVELS = 16, 64, 24
#: exponential tilt of the n-fold sum, per unit of T/E[Y|S] (see _tilted_power)
TILT = 0.1


@dataclass(frozen=True)
class Resolution:
    """The three discretisation steps of one run (see the module docstring).

    Attributes:
        h: spacing of the u = log(Σ − C_b) grid.
        delta: lattice spacing of the n-fold sum, relative to E[Y | S].
        h_g: width of the g-cells.
    """

    h: float
    delta: float
    h_g: float

    @classmethod
    def level(cls, r: float) -> Resolution:
        """Resolution level r (≥ 1): every step proportional to 1/r."""
        return cls(h=0.02 / r, delta=0.04 / r, h_g=0.04 / r)


@dataclass
class ChainState:
    """The law of Σ^{(ℓ)}: grid masses in u = log(Σ − offset), atoms [(Σ value, mass)] (Σ = 0
    included), the mass lost to truncation and the mass relocated at T = 0 (weighted by 1/γ)."""

    u0: float
    h: float
    w: np.ndarray
    offset: float
    atoms: list
    lost: float
    relocated: float = 0.0

    @property
    def u(self) -> np.ndarray:
        return self.u0 + self.h * np.arange(self.w.size)

    @property
    def p_zero(self) -> float:
        """P[Σ = 0]."""
        return sum(m for s, m in self.atoms if s == 0)

    def nodes(self, floor: float = NODE_FLOOR) -> tuple[np.ndarray, np.ndarray, float]:
        """(S values, masses, skipped mass) of the grid nodes and the atoms; a node is skipped
        when its mass times (1 + (S/E S)^KMAX) is below ``floor`` (it cannot move E Σ^KMAX)."""
        S = self.offset + np.exp(self.u)
        total = float(np.abs(self.w).sum()) + sum(abs(m) for _, m in self.atoms)
        mean = (float(self.w @ S) + sum(s * m for s, m in self.atoms)) / max(total, 1e-300)
        keep = np.abs(self.w) * (1 + (S / max(mean, 1e-300)) ** KMAX) > floor * max(total, 1e-300)
        out_S = np.concatenate([S[keep], [s for s, _ in self.atoms]])
        m = np.concatenate([self.w[keep], [m for _, m in self.atoms]])
        return out_S, m, float(np.abs(self.w[~keep]).sum())


class Cells:
    """Equal g-cells on [−G, G] (g = 0 is an edge; the cells next to it split geometrically), two
    points per cell with half
    the cell's exact Gaussian mass each, at the cell's mean ± standard deviation under N(0, 1):
    they reproduce the cell's moments of order 0, 1, 2 (error O(h_g⁴) in smooth functionals)."""

    def __init__(self, h_g: float):
        M = 2 * math.ceil(G_MAX / h_g)
        e = np.linspace(-G_MAX, G_MAX, M + 1)
        # the two cells at g = 0 (a zero of most σ: Y ≈ c g² there, log Y singular) are split
        # geometrically down to h·2^-60, so that log-moments see the lower tail of Y
        h = e[1] - e[0]
        geo = h * 2.0 ** -np.arange(1, 61)
        e = np.unique(np.concatenate([e, geo, -geo, [0.0]]))
        # ndtr differences on the side where they keep their relative precision
        mass = np.where(e[1:] <= 0, sc.ndtr(e[1:]) - sc.ndtr(e[:-1]), sc.ndtr(-e[:-1]) - sc.ndtr(-e[1:]))
        pdf = np.exp(-e * e / 2) / math.sqrt(2 * math.pi)
        mid = 0.5 * (e[1:] + e[:-1])
        # cell mean and variance about the midpoint c: ∫gφ = φ(a) − φ(b), ∫g²φ = mass + aφ(a) − bφ(b)
        with np.errstate(all="ignore"):
            mean_g = (pdf[:-1] - pdf[1:]) / mass
            d1 = mean_g - mid
            second = 1 + (e[:-1] * pdf[:-1] - e[1:] * pdf[1:]) / mass - 2 * mid * mean_g + mid ** 2
        ok = mass > 1e-300
        mean = np.where(ok, mid + np.where(ok, d1, 0.0), mid)
        var = np.where(ok, second - d1 ** 2, 0.0)
        sd = np.sqrt(np.clip(var, 0.0, np.diff(e) ** 2 / 4))
        lo_pt, hi_pt = mean - sd, mean + sd
        # geometric cells at 0: the two points match E log|g| and Var log|g| (density ≈ uniform
        # there), so that log Y (singular at g = 0) is integrated to high order too
        c1, c2 = np.abs(e[:-1]), np.abs(e[1:])
        c1, c2 = np.minimum(c1, c2), np.maximum(c1, c2)
        geo_cell = (c2 < h * 0.999) & (c1 > 0)
        a1, a2 = c1[geo_cell], c2[geo_cell]
        l1, l2 = np.log(a1), np.log(a2)
        m1 = (a2 * l2 - a1 * l1) / (a2 - a1) - 1
        m2 = (a2 * (l2 ** 2 - 2 * l2 + 2) - a1 * (l1 ** 2 - 2 * l1 + 2)) / (a2 - a1)
        sl = np.sqrt(np.maximum(m2 - m1 ** 2, 0.0))
        sign = np.sign(mid[geo_cell])
        lo_pt[geo_cell], hi_pt[geo_cell] = sign * np.exp(m1 - sl), sign * np.exp(m1 + sl)
        self.mid = np.concatenate([lo_pt, hi_pt])
        self.mass = np.concatenate([mass, mass]) / 2

    def y(self, sig, S: float) -> np.ndarray:
        """Y = σ(√S g)² at the points; refuses non-finite values."""
        with np.errstate(all="ignore"):
            y = np.asarray(sig(math.sqrt(S) * self.mid), dtype=float) ** 2
        if not np.all(np.isfinite(y)):
            raise PerturbError(f"σ(√S g)² is not finite for S = {S:.4g} (|g| ≤ {G_MAX:g}): the "
                               "activation grows too fast for the chain's variances")
        return np.broadcast_to(y, self.mid.shape)

    def mean_y(self, sig, S: float | np.ndarray) -> float | np.ndarray:
        """E[Y | S] for one S or an array of S."""
        if np.ndim(S) == 0:
            return float(self.y(sig, float(S)) @ self.mass)
        S = np.asarray(S, dtype=float)
        out = np.empty(S.size)
        for b in range(0, S.size, 64):
            z = np.sqrt(S[b:b + 64])[:, None] * self.mid[None, :]
            with np.errstate(all="ignore"):
                out[b:b + 64] = (np.asarray(sig(z), dtype=float) ** 2) @ self.mass
        if not np.all(np.isfinite(out)):
            raise PerturbError("σ(√S g)² is not finite for some S of the chain: the activation grows "
                               "too fast")
        return out


def sum_moments(ymom: np.ndarray, n: int) -> np.ndarray:
    """E[T^k], k = 0..len(ymom)−1, for T a sum of n iid copies of Y with raw moments ymom."""
    kmax = len(ymom) - 1
    kap = [0.0] * (kmax + 1)
    for N in range(1, kmax + 1):
        kap[N] = ymom[N] - sum(math.comb(N - 1, m - 1) * kap[m] * ymom[N - m] for m in range(1, N))
    kap = [n * k for k in kap]
    mom = [1.0] + [0.0] * kmax
    for N in range(1, kmax + 1):
        mom[N] = sum(math.comb(N - 1, m - 1) * kap[m] * mom[N - m] for m in range(1, N + 1))
    return np.array(mom)


def _stencil(pos: np.ndarray, nbins: int) -> tuple[np.ndarray, np.ndarray]:
    """Cubic (4-point Lagrange) deposition of unit masses at fractional indices ``pos``: indices
    and weights of shape (len(pos), 4).  The weights reproduce the moments 0..3 of each point, so
    the error of a binned law in smooth functionals is O(h⁴); the stencil is shifted inwards at
    the ends of [0, nbins)."""
    q = np.floor(pos).astype(np.int64)
    start = np.clip(q - 1, 0, max(nbins - 4, 0))
    nodes = start[:, None] + np.arange(4)[None, :]
    x = pos[:, None] - nodes                                   # offsets from each node
    w = np.ones(nodes.shape)
    for j in range(4):
        for m in range(4):
            if m != j:
                w[:, j] *= x[:, m] / (j - m)
    return nodes, w


def _bin(nbins: int, pos: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, float]:
    """Deposit masses m at fractional indices pos into nbins bins (cubic); (bins, mass lost)."""
    pos, m = np.asarray(pos, dtype=float).ravel(), np.asarray(m, dtype=float).ravel()
    inside = (pos >= 0) & (pos <= nbins - 1)
    lost = float(np.abs(m[~inside]).sum())
    nodes, w = _stencil(pos[inside], nbins)
    out = np.bincount(nodes.ravel(), weights=(w * m[inside, None]).ravel(), minlength=nbins)
    return out, lost


@dataclass(frozen=True)
class _Reference:
    """The kernel at one S: H (masses of v = log(T/E[Y|S]) on the grid V_LO + h·p), the atom
    P[T = 0] = P[Y = 0]^n, the relative moments E[(T/E[Y|S])^k] and the bookkeeping masses."""

    H: np.ndarray
    a: float
    atom: float
    rel_moments: np.ndarray
    lost: float
    relocated: float


def reference(sig, S: float, n: int, res: Resolution, cells: Cells, zero_set=()) -> _Reference:
    """The kernel of one step at Σ^{(ℓ−1)} = S (module docstring, moves 1–3).  ``zero_set``: the
    z-intervals where σ ≡ 0 (the atom P[Y = 0]); elsewhere a Y that underflows (GELU far left)
    is raised to the bottom of the v-grid and counted as relocated."""
    y = cells.y(sig, S)
    cm = cells.mass
    a = float(y @ cm)
    if a <= 0:
        raise PerturbError(f"σ(√S g) vanishes for almost every g at S = {S:.4g}: the chain is "
                           "deterministic there")
    z = math.sqrt(S) * cells.mid
    atom = np.zeros(y.shape, dtype=bool)
    for lo, hi in zero_set:
        atom |= (z > lo) & (z < hi)
    atom &= y == 0
    tiny = a * math.exp(V_LO + 2 * res.h)
    low = ~atom & (y < tiny)
    under = float(cm[low].sum())
    y = np.where(low, tiny, y)
    p0 = float(cm[atom].sum())
    yr = y / a
    ymom, p = np.empty(KMAX + 1), cm
    for k in range(KMAX + 1):
        ymom[k] = p.sum()
        p = p * yr
    rel = sum_moments(ymom, n)
    pos = ~atom
    if n == 1:
        vmax = math.log(float(y.max()) / a) + 1
        nv = int(math.ceil((vmax - V_LO) / res.h)) + 2
        H, lost = _bin(nv, (np.log(y[pos] / a) - V_LO) / res.h, cm[pos])
        return _Reference(H, a, p0, rel, lost, under)
    D = res.delta * a * max(1.0, math.sqrt(n) / 3.0)
    tmax = (n - 1) * 4.0 * a + float(y.max())
    vmax = math.log(tmax / a) + 2
    nv = int(math.ceil((vmax - V_LO) / res.h)) + 2
    H = np.zeros(nv)
    lost = 0.0
    one = n * p0 ** (n - 1) if p0 > 0 else 0.0
    if one:
        # exactly one neuron on, all others off: kept cell by cell (no lattice)
        h1, l1 = _bin(nv, (np.log(y[pos] / a) - V_LO) / res.h, one * cm[pos])
        H += h1
        lost += l1
    # levels j = 0, 1, …: the event {every Y < τ_{j−1}, some Y ≥ τ_j} on a lattice of spacing D_j,
    # τ_j = SPLIT·D_j (so T ≥ τ_j is resolved to 1/SPLIT), D_{j+1} = D_j/REFINE
    top, Dj = math.inf, D
    rest = 1.0
    for _ in range(MAX_LEVELS):
        tau = SPLIT * Dj
        # level 0: twice the range (room for the tilted tail, see _tilted_power); then no wrap
        span = 2 * tmax if top == math.inf else n * top
        nfft = sfft.next_fast_len(int(math.ceil(span / Dj)) + 4, real=True)
        below = y < top
        yb, mb = y[below], cm[below]
        sm = yb < tau
        lat, l0 = _bin(nfft, yb / Dj, mb)
        lat_s, _ = _bin(nfft, yb[sm] / Dj, mb[sm])
        if top == math.inf:
            lost += l0
        T = _tilted_power(lat, lat_s, n, one, TILT * Dj / a)
        nodes, wts = _log_stencil(nfft, math.log(Dj / a), res.h)
        h2 = np.bincount(nodes.ravel(), weights=(wts * T[1:, None]).ravel())
        if h2.size > nv:
            lost += float(np.abs(h2[nv:]).sum())
            h2 = h2[:nv]
        H[:h2.size] += h2
        lost += abs(float(T[0]))
        sm = below & (y < tau)
        # what is left: every Y < τ, beyond the atom and the one-neuron terms
        ps = float(cm[sm].sum())
        rest = ps ** n - p0 ** n - one * (ps - p0)
        top, Dj = tau, Dj / REFINE
        if abs(rest) < 1e-17 or top / a < 1e-18:
            break
    gamma = 1.0 if p0 > 0 else n / 2.0
    h3, l3 = _bin(nv, np.array([(math.log(top / a) - 1.0 / gamma - V_LO) / res.h]), np.array([rest]))
    H += h3
    return _Reference(H, a, p0 ** n, rel, lost + l3, abs(rest) / gamma + under)


@functools.lru_cache(maxsize=64)
def _log_stencil(nfft: int, log_d: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Cubic deposition of the lattice points k·d (k = 1..nfft−1) on the grid V_LO + h·p (cached:
    the relative lattice is the same for every reference of a level)."""
    pos = (np.log(np.arange(1, nfft)) + log_d - V_LO) / h
    if pos.min() < 1:
        raise PerturbError("internal: a lattice point fell below the v-grid (V_LO)")
    return _stencil(pos, int(pos.max()) + 4)


def _tilted_power(lat: np.ndarray, lat_s: np.ndarray, n: int, one: float, theta: float) -> np.ndarray:
    """lat^{*n} − lat_s^{*n} − one·(lat − lat_s) by FFT, accurate *relative to the tail* too.

    An FFT convolution carries absolute errors ~1e-16 of its largest entry, which would swamp
    the far tail that E T⁴ needs.  Exponential tilting commutes with convolution, so the same
    power is also taken of lat·e^{θk} (θ per lattice step) and untilted; each entry is taken
    from the run with the smaller error bound.  The lattice must leave room above the sum's
    support for the tilted tail (level 0 is padded to twice its range; with TILT = 0.1 per unit
    E[Y|S] the tilted tail of a ReLU-type sum, rate 1/4, is ~1e-20 of its peak there)."""
    nfft = lat.size
    k = np.arange(nfft)
    outs, errs = [], []
    for th in (0.0, theta):
        tilt = np.exp(th * k) if th else 1.0
        Fl, Fs = sfft.rfft(lat * tilt), sfft.rfft(lat_s * tilt)
        part = Fl ** n - Fs ** n
        if one:
            part -= one * (Fl - Fs)
        T = sfft.irfft(part, n=nfft)
        scale = float(np.abs(T).max())
        if th:
            T = T / tilt
            outs.append(T)
            errs.append(1e-15 * scale / tilt)
        else:
            outs.append(T)
            errs.append(np.full(nfft, 1e-15 * scale))
    return np.where(errs[1] < errs[0], outs[1], outs[0])


def _lagrange(t: np.ndarray, t0: float, dt: float, nref: int) -> tuple[np.ndarray, np.ndarray]:
    """8-point Lagrange weights on the uniform grid t0 + dt·r (r = 0..nref−1): (indices, weights),
    each of shape (len(t), STENCIL); a single reference gets weight 1."""
    if nref == 1:
        return np.zeros((t.size, 1), dtype=np.int64), np.ones((t.size, 1))
    x = (t - t0) / dt
    start = np.clip(np.floor(x).astype(np.int64) - STENCIL // 2 + 1, 0, nref - STENCIL)
    idx = start[:, None] + np.arange(STENCIL)[None, :]
    wts = np.ones(idx.shape)
    for j in range(STENCIL):
        for m in range(STENCIL):
            if m != j:
                wts[:, j] *= (x - idx[:, m]) / (idx[:, j] - idx[:, m])
    return idx, wts


class Transfer:
    """One layer's transfer operator (width n, C_W, C_b of the next layer) at one resolution,
    with the reference kernels computed lazily on the grid t = t0 + DT·r and cached."""

    def __init__(self, sig, n: int, res: Resolution, cells: Cells, t_range: tuple[float, float],
                 homogeneous: bool, zero_set=()):
        self.sig, self.n, self.res, self.cells = sig, n, res, cells
        self.zero_set = zero_set
        self.homogeneous = homogeneous
        lo, hi = t_range
        if homogeneous:
            self.t0, self.nref = 0.0, 1
        else:
            self.t0 = lo - (STENCIL // 2) * DT
            self.nref = int(math.ceil((hi - lo) / DT)) + STENCIL + 1
        self.t_range = (lo, hi)
        self._refs: dict[int, _Reference] = {}
        self._a_cache: dict[float, float] = {}

    def ref(self, r: int) -> _Reference:
        if r not in self._refs:
            self._refs[r] = reference(self.sig, math.exp(self.t0 + DT * r), self.n, self.res, self.cells,
                                      self.zero_set)
        return self._refs[r]

    def mean_y(self, S: np.ndarray, idx: np.ndarray, lw: np.ndarray) -> np.ndarray:
        """E[Y | S] per node: exact scaling for homogeneous σ, else log E[Y|S] interpolated in t."""
        if self.homogeneous:
            return self.ref(0).a * S
        la = np.array([[math.log(self.ref(int(r)).a) for r in row] for row in idx])
        return np.exp((la * lw).sum(axis=1))

    def apply(self, state: ChainState, C_W: float, C_b: float, grid: tuple[float, int],
              moments: bool = False) -> tuple[ChainState, np.ndarray]:
        S, mS, skipped = state.nodes()
        u0, N_u = grid
        h = self.res.h
        atoms: dict[float, float] = {}
        lost, relocated = state.lost + skipped, state.relocated
        sig_mom = np.zeros(KMAX + 1)
        zero = S == 0                                          # Σ^{(ℓ−1)} = 0: every z = 0
        if np.any(zero):
            m0, v0 = float(mS[zero].sum()), C_b + C_W * float(np.asarray(self.sig(np.zeros(1)))[0]) ** 2
            atoms[v0] = atoms.get(v0, 0.0) + m0
            sig_mom += m0 * v0 ** np.arange(KMAX + 1)
            S, mS = S[~zero], mS[~zero]
        w = np.zeros(N_u)
        if S.size:
            t = np.log(S)
            lo, hi = self.t_range
            clamped = np.zeros(S.size, dtype=bool)
            if not self.homogeneous and (t.min() < lo or t.max() > hi):
                # outside the reference range the kernel's shape is the end one (see t_range)
                clamped = (t < lo) | (t > hi)
                relocated += float(np.abs(mS[clamped]).sum())
                t = np.clip(t, lo, hi)
            idx, lw = _lagrange(t, self.t0, DT, self.nref)
            a = self.mean_y(S, idx, lw)
            if np.any(clamped):
                a[clamped] = self.cells.mean_y(self.sig, S[clamped])
            scale = C_W / self.n
            shift = (math.log(scale) + np.log(a) + V_LO - u0) / h   # u-index of v-index 0
            qmin = int(np.floor(shift.min())) - 1              # pad: full cubic stencils
            pos = shift - qmin
            nq = int(np.ceil(pos.max())) + 3
            atom_mass = 0.0
            acc = None
            for r in np.unique(idx):
                ref = self.ref(int(r))
                lam = np.where(idx == r, lw, 0.0).sum(axis=1) * mS
                mu, _ = _bin(nq, pos, lam)
                nz = np.flatnonzero(mu)
                if nz.size == 0:
                    continue
                # direct convolution (an FFT's absolute noise would swamp the far tails)
                conv = np.convolve(mu[nz[0]:nz[-1] + 1], ref.H)
                acc = _add(acc, conv, nz[0])
                atom_mass += float(lam.sum()) * ref.atom
                lost += float(np.abs(lam).sum()) * ref.lost
                relocated += float(np.abs(lam).sum()) * ref.relocated
                if moments:
                    rm = ref.rel_moments
                    for k in range(KMAX + 1):                  # E[(C_b + scale·T)^k | S]
                        ek = sum(math.comb(k, j) * C_b ** (k - j) * (scale * a) ** j * rm[j]
                                 for j in range(k + 1))
                        sig_mom[k] += float(lam @ ek)
            # conv index i ↔ u-grid index i + qmin
            i0 = qmin
            lo_i, hi_i = max(0, i0), min(N_u, i0 + acc.size)
            if hi_i > lo_i:
                w[lo_i:hi_i] += acc[lo_i - i0:hi_i - i0]
            lost += float(np.abs(acc[:max(0, lo_i - i0)]).sum() + np.abs(acc[max(0, hi_i - i0):]).sum())
            if atom_mass != 0:
                atoms[C_b] = atoms.get(C_b, 0.0) + atom_mass
        new = ChainState(u0=u0, h=h, w=w, offset=C_b, atoms=sorted(atoms.items()), lost=max(lost, 0.0),
                         relocated=relocated)
        return new, sig_mom


def _add(acc: np.ndarray | None, b: np.ndarray, at: int) -> np.ndarray:
    """acc + b placed from index ``at`` on (acc grown as needed)."""
    end = at + b.size
    if acc is None:
        acc = np.zeros(end)
    elif acc.size < end:
        acc = np.concatenate([acc, np.zeros(end - acc.size)])
    acc[at:end] += b
    return acc
