"""perturb — a derivation engine for the theory of wide neural networks.

The public API is re-exported here; the work lives in one module per concern:

* :mod:`perturb.activations` — the activation registry and expression parser;
* :mod:`perturb.network` — the fully connected network spec;
* :mod:`perturb.gaussian` — Gaussian expectations <f>_K: the symbolic atom and its evaluators;
* :mod:`perturb.infinite` — NNGP/NTK layer maps and infinite-width training predictions;
* :mod:`perturb.compile` — the one SymPy-to-numpy/mpmath bridge.
"""

__version__ = "0.1.0"

from .activations import SIGMA, Activation, Z, activation_names, get_activation  # noqa: E402
from .errors import DivergentIntegralError, NotImplementedOrderError, PerturbError  # noqa: E402
from .network import Network  # noqa: E402

__all__ = [
    "__version__",
    "Activation",
    "get_activation",
    "activation_names",
    "Z",
    "SIGMA",
    "Network",
    "PerturbError",
    "DivergentIntegralError",
    "NotImplementedOrderError",
]
