"""Exact, non-perturbative finite-width laws at one input, for any activation.

At one input the collective observable Σ^{(ℓ)} = C_b + (C_W/n_ℓ) Σ_j σ(z_j^{(ℓ)})² is an exact
Markov chain ([LH] Lemma 4.4): given Σ^{(ℓ−1)} = S the neurons of layer ℓ are iid N(0, S), so
Σ^{(ℓ)} is C_b plus C_W times the mean of n_ℓ iid copies of σ(√S g)², g ~ N(0, 1).  The law of
Σ^{(L)} is computed by density evolution with a controlled discretisation error
(:mod:`perturb.exact._chain`), and the output z | Σ^{(L)} ~ N(0, Σ^{(L)}) is a Gaussian mixture
(:mod:`perturb.exact.law`).  :mod:`perturb.exact.resum` resums the 1/n series of
:mod:`perturb.finite` and says where it can be trusted.
"""

from .law import MAX_RESOLUTION, ExactLaw, exact_law

__all__ = ["ExactLaw", "exact_law", "MAX_RESOLUTION"]
