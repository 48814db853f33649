"""The finite-width engine: the 1/n expansion of deep networks, derived order by order.

* :mod:`~perturb.finite.layer` — the derived layer map (moments of Σ^{(ℓ)} from Σ^{(ℓ−1)});
* :mod:`~perturb.finite.chain` — :class:`FiniteWidth`: planning, the expression graph, numeric
  (numpy, mpmath) and exact (SymPy) folds over depth;
* :mod:`~perturb.finite.solve` — closed-form solutions in the layer index at kernel fixed points;
* :mod:`~perturb.finite.graph` — JSON/DOT export of the expression graph;
* :mod:`~perturb.finite.combinatorics`, :mod:`~perturb.finite.series` — the bookkeeping.
"""

from .chain import FiniteWidth, MultiInputStatistics, OneInputStatistics
from .graph import to_dot, to_json, write_graph
from .layer import LayerMap, layer_map, moment_symbol
from .solve import FixedPointSolution, solve_fixed_point_chain

__all__ = ["FiniteWidth", "OneInputStatistics", "MultiInputStatistics", "LayerMap", "layer_map",
           "moment_symbol", "to_json", "to_dot", "write_graph", "FixedPointSolution",
           "solve_fixed_point_chain"]
