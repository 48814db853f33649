"""Gaussian expectations ``<f>_K``: the symbolic atom and its three evaluators.

* :mod:`~perturb.gaussian.atom` — ``E(f, K)``, the immutable SymPy node;
* :mod:`~perturb.gaussian.closed` — the closed-form registry (ReLU family, erf and erf',
  GELU and GELU', sin/cos, polynomials by Wick/Isserlis, piecewise polynomials);
* :mod:`~perturb.gaussian.quadrature` — vectorised numeric quadrature (composite Gauss–Legendre
  panels, split at the kinks of piecewise integrands; Mehler series for Gram matrices);
* :mod:`~perturb.gaussian.interp` — Chebyshev interpolants in log K for large arrays of variances;
* :mod:`~perturb.gaussian.pairs` — checked Chebyshev interpolants of two-point functions in
  (log K_αα, log K_ββ, ρ) for Gram matrices of activations without a closed form;
* :mod:`~perturb.gaussian.blocks` — row-blocked, threaded evaluation helpers;
* :mod:`~perturb.gaussian.precise` — mpmath at any number of digits (lattice rule with a measured
  error for smooth integrands, panels for kinked ones, nested quad as the last resort);
* :mod:`~perturb.gaussian.dispatch` — the dispatcher: :func:`expect` and :func:`evaluate`.
"""

from .atom import E, GaussianExpectation, atom_canonical, integration_vars, wick, zvars

__all__ = ["E", "GaussianExpectation", "atom_canonical", "integration_vars", "wick", "zvars"]
from .closed import closed_form  # noqa: E402
from .dispatch import closed_form_of, evaluate, expect, substitute_activation  # noqa: E402
from .precise import expect_mpmath  # noqa: E402
from .quadrature import expect_numeric, pair_gram  # noqa: E402

__all__ += ["closed_form", "closed_form_of", "evaluate", "expect", "substitute_activation",
            "expect_mpmath", "expect_numeric", "pair_gram"]
