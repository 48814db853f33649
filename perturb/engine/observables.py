"""The collective observables of a layer, defined from the network: what the engine follows.

Layer ℓ+1 of a network (width n) has preactivations z_i = b_i + W_i·σ^{(ℓ)} and, differentiating
along every parameter μ (its own b_i, W_ij and, through z^{(ℓ)}, all earlier ones) with the
learning-rate factors λ_μ, the NTK

    Θ_ik = Σ_μ λ_μ ∂_μ z_i ∂_μ z_k
         = δ_ik [λ_b + (λ_W/m) |σ|²] + Σ_jl W_ij σ'_j Θ^{(ℓ)}_jl σ'_l W_kl          (chain rule)
         = δ_ik Ω + :W_i M W_k:_{i=k} ,      M = diag(σ') Θ^{(ℓ)} diag(σ'),

with Ω = E[Θ_ii | layer ℓ] (the normal ordering ":…:" subtracts the conditional mean of the
diagonal; off the diagonal W_i M W_k already has mean 0).  The observables of layer ℓ+1 that
the engine follows are sums over its neurons of products of per-neuron functions and NTK entries,
normalised by the width n, with the next layer's C_W, C_b, λ_W, λ_b:

    Σ   = C_b + (C_W/n) Σ_i σ_i²                         (the next layer's conditional variance)
    Ω   = λ_b + (1/n) Σ_i [λ_W σ_i² + C_W σ'_i² Θ_ii]     (the next layer's conditional NTK mean)
    T_a = (C_W^a/n) Σ_{i_1..i_a} Π_t σ'_{i_t}² Θ_{i_t i_{t+1}}    (a ≥ 2, cyclic: C_W^a tr M^a/n)
    R_a = (C_W^{a+1}/n) Σ_{i_0..i_a} σ_{i_0}σ'_{i_0} Θ_{i_0 i_1} σ'_{i_1}² ⋯ Θ_{i_{a−1} i_a} σ'_{i_a}σ_{i_a}
                                                          (a ≥ 1: C_W^{a+1} σᵀ M^a σ/n)

These are exactly the objects the row contraction of :mod:`perturb.engine.wick` produces one
layer up, so the set closes: Σ, Ω are means over neurons that are iid given the layer below;
T_a, R_a are cycle and chain sums whose off-diagonal terms couple pairs, triples, … of neurons.
PDLT's T and R (ch. 8) are T_2 and R_1; the engine adds T_a, R_a (a ≥ 2) when an order needs them.

>>> [w.name for w in (sigma_word(), omega_word(), cycle_word(2), chain_word(1))]
['S', 'O', 'T2', 'R1']
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import sympy as sp

from ..activations import SIGMA, Z

__all__ = ["Summand", "Word", "OutSymbols", "OUT", "sigma_word", "omega_word", "cycle_word", "chain_word",
           "word", "word_sort_key"]


@dataclass(frozen=True)
class OutSymbols:
    """The next layer's parameters that enter the definitions."""

    C_W: sp.Symbol
    C_b: sp.Symbol
    lam_W: sp.Symbol
    lam_b: sp.Symbol


OUT = OutSymbols(sp.Symbol("C_W", positive=True), sp.Symbol("C_b", nonnegative=True),
                 sp.Symbol("lambda_W", nonnegative=True), sp.Symbol("lambda_b", nonnegative=True))


def _s() -> sp.Expr:
    return SIGMA(Z)


def _ds() -> sp.Expr:
    return sp.diff(SIGMA(Z), Z)


@dataclass(frozen=True)
class Summand:
    """coef · Σ_{indices} Π_t funcs[t](z_{i_t}) · Π_{(a, b) in thetas} Θ_{i_a i_b}."""

    funcs: tuple
    thetas: tuple
    coef: sp.Expr = sp.S.One

    @property
    def n_idx(self) -> int:
        return len(self.funcs)


@dataclass(frozen=True)
class Word:
    """A collective observable X = const + (1/n) Σ_summands (its name labels the state)."""

    name: str
    const: sp.Expr
    summands: tuple


def sigma_word() -> Word:
    return Word("S", OUT.C_b, (Summand((OUT.C_W * _s() ** 2,), ()),))


def omega_word() -> Word:
    return Word("O", OUT.lam_b, (Summand((OUT.lam_W * _s() ** 2,), ()),
                                 Summand((OUT.C_W * _ds() ** 2,), ((0, 0),))))


def cycle_word(a: int) -> Word:
    if a < 2:
        raise ValueError("cycle words start at a = 2 (T_1 is part of Ω)")
    return Word(f"T{a}", sp.S.Zero, (Summand((_ds() ** 2,) * a, tuple((t, (t + 1) % a) for t in range(a)),
                                             OUT.C_W**a),))


def chain_word(a: int) -> Word:
    if a < 1:
        raise ValueError("chain words start at a = 1 (R_0 is part of Σ)")
    ends = _s() * _ds()
    funcs = (ends,) + (_ds() ** 2,) * (a - 1) + (ends,)
    return Word(f"R{a}", sp.S.Zero, (Summand(funcs, tuple((t, t + 1) for t in range(a)), OUT.C_W ** (a + 1)),))


@functools.cache
def word(name: str) -> Word:
    """The word called ``name`` (S, O, T<a>, R<a>)."""
    if name == "S":
        return sigma_word()
    if name == "O":
        return omega_word()
    m = re.fullmatch(r"([TR])(\d+)", name)
    if not m:
        raise ValueError(f"unknown observable {name!r}")
    return (cycle_word if m.group(1) == "T" else chain_word)(int(m.group(2)))


def word_sort_key(name: str) -> tuple:
    order = {"S": 0, "O": 1, "T": 2, "R": 3}
    return (order[name[0]], int(name[1:]) if len(name) > 1 else 0)
