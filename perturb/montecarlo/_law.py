"""The exact-law sampler: forward statistics of random networks without drawing weight matrices.

Condition on the post-activations ``h^{(ℓ)}`` of layer ℓ at the N inputs (``h^{(0)} = x``).  The
preactivations of the next layer, ``z_i(x_a) = b_i + Σ_j W_ij h_j(x_a)``, are then a linear map of
the independent Gaussians ``W_ij ~ N(0, C_W/n_ℓ)``, ``b_i ~ N(0, C_b)``, so each neuron's vector
over the inputs is **exactly**

    (z_i(x_1), …, z_i(x_N)) | h^{(ℓ)}  ~  N(0, G),    G_ab = C_b + (C_W/n_ℓ) Σ_j h_j(x_a) h_j(x_b),

independently for i = 1..n_{ℓ+1} (the rows of W and the b_i are independent).  The joint law of
all preactivations of the network is the product of these conditionals, layer after layer — the
recursion of PDLT ch. 4 (LH §4) before any expansion in 1/n.  Sampling it costs O(n_ℓ N²) for G,
O(N³) for a square root of G and O(n_{ℓ+1} N²) for the new preactivations per layer and network,
instead of the n_ℓ n_{ℓ+1} Gaussian weights of the explicit simulation.

This holds for **Gaussian weights only** (for uniform or Rademacher weights the conditional law
is not Gaussian), and it gives the forward pass only: a Jacobian or an NTK needs the weights
themselves, so those statistics stay with the explicit sampler (``sampler="weights"``), which is
also the independent check of this one (tests/test_montecarlo_law.py).

Draws, per chunk, in a fixed order: for ℓ = 1..L+1 the standard normals ξ of shape
``(B, n_ℓ, N)``; then ``z = ξ Rᵀ`` with ``R = U diag(√λ₊)`` from the eigendecomposition
``G = U diag(λ) Uᵀ`` (negative rounding noise in λ clipped to 0, so a singular G — equal
inputs, dead ReLUs — is exact too).  At one input ``R = √G``.
"""

from __future__ import annotations

import numpy as np

from ..network import Network

__all__ = ["law_chunk_size", "law_forward"]

#: working memory of one chunk of the law sampler (bytes)
LAW_CHUNK_BYTES = 16 * 2**20


def law_chunk_size(net: Network, n_inputs: int) -> int:
    """Networks per chunk of the law sampler: about 16 MiB of preactivations per layer.

    Depends only on the architecture and the number of inputs (never on the number of samples
    or workers), so a run is reproducible bit for bit whatever the parallelism.

    >>> law_chunk_size(Network("tanh", widths=(512,) * 4), 1)
    4088
    """
    widest = max((*net.widths, 1))
    return max(1, LAW_CHUNK_BYTES // (8 * (widest + 1) * n_inputs))


def _root(G: np.ndarray) -> np.ndarray:
    """R with R Rᵀ = G for a batch of PSD matrices (B, N, N) (or one (N, N))."""
    lam, U = np.linalg.eigh(G)
    np.maximum(lam, 0.0, out=lam)
    return U * np.sqrt(lam)[..., None, :]


def law_forward(rng: np.random.Generator, net: Network, X: np.ndarray, B: int, f, check, *,
                keep: bool):
    """Preactivations of ``B`` networks at the inputs ``X`` (N, n0), drawn from their exact law.

    ``f`` is the activation (numpy), ``check(a, layer, what)`` raises on non-finite values.
    Returns the list of ``z^{(ℓ)}``, ℓ = 1..L+1, each ``(B, n_ℓ, N)``, if ``keep``, else the output
    ``z^{(L+1)}`` ``(B, 1, N)``.
    """
    N, n0 = X.shape
    dims = (n0, *net.widths, 1)
    zs = []
    h = None
    with np.errstate(over="ignore", invalid="ignore"):
        for ell in range(1, len(dims)):
            cw, cb, n_in, n_out = net.C_W[ell - 1], net.C_b[ell - 1], dims[ell - 1], dims[ell]
            xi = rng.standard_normal((B, n_out, N))
            if N == 1:
                if h is None:
                    g = np.full(B, cb + cw / n_in * float(X[0] @ X[0]))
                else:
                    g = np.einsum("bj,bj->b", h[:, :, 0], h[:, :, 0])
                    g *= cw / n_in
                    g += cb
                np.maximum(g, 0.0, out=g)
                xi *= np.sqrt(g)[:, None, None]
                z = xi
            else:
                if h is None:
                    G = cb + cw / n_in * (X @ X.T)
                else:
                    G = np.matmul(h.transpose(0, 2, 1), h)
                    G *= cw / n_in
                    G += cb
                R = _root(G)
                z = np.matmul(xi, np.swapaxes(R, -1, -2))
            if ell == len(dims) - 1:
                check(z, ell, "the output z")
                return zs + [z] if keep else z
            h = f(z)
            check(h, ell, f"σ(z^({ell}))")
            if keep:
                zs.append(z)
    raise AssertionError("unreachable")  # pragma: no cover
