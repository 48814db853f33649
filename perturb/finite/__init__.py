"""The finite-width engine: the 1/n expansion of deep networks, derived order by order.

* :mod:`~perturb.finite.layer` — the derived layer map (moments of Σ^{(ℓ)} from Σ^{(ℓ−1)});
* :mod:`~perturb.finite.chain` — :class:`FiniteWidth`: planning, the expression graph, numeric
  (numpy, mpmath) and exact (SymPy) folds over depth;
* :mod:`~perturb.finite.combinatorics`, :mod:`~perturb.finite.series` — the bookkeeping.
"""

from .chain import FiniteWidth, MultiInputStatistics, OneInputStatistics
from .layer import LayerMap, layer_map, moment_symbol

__all__ = ["FiniteWidth", "OneInputStatistics", "MultiInputStatistics", "LayerMap", "layer_map",
           "moment_symbol"]
