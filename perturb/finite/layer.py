"""The finite-width layer map, derived: moments of Σ^{(ℓ)} from those of Σ^{(ℓ−1)} to order (1/n)^k.

docs/reference.md §3.  Given ``S = Σ^{(ℓ−1)}``, the ``n`` neurons of layer ℓ are iid ``N(0, S)`` and

    Σ^{(ℓ)}_p = C_b + (C_W/n) Σ_j σ(z_{j;α}) σ(z_{j;β}),        p = (α, β),

so, writing ``K' = C_b + C_W g(K)`` with ``g_p(S) = <σ_α σ_β>_S``, the deviation from the
infinite-width kernel splits as

    Σ^{(ℓ)}_p − K'_p = A_p(S) + Y_p,    A_p(S) = C_W [g_p(S) − g_p(K)],

where ``Y`` has exact conditional joint cumulants ``κ(Y_{p1}, …, Y_{pq} | S) =
C_W^q n^{1−q} κ_q[σ_{p1}, …, σ_{pq}]_S`` (q ≥ 2, the mean of n iid copies).  The engine:

1. writes the conditional mixed moments ``E[Π_p (A_p + Y_p)^{b_p} | S]`` through the conditional
   cumulants (multiset partitions into blocks of size ≥ 2) and the joint cumulants of the σ
   products through Gaussian-expectation atoms ``<Π σ>_S`` (moment–cumulant formula);
2. Taylor-expands every function of S around the infinite-width kernel K, the derivatives of
   the atoms coming from the Hermite form of Price's theorem (:mod:`perturb.gaussian.atom`);
3. averages over S with the moments ``M_a = E[Π_p (S_p − K_p)^{a_p}]`` of the previous layer,
   which are ``O(n^{−⌈|a|/2⌉})``, and truncates at total order k in 1/n.

The result is a map from symbols for the incoming moments (one symbol ``M[a]_e`` per multi-index
a and order e) to expressions for the outgoing ones.  It is derived once for the generic σ and
n inputs, and instantiated per layer and per activation by substitution; nothing in it is
typed from a paper (tests compare it with PDLT's recursions).

>>> lm = LayerMap(n_inputs=1, order=1)
>>> sorted(lm.moment((2,)))      # orders present in Var Σ^{(ℓ)}
[1]
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import sympy as sp

from ..activations import SIGMA, Z
from ..errors import NotImplementedOrderError, PerturbError
from ..gaussian.atom import E, zvars
from .combinatorics import multiset_partitions_counted

__all__ = ["LayerMap", "moment_symbol", "MultiIndex", "DeltaPoly"]

MultiIndex = tuple[int, ...]
#: a polynomial in δ = S − K with 1/n-order bookkeeping: {(multi-index a, order e): coefficient}
DeltaPoly = dict[tuple[MultiIndex, int], sp.Expr]

#: largest order for which the derivation is offered (cost grows quickly beyond)
MAX_ORDER = {1: 6, 2: 1, 3: 1, 4: 1}


def _ceil_half(x: int) -> int:
    return (x + 1) // 2


@functools.cache
def moment_symbol(a: MultiIndex, e: int) -> sp.Symbol:
    """The symbol for the order-e coefficient (in 1/n) of the incoming moment M_a."""
    idx = ",".join(map(str, a))
    return sp.Symbol(f"M[{idx}]_{e}", real=True)


@dataclass(frozen=True)
class _Syms:
    K: dict  # pair -> symbol
    Kmat: sp.ImmutableMatrix | sp.Symbol
    C_W: sp.Symbol
    C_b: sp.Symbol
    n: sp.Symbol


class LayerMap:
    """The order-k layer map for ``n_inputs`` inputs and the generic activation σ.

    Attributes:
        pairs: the covariance entries (α, β), α ≤ β, in multi-index order.
        K, C_W, C_b, n: the symbols of the incoming kernel, this layer's C's and width.
    """

    def __init__(self, n_inputs: int = 1, order: int = 1):
        if isinstance(order, bool) or not isinstance(order, int) or order < 0:
            raise PerturbError(f"order must be a non-negative integer, got {order!r}")
        if not isinstance(n_inputs, int) or n_inputs < 1:
            raise PerturbError(f"n_inputs must be a positive integer, got {n_inputs!r}")
        limit = MAX_ORDER.get(n_inputs, 0)
        if order > limit:
            offered = ", ".join(f"{m} input{'s' if m > 1 else ''}: k <= {v}" for m, v in MAX_ORDER.items())
            raise NotImplementedOrderError(
                f"order {order} for {n_inputs} inputs is not implemented ({offered})")
        self.n_inputs = n_inputs
        self.order = order
        self.pairs: tuple[tuple[int, int], ...] = tuple(
            (a, b) for a in range(n_inputs) for b in range(a, n_inputs))
        P = len(self.pairs)
        if n_inputs == 1:
            K = {(0, 0): sp.Symbol("K", positive=True)}
            Kmat = K[(0, 0)]
            self.zs = (Z,)
        else:
            K = {(a, b): sp.Symbol(f"K_{a + 1}{b + 1}", real=True) for a, b in self.pairs}
            Kmat = sp.ImmutableMatrix(n_inputs, n_inputs,
                                      lambda i, j: K[(min(i, j), max(i, j))])
            self.zs = zvars(n_inputs)
        self.syms = _Syms(K=K, Kmat=Kmat, C_W=sp.Symbol("C_W", positive=True),
                          C_b=sp.Symbol("C_b", nonnegative=True), n=sp.Symbol("n", positive=True))
        self._P = P
        self._deriv_cache: dict = {}
        self._moment_cache: dict = {}

    # ------------------------------------------------------------------ building blocks

    @property
    def K(self):
        return self.syms.K

    def unit(self, p: int) -> MultiIndex:
        return tuple(1 if i == p else 0 for i in range(self._P))

    def sigma_product(self, block: tuple[int, ...]) -> sp.Expr:
        """Π_{p in block} σ(z_α) σ(z_β) (pairs given by their index)."""
        out = sp.S.One
        for p in block:
            a, b = self.pairs[p]
            out *= SIGMA(self.zs[a]) * SIGMA(self.zs[b])
        return out

    @functools.cache  # noqa: B019 - one LayerMap per (n_inputs, order), cached
    def joint_moment(self, block: tuple[int, ...]) -> sp.Expr:
        """<Π_{p in block} σ_α σ_β>_K as an atom."""
        return E(self.sigma_product(block), self.syms.Kmat)

    @functools.cache  # noqa: B019
    def joint_cumulant(self, block: tuple[int, ...]) -> sp.Expr:
        """κ[σ_{p1}, ..., σ_{pq}]_K: the joint cumulant of the products σ_α σ_β."""
        total = sp.S.Zero
        for parts, count in multiset_partitions_counted(block):
            r = len(parts)
            term = sp.Integer(count * (-1) ** (r - 1) * math.factorial(r - 1))
            for part in parts:
                term *= self.joint_moment(part)
            total += term
        return sp.expand(total)

    def _derivative(self, G: sp.Expr, a: MultiIndex) -> sp.Expr:
        """∂^a G with respect to the unique kernel entries (cached, expanded)."""
        key = (G, a)
        if key in self._deriv_cache:
            return self._deriv_cache[key]
        if not any(a):
            out = G
        else:
            p = next(i for i, x in enumerate(a) if x)
            prev = tuple(x - (i == p) for i, x in enumerate(a))
            out = sp.expand(sp.diff(self._derivative(G, prev), self.syms.K[self.pairs[p]]))
        self._deriv_cache[key] = out
        return out

    def taylor(self, G: sp.Expr, max_degree: int, min_degree: int = 0) -> DeltaPoly:
        """Taylor coefficients ∂^a G / a! at K for min_degree <= |a| <= max_degree (order 0)."""
        out: DeltaPoly = {}
        for deg in range(min_degree, max_degree + 1):
            for a in _multi_indices(self._P, deg):
                c = self._derivative(G, a)
                if c != 0:
                    out[(a, 0)] = c / math.prod(math.factorial(x) for x in a)
        return out

    # ------------------------------------------------------------------ δ-polynomial algebra

    def _keep(self, a: MultiIndex, e: int) -> bool:
        return e + _ceil_half(sum(a)) <= self.order

    def _mul(self, x: DeltaPoly, y: DeltaPoly) -> DeltaPoly:
        out: DeltaPoly = {}
        for (a, e), c in x.items():
            for (b, f), d in y.items():
                ab = tuple(i + j for i, j in zip(a, b))
                if self._keep(ab, e + f):
                    out[(ab, e + f)] = out.get((ab, e + f), sp.S.Zero) + c * d
        return out

    def _add_into(self, acc: DeltaPoly, x: DeltaPoly, scale=sp.S.One) -> None:
        for k, c in x.items():
            acc[k] = acc.get(k, sp.S.Zero) + scale * c

    def _one(self) -> DeltaPoly:
        return {((0,) * self._P, 0): sp.S.One}

    # ------------------------------------------------------------------ the derivation

    @functools.cache  # noqa: B019
    def _A(self, p: int) -> DeltaPoly:
        """A_p(S) = C_W [g_p(S) − g_p(K)] as a δ-polynomial."""
        g = self.joint_moment((p,))
        return {k: self.syms.C_W * c for k, c in self.taylor(g, 2 * self.order, 1).items()}

    @functools.cache  # noqa: B019
    def _A_power(self, p: int, m: int) -> DeltaPoly:
        if m == 0:
            return self._one()
        return self._mul(self._A_power(p, m - 1), self._A(p))

    @functools.cache  # noqa: B019
    def _Y_moment(self, c: MultiIndex) -> DeltaPoly:
        """E[Π_p Y_p^{c_p} | S] as a δ-polynomial (blocks of size >= 2 only: E[Y|S] = 0)."""
        items = tuple(p for p, cp in enumerate(c) for _ in range(cp))
        out: DeltaPoly = {}
        C_W, n = self.syms.C_W, self.syms.n
        for blocks, count in multiset_partitions_counted(items, min_block=2):
            e0 = sum(len(b) - 1 for b in blocks)
            if e0 > self.order:
                continue
            poly: DeltaPoly = {((0,) * self._P, e0): sp.Integer(count)}
            for b in blocks:
                q = len(b)
                kappa = self.taylor(self.joint_cumulant(b), 2 * (self.order - e0))
                factor = {k: C_W**q * n ** (1 - q) * v for k, v in kappa.items()}
                poly = self._mul(poly, factor)
            self._add_into(out, poly)
        return out

    def conditional_moment(self, b: MultiIndex) -> DeltaPoly:
        """E[Π_p (Σ'_p − K'_p)^{b_p} | S] as a δ-polynomial in S − K."""
        out: DeltaPoly = {}
        for c in itertools.product(*(range(bp + 1) for bp in b)):
            coeff = math.prod(math.comb(bp, cp) for bp, cp in zip(b, c))
            poly = self._Y_moment(tuple(c)) if any(c) else self._one()
            for p, (bp, cp) in enumerate(zip(b, c)):
                if bp - cp:
                    poly = self._mul(poly, self._A_power(p, bp - cp))
            self._add_into(out, poly, sp.Integer(coeff))
        return out

    def moment(self, b: MultiIndex) -> dict[int, sp.Expr]:
        """The outgoing moment M'_b = E[Π_p (Σ'_p − K'_p)^{b_p}] by order in 1/n.

        Returns ``{e: expression}`` in the incoming-moment symbols :func:`moment_symbol`,
        the atoms at K, and C_W, n; orders with a zero coefficient are omitted.
        """
        b = tuple(b)
        if len(b) != self._P or any(x < 0 for x in b) or not any(b):
            raise PerturbError(f"moment multi-index must have {self._P} non-negative entries, not all 0")
        if b in self._moment_cache:
            return self._moment_cache[b]
        cond = self.conditional_moment(b)
        series: dict[int, sp.Expr] = {}
        for (a, e), coef in cond.items():
            if not any(a):
                series[e] = series.get(e, sp.S.Zero) + coef
                continue
            for e2 in range(_ceil_half(sum(a)), self.order - e + 1):
                series[e + e2] = series.get(e + e2, sp.S.Zero) + coef * moment_symbol(a, e2)
        out = {}
        for e, v in sorted(series.items()):
            v = sp.expand(v)
            if v != 0:
                out[e] = v
        self._moment_cache[b] = out
        return out

    def kernel(self) -> dict[tuple[int, int], sp.Expr]:
        """The infinite-width part K'_p = C_b + C_W <σ_α σ_β>_K."""
        return {pr: self.syms.C_b + self.syms.C_W * self.joint_moment((p,))
                for p, pr in enumerate(self.pairs)}

    def multi_indices(self, max_degree: int | None = None) -> list[MultiIndex]:
        """All multi-indices a with 1 <= |a| <= max_degree (default 2k): the moments tracked."""
        D = 2 * self.order if max_degree is None else max_degree
        return [a for d in range(1, D + 1) for a in _multi_indices(self._P, d)]


def _multi_indices(P: int, degree: int) -> list[MultiIndex]:
    out = []
    for combo in itertools.combinations_with_replacement(range(P), degree):
        a = [0] * P
        for i in combo:
            a[i] += 1
        out.append(tuple(a))
    return out


@functools.lru_cache(maxsize=16)
def layer_map(n_inputs: int = 1, order: int = 1) -> LayerMap:
    """The (cached) derived layer map for n inputs at order k."""
    return LayerMap(n_inputs=n_inputs, order=order)
