"""The NTK's collective observables and their layer map at order 1/n (one input): a front end.

docs/reference.md §3, "NTK at order 1/n".  The map is derived by :mod:`perturb.engine` from the network's
definition (z_i = b_i + W_i·σ, Θ = Σ_μ λ_μ ∂_μz ∂_μz): row contractions by Gaussian integration by
parts produce the conditional law of a new neuron's (z, Θ) given layer ℓ in terms of the
collective observables of layer ℓ (m = n_ℓ)

    Σ = C_b + (C_W/m) Σ_j σ_j²,                      Ω = λ_b + (λ_W/m) Σ_j σ_j² + (C_W/m) Σ_j σ'_j² Θ_jj,
    T = (C_W²/m) Σ_jk σ'_j² σ'_k² Θ_jk²,            R = (C_W²/m) Σ_jk σ_j σ'_j Θ_jk σ'_k σ_k

(the engine's S, O, T2, R1); e.g. E[Θ_ii | z_i] = Ω + (R/m)(z_i² − Σ)/Σ² and Var(Θ_ii | z_i) = 2T/m
come out of the contraction, they are not typed.  At order 1/n the engine's closure needs exactly
this state.  This module renames the engine's order-1 map into PDLT's quantities
(r = n_ℓ / n_{ℓ−1}):

    E Σ^{(ℓ)} = K^{(ℓ+1)} + G1/n_ℓ,  Var Σ = V/n_ℓ,  E Ω = H^{(ℓ+1)} + H1/n_ℓ,  Var Ω = A/n_ℓ,
    Cov(Σ, Ω) = D/n_ℓ,  E T = B,  E R = F        (all labelled ℓ+1 in PDLT's convention).

Nothing in the resulting recursions is typed from a paper; tests compare them with docs/reference.md §3.

>>> rec = derive_ntk_layer_map()
>>> sorted(rec.exprs)
['A', 'B', 'D', 'F', 'G1', 'H', 'H1', 'K', 'V']
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

from .._diskcache import disk_cached

__all__ = ["NTKSymbols", "NTKLayerMap", "derive_ntk_layer_map", "STAT_NAMES"]

#: the order-1 statistics in the order they are stored
STAT_NAMES = ("G1", "V", "H1", "A", "B", "D", "F")


@dataclass(frozen=True)
class NTKSymbols:
    """The symbols of the derived map: incoming K, H and statistics; this layer's C's, λ's and r."""

    K: sp.Symbol
    H: sp.Symbol
    C_W: sp.Symbol
    C_b: sp.Symbol
    lam_W: sp.Symbol
    lam_b: sp.Symbol
    r: sp.Symbol
    stats: dict  # name -> symbol (incoming G1, V, H1, A, B, D, F)

    def args(self) -> list[sp.Symbol]:
        """The argument order used for compilation."""
        return [self.K, self.H, self.C_W, self.C_b, self.lam_W, self.lam_b, self.r,
                *[self.stats[s] for s in STAT_NAMES]]


@dataclass(frozen=True)
class NTKLayerMap:
    """The derived order-1 layer map of the NTK statistics at one input.

    ``exprs[name]`` is the outgoing quantity (K, H at infinite width; G1, V, H1, A, B, D, F in
    PDLT's normalisation, i.e. times the outgoing width) in the symbols :attr:`syms` and the
    Gaussian-expectation atoms ``E(f, K)`` of the generic σ.
    """

    syms: NTKSymbols
    exprs: dict

    def __getitem__(self, name: str) -> sp.Expr:
        return self.exprs[name]


@functools.lru_cache(maxsize=1)
@disk_cached
def derive_ntk_layer_map() -> NTKLayerMap:
    """The order-1 layer map of (K, H; G1, V, H1, A, B, D, F) for the generic σ, from the engine.

    The map takes the statistics of layer ℓ (PDLT labels; incoming width n_{ℓ−1}) to those of
    layer ℓ+1 (width n_ℓ); ``r`` = n_ℓ/n_{ℓ−1}.  Derived once and cached.

    >>> rec = derive_ntk_layer_map()
    >>> rec["K"]
    C_W*E(sigma(z)**2, K) + C_b
    """
    from ..engine.layermap import derive_layer_map, moment_symbol, ref_symbol
    from ..engine.observables import OUT

    lm = derive_layer_map(1)
    stats = {name: sp.Symbol(name, real=True) for name in STAT_NAMES}
    syms = NTKSymbols(ref_symbol("S"), ref_symbol("O"), OUT.C_W, OUT.C_b, OUT.lam_W, OUT.lam_b,
                      sp.Symbol("r", positive=True), stats)
    # PDLT's normalised statistics are the engine's order-1 moment coefficients and references
    keys = {"G1": (("S", 1),), "V": (("S", 2),), "H1": (("O", 1),), "A": (("O", 2),), "D": (("S", 1), ("O", 1))}
    sub = {moment_symbol(a, 1): stats[k] for k, a in keys.items()}
    sub.update({ref_symbol("T2"): stats["B"], ref_symbol("R1"): stats["F"]})
    exprs = {"K": lm.refs["S"], "H": lm.refs["O"], "B": lm.refs["T2"], "F": lm.refs["R1"]}
    exprs.update({k: lm.moments[a][1] for k, a in keys.items()})
    exprs = {k: sp.expand(v.xreplace(sub)) for k, v in exprs.items()}
    allowed = set(syms.args())
    for name, x in exprs.items():
        stray = x.free_symbols - allowed
        if stray:  # pragma: no cover - a derivation error
            raise AssertionError(f"{name}: leftover symbols {stray}")
    return NTKLayerMap(syms, {k: exprs[k] for k in ("K", "H", "G1", "V", "H1", "A", "D", "B", "F")})
