"""Gaussian integration over the weight rows of one layer: contractions into traces and chains.

Condition on layer ℓ (width m): its post-activations σ_j = σ(z_j), derivatives σ'_j and NTK
Θ_jk are fixed, and M = diag(σ') Θ diag(σ') is an m × m matrix.  A neuron i of layer ℓ+1 owns
one weight row W_i ~ N(0, c I), c = C_W/m, and a bias b_i ~ N(0, C_b); its preactivation is
z_i = b_i + W_i·σ, so z_i ~ N(0, Σ) with Σ = C_b + c |σ|².  Every quantity of the hierarchy
is a sum of terms  Π_i F_i(z_i) × Π_edges (W_a M W_b)  (an "M-edge" joins a leg of row a to a
leg of row b; distinct rows are independent).

**The contraction rule** (Gaussian integration by parts, E[W_{ip} G] = c E[∂G/∂W_{ip}], with
∂F(z_i)/∂W_{ip} = F'(z_i) σ_p), applied to every leg of a row until none is left:

    E[F(z) Π_{l=1..q} W_{p_l}] = Σ_{partial matchings π of the legs}
            Π_{(a,b) ∈ π} c δ_{p_a p_b}  ·  Π_{u unmatched} c σ_{p_u}  ·  E[F^{(#unmatched)}(z)].

After every row is integrated, the M-edges, the matched pairs (identities) and the σ-ends form a
graph whose components are cycles and chains.  A cycle through a M-edges is tr M^a and carries
c^a; a chain through a M-edges ends on σ at both sides and carries c^{a+1}.  In the collective
observables of layer ℓ

    T_a = C_W^a tr(M^a)/m,            R_a = C_W^{a+1} σᵀ M^a σ/m,

a cycle contributes T_a/m^{a−1} and a chain R_a/m^a: the powers of 1/m are produced by the
contraction, not assigned.  The diagonal NTK of the new neuron is written
Θ_ii = Ω + :W_i M W_i: with Ω = E[Θ_ii | layer ℓ]; the normal ordering ":…:" removes the
matching of an edge's two legs with each other (that term is the T_1 part of Ω).

The derivative atoms use the Hermite form of Stein's lemma, E[F^{(d)}(z)] = <F h_d>_Σ with
h_d(z; Σ) = Σ^{-d/2} He_d(z/√Σ) (h_1 = z/Σ, h_2 = (z² − Σ)/Σ², …), so F is never
differentiated and kinked activations need no convention here.

>>> import sympy as sp
>>> from perturb.activations import Z
>>> S = sp.Symbol("S", positive=True)
>>> hermite_weight(2, S)
(-S + z**2)/S**2
>>> sorted(contract_row_legs(2, ()).items())      # two free legs: matched, or both on σ
[((0, ((0, 1),)), 1), ((2, ()), 1)]
"""

from __future__ import annotations

import functools
import math
from collections import Counter

import sympy as sp

from ..activations import Z

__all__ = ["hermite_weight", "contract_row_legs", "contract_graph", "Edge"]

#: an M-edge (row_a, row_b, normal_ordered): legs (e, 0) on row_a and (e, 1) on row_b
Edge = tuple[int, int, bool]


def hermite_weight(d: int, S: sp.Expr) -> sp.Expr:
    """h_d(z; S) with E[F^{(d)}(z)] = E[F(z) h_d(z; S)] for z ~ N(0, S)."""
    terms = [(-1) ** k * sp.Integer(math.factorial(d)) / (math.factorial(k) * math.factorial(d - 2 * k) * 2**k)
             * S**k * Z ** (d - 2 * k) for k in range(d // 2 + 1)]
    return sp.Add(*terms) / S**d


@functools.cache
def contract_row_legs(q: int, forbidden: tuple[tuple[int, int], ...]) -> dict[tuple[int, tuple], int]:
    """The partial matchings of q legs (0..q−1) of one row, except the ``forbidden`` pairs.

    Returns ``{(d, matching): 1}`` with d the number of unmatched legs (they end on σ) and the
    matching a sorted tuple of pairs.
    """
    forb = set(forbidden)
    out: dict[tuple[int, tuple], int] = {}

    def rec(free: tuple[int, ...], pairs: tuple, unmatched: int):
        if not free:
            key = (unmatched, tuple(sorted(pairs)))
            out[key] = out.get(key, 0) + 1
            return
        first, rest = free[0], free[1:]
        rec(rest, pairs, unmatched + 1)          # first ends on σ
        for j, other in enumerate(rest):
            if (first, other) in forb or (other, first) in forb:
                continue
            rec(rest[:j] + rest[j + 1:], pairs + ((first, other),), unmatched)

    rec(tuple(range(q)), (), 0)
    return out


def _components(edges: tuple[Edge, ...], pairings: list[tuple]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Cycle lengths and chain lengths (in M-edges) of the contracted graph."""
    parent: dict = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a, b):
        parent[find(a)] = find(b)

    legs = [(e, s) for e in range(len(edges)) for s in (0, 1)]
    for e in range(len(edges)):
        union((e, 0), (e, 1))
    matched = set()
    for a, b in pairings:
        union(a, b)
        matched.update((a, b))
    comp_edges: Counter = Counter()
    comp_open: Counter = Counter()
    for e in range(len(edges)):
        comp_edges[find((e, 0))] += 1
    for leg in legs:
        if leg not in matched:
            comp_open[find(leg)] += 1
    cycles, chains = [], []
    for root, a in comp_edges.items():
        (chains if comp_open[root] else cycles).append(a)
    return tuple(sorted(cycles)), tuple(sorted(chains))


@functools.cache
def contract_graph(n_rows: int, edges: tuple[Edge, ...]) -> dict[tuple, int]:
    """Integrate every row of a product of M-edges.

    Returns ``{(derivative orders per row, cycle lengths, chain lengths): multiplicity}``: the
    term is  Π_r E[F_r^{(d_r)}(z_r)] · Π_cycles T_a/m^{a−1} · Π_chains R_a/m^a.

    >>> contract_graph(1, ((0, 0, True), (0, 0, True)))[((0,), (2, 2), ())]
    Traceback (most recent call last):
    ...
    KeyError: ((0,), (2, 2), ())
    >>> contract_graph(1, ((0, 0, True), (0, 0, True)))[((0,), (2,), ())]   # E :WMW:² ⊃ 2 tr M² c²
    2
    """
    legs_of: list[list[tuple[int, int]]] = [[] for _ in range(n_rows)]
    for e, (ra, rb, _) in enumerate(edges):
        legs_of[ra].append((e, 0))
        legs_of[rb].append((e, 1))
    per_row = []
    for r in range(n_rows):
        legs = legs_of[r]
        forb = tuple((legs.index((e, 0)), legs.index((e, 1))) for e, (ra, rb, normal) in enumerate(edges)
                     if normal and ra == rb == r)
        per_row.append((legs, contract_row_legs(len(legs), forb)))
    out: dict[tuple, int] = {}

    def rec(r: int, ds: tuple, pairings: list, mult: int):
        if r == n_rows:
            key = (ds, *_components(edges, pairings))
            out[key] = out.get(key, 0) + mult
            return
        legs, options = per_row[r]
        for (d, matching), c in options.items():
            rec(r + 1, ds + (d,), pairings + [(legs[a], legs[b]) for a, b in matching], mult * c)

    rec(0, (), [], 1)
    return out
