"""Exact finite-width NTK moments of a deep linear network at one input (σ(z) = z, zero biases).

Derived without the perturbative engine, from the forward/backward decomposition
Θ = Σ_ℓ G_ℓ [λ_b^{(ℓ)} + (λ_W^{(ℓ)}/n_{ℓ−1}) ρ_{ℓ−1}] (ρ = |h|², G = |∂z/∂z^{(ℓ)}|²), rotation
invariance and conditioning each weight matrix on its action on the forward vector (see
:mod:`perturb.ntk_exact` for the derivation).  For a linear network it gives, with independent
chi-squares X_ℓ ~ χ²_{n_ℓ}, Y_ℓ ~ χ²_{n_ℓ−1} (ℓ ≤ L), X_{L+1} ~ χ²_1 and c_ℓ = C_W^{(ℓ)}/n_{ℓ−1},

    ρ_ℓ = |x|² Π_{m≤ℓ} c_m X_m,     G_ℓ = Π_{m>ℓ} c_m X_m + c_{ℓ+1} Y_ℓ G_{ℓ+1},   G_{L+1} = 1,

so E Θ and E Θ² are finite sums of products of chi-square moments, exact rational functions of
the (possibly symbolic) widths.  With C_W = 1, λ_W = C_W, λ_b = 0, |x|²/n_0 = 1 and equal widths n
the variance is 4/n (L = 1), 4(5n+4)/n² (L = 2), 4(14n²+23n+13)/n³ (L = 3),
4(30n³+75n²+86n+39)/n⁴ (L = 4).  The same law holds for σ(z) = |z| (D² = I).

>>> import sympy as sp
>>> n = sp.Symbol("n", positive=True)
>>> m = ntk_moments_exact([n, n, n])
>>> m["mean"], sp.factor(m["var"])
(4, 4*(14*n**2 + 23*n + 13)/n**3)
"""

from __future__ import annotations

import sympy as sp

from .ntk_exact import ntk_moment, ntk_moments

__all__ = ["ntk_moments_exact", "ntk_moment_exact"]


def ntk_moments_exact(widths, x_norm2_over_n0=1, C_W=1, lambda_W=None, lambda_b=0) -> dict[str, sp.Expr]:
    """Exact {"mean": E Θ, "second": E Θ², "var": Var Θ} of a deep linear network's NTK at one input.

    Args:
        widths: hidden widths n_1..n_L, positive integers or SymPy symbols (any depth L ≥ 1).
        x_norm2_over_n0: |x|²/n_0 (a number or a symbol).
        C_W: weight variance, a scalar or one per layer 1..L+1 (numbers or symbols).
        lambda_W: weight learning-rate factors λ_W^{(ℓ)} (per-parameter λ_W/n_{ℓ−1}); default C_W
            (the NTK parameterisation).
        lambda_b: bias learning-rate factors (biases initialised at 0, C_b = 0); default 0.

    Returns:
        exact SymPy expressions (Rationals for numeric input).

    >>> ntk_moments_exact([2])["var"]            # 4/n at n = 2
    2
    """
    return ntk_moments("linear", widths, x_norm2_over_n0, C_W, lambda_W, lambda_b)


def ntk_moment_exact(widths, p: int, x_norm2_over_n0=1, C_W=1, lambda_W=None, lambda_b=0) -> sp.Expr:
    """E Θ^p (p ≤ 6) of a deep linear network's NTK at one input, exactly.

    >>> ntk_moment_exact([1], 3)              # L = 1, n = 1: Θ = X_1 + X_2 (two χ²_1)
    48
    """
    return ntk_moment("linear", widths, p, x_norm2_over_n0, C_W, lambda_W, lambda_b)
