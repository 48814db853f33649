"""Finite-width NTK statistics at order 1/n (REFERENCE §3): derived, evaluated, checked.

* :mod:`~perturb.ntk.derive` — the NTK's collective observables and their derived layer map;
* :mod:`~perturb.ntk.chain` — the fold over depth (numpy, mpmath, exact SymPy) and the output
  NTK's mean and variance; the exponential (large L/n) picture for ReLU.
"""

from .derive import NTKLayerMap, derive_ntk_layer_map

__all__ = ["NTKLayerMap", "derive_ntk_layer_map"]
from .dntk import DNTKStatistics, derive_dntk_layer_map, dntk_statistics  # noqa: E402,F401  (issue 7 item 3)
