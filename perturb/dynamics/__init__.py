"""Training dynamics beyond the frozen kernel (docs/reference.md §5).

* :mod:`perturb.dynamics.hierarchy` — exact GD maps of function-space quantities (f, Θ, O_3, …),
  derived symbolically from a model definition by the Gram-matrix (invariance) method;
* :mod:`perturb.dynamics.catapult` — the uv model's catapult: phases, trajectories, thresholds;
* :mod:`perturb.dynamics.gd_experiments` — the same experiment on finite ReLU networks
  trained by the Monte Carlo laboratory's GD.

(``perturb.dynamics.ntk*`` is reserved for the NTK-statistics half of issue 7.)
"""

from .catapult import CatapultResult, uv_catapult
from .hierarchy import (
    ClosedMaps,
    HierarchyNotClosedError,
    VectorModel,
    derive_maps,
    hierarchy_tower,
    ntk,
    try_close,
    two_layer_linear_maps,
    two_layer_linear_model,
    uv_maps,
    uv_model,
)

__all__ = [
    "CatapultResult",
    "uv_catapult",
    "ClosedMaps",
    "HierarchyNotClosedError",
    "VectorModel",
    "derive_maps",
    "hierarchy_tower",
    "ntk",
    "try_close",
    "two_layer_linear_maps",
    "two_layer_linear_model",
    "uv_maps",
    "uv_model",
]
