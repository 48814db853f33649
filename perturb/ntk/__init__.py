"""Finite-width NTK statistics at order 1/n (docs/reference.md §3): derived, evaluated, checked.

* :mod:`~perturb.ntk.derive` — the order-1 NTK layer map in PDLT's names (a front end over
  :mod:`perturb.engine`, which also derives order 1/n²: :func:`perturb.engine.ntk_series`);
* :mod:`~perturb.ntk.chain` — the fold over depth (numpy, mpmath, exact SymPy) and the output
  NTK's mean and variance; the exponential (large L/n) picture for ReLU.
* :mod:`~perturb.ntk.derive_multi`, :mod:`~perturb.ntk.multi` — the same at several inputs
  (tensors over inputs; E Θ_{αβ}, Cov(Θ_{αβ}, Θ_{γδ}), Cov(z_α z_β, Θ_{γδ})).
* :mod:`~perturb.ntk.dntk`, :mod:`~perturb.ntk.ddntk` — the dNTK (E[z O3]) and the ddNTK
  (E[O4], E[{Θ,Θ}]) at one input, derived by the bracket algebra and folded over depth.
"""

from .derive import NTKLayerMap, derive_ntk_layer_map

__all__ = ["NTKLayerMap", "derive_ntk_layer_map"]
from .derive_multi import NTKMultiMap, derive_ntk_multi_map  # noqa: E402
from .dntk import DNTKStatistics, derive_dntk_layer_map, dntk_statistics  # noqa: E402,F401  (issue 7 item 3)
from .multi import NTKMultiStatistics, ntk_statistics_multi  # noqa: E402

__all__ += ["NTKMultiMap", "derive_ntk_multi_map", "NTKMultiStatistics", "ntk_statistics_multi"]
from .ddntk import DDNTKStatistics, ddntk_statistics, derive_ddntk_layer_map  # noqa: E402,F401
