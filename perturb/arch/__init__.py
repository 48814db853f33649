"""Architectures beyond the fully connected network: conv, pooling, flatten and residual blocks.

* :mod:`.spec` — the layers, the ``serial``/``residual`` combinators, JSON round trip, validation;
* :mod:`.maps` — the infinite-width layer maps of the pixel-pair kernel and the NTK;
* :mod:`.fold` — the fold over the layers, blocked over input pairs (:func:`kernels`);
* :mod:`.networks` — finite-width random conv/residual networks in numpy (Monte Carlo checks);
* :mod:`.criticality` — residual MLPs ``z' = ξ z + γ(b + W σ(z))``: fixed points, χ's, depth scales.

>>> import numpy as np
>>> from perturb.arch import serial, conv, act, global_avg_pool, dense, kernels
>>> net = serial(conv([3, 3], C_W=2.0), act("relu"), global_avg_pool(), dense(C_W=1.0))
>>> kernels(net, np.ones((2, 4, 4, 1))).nngp.shape
(2, 2)
"""

from .fold import MAX_BLOCK_BYTES, Plan, check_inputs, kernels, plan
from .spec import (
    LAYER_TYPES,
    Act,
    Architecture,
    AvgPool,
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    Residual,
    act,
    avg_pool,
    conv,
    dense,
    flatten,
    global_avg_pool,
    residual,
    serial,
)

__all__ = [
    "Architecture", "Dense", "Conv", "Act", "AvgPool", "GlobalAvgPool", "Flatten", "Residual",
    "LAYER_TYPES", "dense", "conv", "act", "avg_pool", "global_avg_pool", "flatten", "residual",
    "serial", "kernels", "plan", "Plan", "check_inputs", "MAX_BLOCK_BYTES",
]
