"""perturb — a derivation engine for the theory of wide neural networks.

The public API is re-exported here (heavy modules lazily, so that ``perturb --help`` is fast);
the work lives in one module per concern:

* :mod:`perturb.activations` — the activation registry and expression parser;
* :mod:`perturb.network` — the fully connected network spec;
* :mod:`perturb.gaussian` — Gaussian expectations <f>_K: the symbolic atom and its evaluators;
* :mod:`perturb.infinite` — NNGP/NTK layer maps and infinite-width training predictions;
* :mod:`perturb.finite` — the finite-width engine (the 1/n expansion, derived order by order);
* :mod:`perturb.ntk` — the finite-width NTK at order 1/n;
* :mod:`perturb.relu_exact` — exact finite-width statistics of ReLU networks (matrix model);
* :mod:`perturb.criticality` — fixed points, criticality, depth scales, phase diagrams;
* :mod:`perturb.dynamics` — function-space hierarchy of gradient descent, the catapult;
* :mod:`perturb.montecarlo` — random networks, estimators and statistical verdicts;
* :mod:`perturb.compile` — the one SymPy-to-numpy/mpmath bridge; :mod:`perturb.latex` — documents.

>>> import perturb
>>> st = perturb.FiniteWidth("relu", depth=2, order=1).evaluate(K1=1.0, widths=[10, 10], C_W=2.0)
>>> float(st.total_cumulant(4))           # 3 K² · 5 (1/n1 + 1/n2)
3.0
"""

import importlib

__version__ = "0.1.0"

from .activations import SIGMA, Activation, Z, activation_names, get_activation  # noqa: E402
from .errors import DivergentIntegralError, NotImplementedOrderError, PerturbError  # noqa: E402
from .network import Network  # noqa: E402

#: name -> module of the lazily imported public API
_LAZY = {
    "E": "gaussian", "expect": "gaussian", "evaluate": "gaussian",
    "kernels": "infinite", "Kernels": "infinite", "train_predictions": "infinite",
    "FiniteWidth": "finite", "layer_map": "finite", "solve_fixed_point_chain": "finite",
    "ntk_statistics": "ntk.chain",
    "relu_output_law": "relu_exact", "relu_jacobian_law": "relu_exact",
    "fixed_point": "criticality", "critical_point": "criticality", "phase_diagram": "criticality",
    "uv_maps": "dynamics", "uv_catapult": "dynamics",
    "sample_outputs": "montecarlo", "sample_ntk": "montecarlo", "verdict": "montecarlo",
    "compile_expr": "compile",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'perturb' has no attribute {name!r}")


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
    *_LAZY,
]
