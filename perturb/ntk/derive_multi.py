"""The NTK's collective observables over several inputs and their layer map at order 1/n, derived.

docs/reference.md §3, "NTK at order 1/n", for N inputs x_1..x_N (the one-input case is
:mod:`perturb.ntk.derive`; with N = 1 this module derives the same map).  Conditionally on layer
ℓ (width m = n_ℓ), neuron i of layer ℓ+1 has, for the inputs α, β,

    z_{iα} = b_i + W_i·σ_α,     Θ_{ii;αβ} = λ_b + (λ_W/m) σ_α·σ_β + W_iᵀ M_{αβ} W_i,
    M_{αβ;jk} = σ'_{jα} Θ^{(ℓ)}_{jk;αβ} σ'_{kβ},

one Gaussian row W_i ~ N(0, c I), c = C_W/m, shared by all inputs, and b_i ~ N(0, C_b).

**Lemma (Gaussian conditioning on the row).**  Cov(W_i, z_{iγ}) = c σ_γ and Cov(z_i) = Σ, so
W_i | z_i ~ N(μ, P) with μ = c Σ_γ σ_γ y_γ, y = Σ⁻¹ z_i, and P = c I − c² σ Σ⁻¹ σᵀ.  With
E[uᵀMu] = μᵀMμ + tr(MP), exactly for a fixed layer ℓ,

    E[Θ_{ii;αβ} | z_i] = Ω_{αβ} + (1/m) Σ_{γδ} R_{αβ;γδ} [y_γ y_δ − (Σ⁻¹)_{γδ}],
    Cov(Θ_{ii;αβ}, Θ_{ii;γδ} | z_i) = 2 tr(M̃_{αβ} P M̃_{γδ} P) + 4 μᵀ M̃_{αβ} P M̃_{γδ} μ
                                    = (T_{αβ;γδ} + T_{αβ;δγ})/m + O(m⁻²)      (M̃ = sym M),

and for two neurons i ≠ k (independent rows, z_i, z_k independent given layer ℓ)

    E[Θ_{ik;αβ} | z_i, z_k] = (1/m) Σ_{γδ} R_{αβ;γδ} y_{iγ} y_{kδ},
    E[Θ_{ik;αβ} Θ_{ik;γδ} | z_i, z_k] = T_{αβ;γδ}/m + O(m⁻²),

with the collective observables of layer ℓ

    Σ_{αβ} = C_b + (c) Σ_j σ_{jα}σ_{jβ},
    Ω_{αβ} = λ_b + (λ_W/m) Σ_j σ_{jα}σ_{jβ} + c Σ_j σ'_{jα}σ'_{jβ} Θ_{jj;αβ},
    T_{αβ;γδ} = (C_W²/m) Σ_{jk} σ'_{jα}σ'_{jγ}σ'_{kβ}σ'_{kδ} Θ_{jk;αβ} Θ_{jk;γδ},
    R_{αβ;γδ} = (C_W²/m) Σ_{jk} σ_{jγ}σ'_{jα} Θ_{jk;αβ} σ'_{kβ}σ_{kδ}.

(N = 1: the one-input lemma, (R/m)(z² − Σ)/Σ².)  Σ, Ω are means over iid neurons (fluctuations
O(m^{-1/2})); T, R are O(1) pair sums entering only with 1/m, so their leading means suffice.
Identically T_{αβ;γδ} = T_{γδ;αβ} = T_{βα;δγ} and R_{αβ;γδ} = R_{βα;δγ}.

**State and PDLT's tensors.**  With n = n_ℓ the outgoing width and r = n_ℓ/n_{ℓ−1}:

    E Σ_{αβ} = K_{αβ} + G1_{αβ}/n,           Cov(Σ_p, Σ_q) = V_{pq}/n,
    E Ω_{αβ} = H_{αβ} + H1_{αβ}/n,           Cov(Ω_p, Ω_q) = A_{pq}/n,    Cov(Σ_p, Ω_q) = D_{pq}/n,
    E T_{αβ;γδ} = Bt_{αβγδ},                 E R_{αβ;γδ} = Ft_{αβγδ}          (leading order),

p = (αβ), q = (γδ).  In PDLT's index convention (ch. 8: the i1 = i3, i2 = i4 pairing carries
B_{α1α3α2α4}, and the z_{i1}–Θ_{i1·} pairing F_{α1α3α2α4}) Bt_{αβγδ} = B_{αγβδ} and
Ft_{αβγδ} = F_{γαδβ}.  One output neuron then has

    E Θ_{αβ} = H_{αβ} + H1_{αβ}/n,   Cov(Θ_{αβ}, Θ_{γδ}) = (A_{(αβ)(γδ)} + Bt_{αβγδ} + Bt_{αβδγ})/n,
    Cov(z_α z_β, Θ_{γδ}) = (D_{(αβ)(γδ)} + Ft_{γδαβ} + Ft_{γδβα})/n

(derived by the same machinery, :func:`derive_ntk_output`).

:func:`derive_ntk_multi_map` derives the layer map of this state for N inputs with SymPy: the
conditional moments of the per-neuron parts by the lemma (polynomials in Θ replaced by their
conditional moments, truncated at order 1/m), the Gaussian expectations over z_i ~ N(0, Σ) as
matrix atoms ``E(f, Σ)`` (:mod:`perturb.gaussian.atom`), then the average over layer ℓ: a
Taylor expansion of the O(1) parts around (K, H) in the entries of Σ and Ω — derivatives of the
atoms by the matrix Hermite/Price rule — closed with the incoming moments; O(1/m) parts at
(K, H; Bt, Ft); conditional covariances of means of n iid neurons; truncation at order 1/n.
Nothing is typed from a paper; tests compare with the one-input map and with Monte Carlo.

>>> mm = derive_ntk_multi_map(2)
>>> sorted(mm.exprs)
['A', 'B', 'D', 'F', 'G1', 'H', 'H1', 'K', 'V']
>>> len(mm.exprs["B"]), len(mm.exprs["F"])          # orbits of the 16 entries under the symmetries
(7, 10)
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import sympy as sp

from .._diskcache import disk_cached
from ..activations import SIGMA, Z
from ..errors import PerturbError
from ..gaussian.atom import E, GaussianExpectation, zvars

__all__ = ["NTKMultiMap", "derive_ntk_multi_map", "derive_ntk_output", "canonical_B", "canonical_F",
           "pair_list", "MAX_INPUTS"]

#: largest number of inputs offered (the derivation cost grows quickly: N = 2 ~6 s, N = 3 ~12 min wall
#: on 2 loaded shared cores, plus ~5 min for the output formulas)
MAX_INPUTS = 3


def pair_list(N: int) -> tuple[tuple[int, int], ...]:
    """The unique entries (α, β), α ≤ β, of an N × N symmetric matrix, in storage order."""
    return tuple((a, b) for a in range(N) for b in range(a, N))


def canonical_B(a, b, c, d) -> tuple:
    """Representative of (αβγδ) under T_{αβ;γδ} = T_{γδ;αβ} = T_{βα;δγ}."""
    return min((a, b, c, d), (c, d, a, b), (b, a, d, c), (d, c, b, a))


def canonical_F(a, b, c, d) -> tuple:
    """Representative of (αβγδ) under R_{αβ;γδ} = R_{βα;δγ}."""
    return min((a, b, c, d), (b, a, d, c))


def _pkey(a, b):
    return (a, b) if a <= b else (b, a)


def _label(t) -> str:
    return "".join(str(i + 1) for i in t)


@dataclass(frozen=True)
class NTKMultiSymbols:
    """Symbols of the derived map: incoming K, H and statistics (by pair or 4-tuple); C's, λ's, r."""

    N: int
    pairs: tuple
    K: dict          # pair -> symbol
    H: dict
    C_W: sp.Symbol
    C_b: sp.Symbol
    lam_W: sp.Symbol
    lam_b: sp.Symbol
    r: sp.Symbol
    G1: dict         # pair -> symbol
    H1: dict
    V: dict          # (pair, pair), p <= q -> symbol (symmetric)
    A: dict
    D: dict          # (pair, pair), all -> symbol
    B: dict          # canonical 4-tuple -> symbol (Bt)
    F: dict          # canonical 4-tuple -> symbol (Ft)

    @property
    def Kmat(self):
        return _matrix(self.K, self.N)

    def stat(self, name: str, key):
        """The incoming symbol for ``name`` at ``key`` (symmetries applied)."""
        if name in ("V", "A"):
            p, q = key
            return getattr(self, name)[(p, q) if self.pairs.index(p) <= self.pairs.index(q) else (q, p)]
        if name == "B":
            return self.B[canonical_B(*key)]
        if name == "F":
            return self.F[canonical_F(*key)]
        return getattr(self, name)[key]

    def args(self) -> list[sp.Symbol]:
        """The argument order used for compilation."""
        out = [*self.K.values(), *self.H.values(), self.C_W, self.C_b, self.lam_W, self.lam_b, self.r]
        for name in STAT_NAMES_MULTI:
            out += list(getattr(self, name).values())
        return out


#: the order-1 statistics in storage order
STAT_NAMES_MULTI = ("G1", "V", "H1", "A", "B", "D", "F")


def _matrix(entries: dict, N: int):
    if N == 1:
        return entries[(0, 0)]
    return sp.ImmutableMatrix(N, N, lambda i, j: entries[_pkey(i, j)])


def _symbols(N: int) -> NTKMultiSymbols:
    pairs = pair_list(N)
    one = N == 1

    def name(base, p):
        return base if one else f"{base}_{_label(p)}"

    K = {p: sp.Symbol(name("K", p), positive=True) if p[0] == p[1] else sp.Symbol(name("K", p), real=True)
         for p in pairs}
    H = {p: sp.Symbol(name("H", p), positive=True) if p[0] == p[1] else sp.Symbol(name("H", p), real=True)
         for p in pairs}
    quads = list(itertools.product(range(N), repeat=4))
    Bk = sorted({canonical_B(*t) for t in quads})
    Fk = sorted({canonical_F(*t) for t in quads})
    return NTKMultiSymbols(
        N=N, pairs=pairs, K=K, H=H,
        C_W=sp.Symbol("C_W", positive=True), C_b=sp.Symbol("C_b", nonnegative=True),
        lam_W=sp.Symbol("lambda_W", nonnegative=True), lam_b=sp.Symbol("lambda_b", nonnegative=True),
        r=sp.Symbol("r", positive=True),
        G1={p: sp.Symbol(name("G1", p), real=True) for p in pairs},
        H1={p: sp.Symbol(name("H1", p), real=True) for p in pairs},
        V={(p, q): sp.Symbol("V" if one else f"V_{_label(p)},{_label(q)}", real=True)
           for i, p in enumerate(pairs) for q in pairs[i:]},
        A={(p, q): sp.Symbol("A" if one else f"A_{_label(p)},{_label(q)}", real=True)
           for i, p in enumerate(pairs) for q in pairs[i:]},
        D={(p, q): sp.Symbol("D" if one else f"D_{_label(p)},{_label(q)}", real=True)
           for p in pairs for q in pairs},
        B={t: sp.Symbol("B" if one else f"B_{_label(t)}", real=True) for t in Bk},
        F={t: sp.Symbol("F" if one else f"F_{_label(t)}", real=True) for t in Fk},
    )


@dataclass(frozen=True)
class NTKMultiMap:
    """The derived order-1 layer map of the NTK statistics at N inputs.

    ``exprs[name][key]``: outgoing K, H, G1, H1 (key: pair), V, A (key: (p, q), p ≤ q), D (all
    (p, q)), B, F (key: canonical 4-tuple; Bt and Ft of the module docstring) — in the symbols
    :attr:`syms` and the Gaussian-expectation atoms of the generic σ at the matrix K.
    """

    syms: NTKMultiSymbols
    exprs: dict

    def __getitem__(self, name: str) -> dict:
        return self.exprs[name]


class _Derivation:
    """The conditioning symbols and the building blocks shared by the layer map and the output.

    Quantities at order 1/n are carried as pairs ``(c0, c1)``: the O(1) part c0 — a function of
    the conditioning values Σ, Ω, needed off the centre because it is Taylor-expanded — and the
    coefficient c1 of 1/m (m = n_ℓ, the width of the layer conditioned on), needed only at the
    centre Σ = K, Ω = H, T = Bt, R = Ft: anything beyond is O(1/n²).
    """

    def __init__(self, N: int):
        self.N = N
        self.y = _symbols(N)
        self.pairs = self.y.pairs
        P = self.pairs
        one = N == 1
        # conditioning values of layer ℓ's means over neurons (the Taylor variables)
        self.S = {p: sp.Symbol("S" if one else f"S_{_label(p)}", positive=p[0] == p[1], real=True) for p in P}
        self.Om = {p: sp.Symbol("Omega" if one else f"Omega_{_label(p)}", real=True) for p in P}
        self.Smat = _matrix(self.S, N)
        self.Kmat = self.y.Kmat
        self.zs = (Z,) if one else zvars(N)
        Kinv = sp.ImmutableMatrix([[1 / self.Kmat]]) if one else sp.ImmutableMatrix(self.Kmat.inv())
        self.Kinv = Kinv.applyfunc(sp.factor)
        self.yv = [sp.expand(v) for v in self.Kinv * sp.Matrix(self.zs)]      # y = K⁻¹ z at the centre
        self.theta = {p: sp.Symbol(f"theta_{_label(p)}") for p in P}
        self.s = [SIGMA(v) for v in self.zs]
        self.ds = [sp.diff(SIGMA(v), v) for v in self.zs]

    # ---------------------------------------------------------------- the lemma

    def cond_mean(self, p):
        """E[Θ_{ii;p} | z_i] = (Ω_p, Σ_{γδ} R_{p;γδ}[y_γ y_δ − (Σ⁻¹)_{γδ}] at the centre)."""
        N, y = self.N, self.y
        a, b = p
        corr = sum(y.stat("F", (a, b, g, d)) * (self.yv[g] * self.yv[d] - self.Kinv[g, d])
                   for g in range(N) for d in range(N))
        return self.Om[p], sp.expand(corr)

    def cond_cov(self, p, q):
        """Cov(Θ_{ii;p}, Θ_{ii;q} | z_i) = (0, T_{p;q} + T_{p;q'}) (q' = q reversed)."""
        (a, b), (c, d) = p, q
        return sp.S.Zero, self.y.stat("B", (a, b, c, d)) + self.y.stat("B", (a, b, d, c))

    def cond(self, f: sp.Expr):
        """E[f | layer ℓ] = (c0, c1) for f polynomial (degree <= 2) in the θ's.

        Θ | z_i by the lemma (its moments to order 1/m), then z_i ~ N(0, Σ): c0 as atoms at the
        symbolic Σ (with Ω), c1 as atoms at K (with H, Bt, Ft).
        """
        th = list(self.theta.values())
        poly = sp.Poly(sp.expand(f), *th)
        keys = list(self.theta)
        o0, o1 = sp.S.Zero, sp.S.Zero
        for powers, c in poly.terms():
            idx = [keys[i] for i, k in enumerate(powers) for _ in range(k)]
            if not idx:
                m0, m1 = sp.S.One, sp.S.Zero
            elif len(idx) == 1:
                m0, m1 = self.cond_mean(idx[0])
            elif len(idx) == 2:
                (a0, a1), (b0, b1) = self.cond_mean(idx[0]), self.cond_mean(idx[1])
                c0, c1 = self.cond_cov(idx[0], idx[1])
                m0, m1 = a0 * b0 + c0, self.at_center(a0) * b1 + self.at_center(b0) * a1 + c1
            else:  # pragma: no cover - never requested
                raise PerturbError("conditional moments of degree > 2 in Θ are not needed at order 1")
            o0 += c * m0
            o1 += c * m1
        return E(sp.expand(o0), self.Smat), E(sp.expand(o1), self.Kmat)

    def pair(self, f, g, p):
        """m · E[f(z_i) g(z_k) Θ_{ik;p}] for neurons i ≠ k at the centre (z_i, z_k independent)."""
        a, b = p
        return sp.expand(sum(self.y.stat("F", (a, b, g_, d_)) * E(sp.expand(f * self.yv[g_]), self.Kmat)
                             * E(sp.expand(g * self.yv[d_]), self.Kmat)
                             for g_ in range(self.N) for d_ in range(self.N)))

    # ---------------------------------------------------------------- averaging over layer ℓ

    @functools.cache  # noqa: B019 - one derivation object per N, cached
    def at_center(self, g: sp.Expr) -> sp.Expr:
        """g at Σ = K, Ω = H."""
        rep = {self.S[p]: self.y.K[p] for p in self.pairs}
        rep.update({self.Om[p]: self.y.H[p] for p in self.pairs})
        return g.xreplace(rep)

    def variables(self):
        return [("S", p) for p in self.pairs] + [("O", p) for p in self.pairs]

    def var_symbol(self, v):
        kind, p = v
        return self.S[p] if kind == "S" else self.Om[p]

    def first_moment(self, v):
        """m · E δv: G1 or H1."""
        kind, p = v
        return (self.y.G1 if kind == "S" else self.y.H1)[p]

    def second_moment(self, v, w):
        """m · E δv δw: V, D or A."""
        (k1, p), (k2, q) = v, w
        if k1 == "S" and k2 == "S":
            return self.y.stat("V", (p, q))
        if k1 == "O" and k2 == "O":
            return self.y.stat("A", (p, q))
        return self.y.D[(p, q)] if k1 == "S" else self.y.D[(q, p)]

    @functools.cache  # noqa: B019
    def grad(self, g: sp.Expr, v) -> sp.Expr:
        """∂g/∂v (atoms by the matrix Price/Hermite rule of :mod:`perturb.gaussian.atom`)."""
        return sp.diff(g, self.var_symbol(v))

    def mean(self, g):
        """E over layer ℓ of g = (g0(Σ, Ω), g1): Taylor of g0 to degree 2 closed with the
        incoming moments (third and higher moments are O(1/m²)), g1 at the centre."""
        g0, g1 = g
        out = sp.S.Zero
        vs = self.variables()
        for i, v in enumerate(vs):
            dv = self.grad(g0, v)
            if dv == 0:
                continue
            out += self.at_center(dv) * self.first_moment(v)
            for w in vs[i:]:
                d2 = self.grad(dv, w)
                if d2 != 0:
                    out += self.at_center(d2) * (sp.Rational(1, 2) if v == w else 1) * self.second_moment(v, w)
        return self.at_center(g0), out + g1

    def cov_of_means(self, gx: sp.Expr, gy: sp.Expr) -> sp.Expr:
        """m · Cov over layer ℓ of g_x(Σ, Ω), g_y(Σ, Ω) at leading order: ∇g_x · M · ∇g_y."""
        vs = self.variables()
        out = sp.S.Zero
        for v in vs:
            dx = self.grad(gx, v)
            if dx == 0:
                continue
            for w in vs:
                dy = self.grad(gy, w)
                if dy != 0:
                    out += self.at_center(dx) * self.at_center(dy) * self.second_moment(v, w)
        return out


def _check_N(N) -> int:
    if isinstance(N, bool) or not isinstance(N, int) or not 1 <= N <= MAX_INPUTS:
        raise PerturbError(f"number of inputs must be an integer 1..{MAX_INPUTS}, got {N!r}")
    return N


@functools.lru_cache(maxsize=MAX_INPUTS)
def _derivation(N: int) -> _Derivation:
    return _Derivation(N)


def _tidy(expr: sp.Expr) -> sp.Expr:
    """Expand, collect by atom monomials and cancel each coefficient (the K⁻¹ entries combine);
    the normal form of :func:`~perturb.gaussian.atom.atom_canonical`, which is too slow for large
    sums (a Poly over a composite domain).  Used for the small output expressions only: the layer
    map is left unexpanded (expanding it costs minutes; compilation shares subexpressions)."""
    groups: dict = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        atom_part, coeff = [], []
        for f in sp.Mul.make_args(term):
            (atom_part if f.has(GaussianExpectation) else coeff).append(f)
        key = sp.Mul(*atom_part)
        groups.setdefault(key, []).append(sp.Mul(*coeff))
    return sp.Add(*[sp.factor(sp.cancel(sp.Add(*cs))) * key for key, cs in groups.items()])


@functools.lru_cache(maxsize=MAX_INPUTS)
@disk_cached
def derive_ntk_multi_map(N: int = 2) -> NTKMultiMap:
    """Derive the order-1 layer map of (K, H; G1, V, H1, A, B, D, F) at N inputs, generic σ.

    The map takes the statistics of layer ℓ (PDLT labels; incoming width n_{ℓ−1}) to those of
    layer ℓ+1 (width n_ℓ); ``r`` = n_ℓ/n_{ℓ−1}.  Cached per N (N = 2: a few seconds).

    >>> derive_ntk_multi_map(2)["K"][(0, 1)]
    C_W*E(sigma(z_1)*sigma(z_2), Matrix([
    [K_11, K_12],
    [K_12, K_22]])) + C_b
    """
    N = _check_N(N)
    dv = _derivation(N)
    y = dv.y
    s, ds, th, pairs = dv.s, dv.ds, dv.theta, dv.pairs
    C_W, C_b, lam_W, lam_b, r = y.C_W, y.C_b, y.lam_W, y.lam_b, y.r

    # ---- 1. per-neuron parts of Σ^{(ℓ+1)}, Ω^{(ℓ+1)} (one neuron i of layer ℓ+1) and their
    # conditional means given layer ℓ, (O(1) part, 1/m part)
    u = {p: C_W * s[p[0]] * s[p[1]] for p in pairs}
    w = {p: lam_W * s[p[0]] * s[p[1]] + C_W * ds[p[0]] * ds[p[1]] * th[p] for p in pairs}
    cu = {p: dv.cond(u[p]) for p in pairs}
    cw = {p: dv.cond(w[p]) for p in pairs}

    # ---- 2. means over layer ℓ: E Σ^{(ℓ+1)} = K' + G1'/n, E Ω^{(ℓ+1)} = H' + H1'/n
    EmS = {p: dv.mean((C_b + cu[p][0], cu[p][1])) for p in pairs}
    EmO = {p: dv.mean((lam_b + cw[p][0], cw[p][1])) for p in pairs}

    # ---- 3. covariances of the means over the n = r m iid neurons of layer ℓ+1:
    # n·Cov = E[Cov(one neuron | ℓ)] (leading order) + (n/m)·(m Cov of the conditional means)
    def cov(x, y_, cx, cy):
        per = dv.at_center(dv.cond(x * y_)[0] - cx[0] * cy[0])
        return per + r * dv.cov_of_means(cx[0], cy[0])

    V = {(p, q): cov(u[p], u[q], cu[p], cu[q]) for i, p in enumerate(pairs) for q in pairs[i:]}
    A = {(p, q): cov(w[p], w[q], cw[p], cw[q]) for i, p in enumerate(pairs) for q in pairs[i:]}
    D = {(p, q): cov(u[p], w[q], cu[p], cw[q]) for p in pairs for q in pairs}

    # ---- 4. pair sums T^{(ℓ+1)}, R^{(ℓ+1)}, leading order: n diagonal terms (one neuron, O(1)
    # conditional moments) + n(n − 1) pairs i ≠ k, each O(1/m) by the pair lemma: (n − 1)/m → r
    Bn, Fn = {}, {}
    for t in y.B:
        a, b, c, d = t
        diag = dv.at_center(dv.cond(ds[a] * ds[c] * ds[b] * ds[d] * th[_pkey(a, b)] * th[_pkey(c, d)])[0])
        off = y.B[t] * E(ds[a] * ds[c], dv.Kmat) * E(ds[b] * ds[d], dv.Kmat)
        Bn[t] = C_W**2 * (diag + r * off)
    for t in y.F:
        a, b, c, d = t
        diag = dv.at_center(dv.cond(s[c] * ds[a] * ds[b] * s[d] * th[_pkey(a, b)])[0])
        off = dv.pair(s[c] * ds[a], ds[b] * s[d], (a, b))
        Fn[t] = C_W**2 * (diag + r * off)

    # ---- 5. PDLT normalisation: X' = n_ℓ · [coefficient of 1/m] = r · (m-coefficient)
    exprs = {
        "K": {p: EmS[p][0] for p in pairs},
        "H": {p: EmO[p][0] for p in pairs},
        "G1": {p: r * EmS[p][1] for p in pairs},
        "H1": {p: r * EmO[p][1] for p in pairs},
        "V": V, "A": A, "D": D, "B": Bn, "F": Fn,
    }
    stray_syms = set(dv.S.values()) | set(dv.Om.values()) | set(th.values())
    for name, group in exprs.items():
        for k, x in group.items():
            stray = x.free_symbols & stray_syms
            if stray:  # pragma: no cover - a derivation error
                raise AssertionError(f"{name}{k}: leftover symbols {stray}")
    return NTKMultiMap(y, exprs)


@functools.lru_cache(maxsize=MAX_INPUTS)
@disk_cached
def derive_ntk_output(N: int = 2) -> dict:
    """One output neuron's statistics from the state of the last layer, derived by the lemma.

    Returns ``{"mean": {p: (c0, c1)}, "mean_z": {p: (c0, c1)}, "cov": {(p, q): c}, "cov_z":
    {(p, q): c}}``: E Θ_p = c0 + c1/n_L, E z_α z_β likewise, n_L·Cov(Θ_p, Θ_q) and
    n_L·Cov(z_α z_β, Θ_q) at leading order, in the symbols of :func:`derive_ntk_multi_map`
    (the statistics being those of the output layer L+1, normalised by n_L).

    >>> out = derive_ntk_output(1)
    >>> out["cov"][((0, 0), (0, 0))], out["cov_z"][((0, 0), (0, 0))]
    (A + 2*B, D + 2*F)
    """
    N = _check_N(N)
    dv = _derivation(N)
    th, pairs = dv.theta, dv.pairs
    zz = {p: dv.zs[p[0]] * dv.zs[p[1]] for p in pairs}

    def cov(x, y_):
        cx, cy, cxy = dv.cond(x), dv.cond(y_), dv.cond(x * y_)
        lead = _tidy(dv.at_center(cxy[0] - cx[0] * cy[0]))
        if lead != 0:  # pragma: no cover - these pairs have no O(1) conditional covariance
            raise AssertionError(f"unexpected O(1) conditional covariance {lead}")
        per = cxy[1] - dv.at_center(cx[0]) * cy[1] - dv.at_center(cy[0]) * cx[1]
        return _tidy(per + dv.cov_of_means(cx[0], cy[0]))

    def mean(x):
        c0, c1 = dv.mean(dv.cond(x))
        return _tidy(c0), _tidy(c1)

    return {
        "mean": {p: mean(th[p]) for p in pairs},
        "mean_z": {p: mean(zz[p]) for p in pairs},
        "cov": {(p, q): cov(th[p], th[q]) for p in pairs for q in pairs},
        "cov_z": {(p, q): cov(zz[p], th[q]) for p in pairs for q in pairs},
    }
