"""One derivation engine for the finite-width hierarchy (Σ, the NTK Θ, …) from the network's definition.

* :mod:`~perturb.engine.observables` — the collective observables of a layer (Σ, Ω, the cycle sums
  T_a = C_W^a tr M^a/n and chain sums R_a = C_W^{a+1} σᵀM^aσ/n of M = diag σ' Θ diag σ'), defined
  from z_i = b_i + W_i·σ and Θ = Σ_μ λ_μ ∂_μz ∂_μz;
* :mod:`~perturb.engine.wick` — Gaussian integration by parts over the weight rows: products of
  per-neuron functions and NTK entries become Gaussian atoms times traces and chains of the layer
  below, with their powers of 1/n;
* :mod:`~perturb.engine.layermap` — index patterns, exact conditional expectations, averaging
  (Taylor/Price around the infinite-width state, closure with the incoming moments), truncation at
  order (1/n)^k and the work list that finds which observables and moments an order needs;
* :mod:`~perturb.engine.fold` — the numeric fold over depth and the output NTK's statistics by order.

:mod:`perturb.ntk.derive` (order 1, PDLT's names) is a front end over it.
"""

from .fold import ntk_series
from .layermap import LayerMap, derive_layer_map

__all__ = ["LayerMap", "derive_layer_map", "ntk_series"]
