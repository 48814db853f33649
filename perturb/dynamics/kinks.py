"""Kink crossings: the O(η/√n) drift of the mean NTK in one GD step of a piecewise-linear network.

For σ with a kink at 0 (ReLU, leaky ReLU, abs: slopes s₋ for z < 0 and s₊ for z > 0), the
almost-everywhere expansion ΔΘ = −η ε O3 + O(η²) (:mod:`perturb.dynamics.ntk_move`) misses the
neurons whose preactivation crosses the kink during the step.  Counting them (one input x, one
output z, loss ½(z − y)², ε = z − y, NTK parameterisation):

* A hidden neuron j of layer ℓ moves by Δz_j = −η ε Θ_{j,out}, with the cross NTK
  Θ_{j,out} = {z_j, z} = σ'_j b_j H_ℓ + c_j: b_j = Σ_i W^{(ℓ+1)}_{ij} δ_i is the backpropagated
  signal reaching j, and c_j = Σ_{k≠j} Θ^{(ℓ)}_{jk} δ_k = Σ_p W^{(ℓ)}_{jp} σ'_p Θ^{(ℓ−1)}_{p,out} the
  part through the other neurons (zero at ℓ = 1, where Θ^{(1)} is diagonal).
* When j crosses, σ'_j switches and Θ jumps by the change of Σ_{kk'} δ_k δ_k' Θ^{(ℓ)}_{kk'}
  (everything else is continuous in z_j): J = (s₊² − s₋²) H_ℓ b_j² + 2 (s₊ − s₋) b_j c_j going up
  (− to +), −J going down.
* At leading order b_j ~ N(0, s_b²), c_j ~ N(0, s_c²) and z are independent of each other and of
  z_j ~ N(0, K_ℓ), so the expected drift of the step is

      E[ΔΘ_kink] = η Σ_ℓ n_ℓ ρ_{K_ℓ}(0) E[ J · ((−ε w₋)_+ − (ε w₊)_+) ],     w_± = s_± H_ℓ b + c,
                 = η Σ_ℓ n_ℓ ρ_{K_ℓ}(0) (E|ε| / 2) (E[J |w₋|] − E[J |w₊|])     ((b, c) → −(b, c)),

  with E[b²|w|] = √(2/π)(s_b² s_w + α² s_b⁴/s_w), E[bc|w|] = √(2/π) α s_b² s_c²/s_w for w = αb + c,
  s_w² = α² s_b² + s_c².
* The variances follow the backward pass: D_{L+1} = 1, D_ℓ = C_W^{(ℓ+1)} ⟨σ'²⟩_{K_ℓ} D_{ℓ+1}
  (= E Σ_i δ_i² of layer ℓ), s_b²(ℓ) = C_W^{(ℓ+1)} D_{ℓ+1}/n_ℓ, s_c²(1) = 0 and
  s_c²(ℓ) = C_W^{(ℓ)} [⟨σ'⁴⟩ H_{ℓ−1}² s_b²(ℓ−1) + ⟨σ'²⟩ s_c²(ℓ−1)] (atoms at K_{ℓ−1}).

Each layer contributes O(η/√n).  At one hidden ReLU layer only active neurons cross (c = 0,
s₋ = 0) and the drift is −η n ρ_{K1}(0) H1² E|v|³ E|z|/2 = −2.873 η/√n for C_W = 2, x = 1.
Checks: direct numerical integration of the three-variable Gaussian expectation, and gradient
descent of real networks (tests/test_kinks.py).

>>> round(kink_drift("relu", [256, 256], [1.0], C_W=2.0).per_sqrt_n, 2)    # two hidden layers
-14.14
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..activations import Z, get_activation
from ..errors import PerturbError
from ..gaussian import expect
from ..ntk.chain import _per_layer, ntk_statistics
from .ntk_move import check_target

__all__ = ["KinkDrift", "kink_drift", "kink_slopes"]


@dataclass(frozen=True)
class KinkDrift:
    """The kink-crossing drift of the mean NTK per unit learning rate (one GD step).

    Attributes:
        per_layer: the contribution of each hidden layer ℓ = 1..L to dE[ΔΘ]/dη.
        total: their sum (the η-coefficient to add to −E[(z − y) O3]).
        per_sqrt_n: ``total × √n_L`` (a width-independent number for equal widths).
        slopes: (s₋, s₊).
    """

    per_layer: tuple
    total: float
    per_sqrt_n: float
    slopes: tuple


def kink_slopes(activation) -> tuple[float, float]:
    """(s₋, s₊) of a continuous piecewise-linear σ with one kink at 0; raises otherwise."""
    act = get_activation(activation)
    if act.is_generic or tuple(act.kinks) != (0.0,):
        raise PerturbError(f"kink_drift needs a continuous piecewise-linear activation with one kink at z = 0 "
                           f"(relu, leaky_relu:A, abs), got {act.name!r} (kinks {tuple(act.kinks)})")
    d1 = act.derivative(1)
    d2 = act.derivative(2).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
    s_lo, s_hi = (float(d1.subs(Z, v)) for v in (-1, 1))
    left, right = (sp.limit(act.expr, Z, 0, d) for d in ("-", "+"))
    if sp.simplify(d2) != 0 or left != right or d1.subs(Z, -2) != d1.subs(Z, -1) or d1.subs(Z, 2) != d1.subs(Z, 1):
        raise PerturbError(f"kink_drift needs a continuous piecewise-linear activation (slopes constant on each "
                           f"side of 0), got {act.name!r}")
    return s_lo, s_hi


def _abs_moments(alpha, s_b2, s_c2):
    """E[b²|w|], E[bc|w|] for independent b ~ N(0, s_b²), c ~ N(0, s_c²), w = αb + c."""
    s_w2 = alpha**2 * s_b2 + s_c2
    if s_w2 == 0:
        return 0.0, 0.0
    s_w = math.sqrt(s_w2)
    k = math.sqrt(2 / math.pi)
    return k * (s_b2 * s_w + alpha**2 * s_b2**2 / s_w), k * alpha * s_b2 * s_c2 / s_w


def _abs_dev(K: float, y: float) -> float:
    """E|z − y| for z ~ N(0, K)."""
    s = math.sqrt(K)
    return s * math.sqrt(2 / math.pi) * math.exp(-y * y / (2 * K)) + y * math.erf(y / (s * math.sqrt(2)))


def kink_drift(activation, widths: Sequence[int], x, *, y: float = 0.0, C_W=2.0, C_b=0.0, lambda_W=None,
               lambda_b=None) -> KinkDrift:
    """dE[ΔΘ]/dη from kink crossings at leading order, O(1/√n) (one input, one output, one step).

    Same network arguments as :func:`perturb.ntk.chain.ntk_statistics` (λ = C by default); ``y``
    is the target.  See the module docstring for the derivation.
    """
    s_lo, s_hi = kink_slopes(activation)
    y = check_target(y)
    st = ntk_statistics(activation, widths, x, C_W=C_W, C_b=C_b, lambda_W=lambda_W, lambda_b=lambda_b)
    ws = st.widths
    L = len(ws)
    cw = [float(v) for v in _per_layer(C_W, L + 1, "C_W", strict=True)]
    K = [float(v) for v in st.layers["K"]]
    H = [float(v) for v in st.layers["H"]]
    d2 = [float(expect(sp.Heaviside(Z) * s_hi**2 + sp.Heaviside(-Z) * s_lo**2, k)) for k in K]
    d4 = [float(expect(sp.Heaviside(Z) * s_hi**4 + sp.Heaviside(-Z) * s_lo**4, k)) for k in K]
    # backward: D[ℓ] for ℓ = 1..L+1 (index ℓ−1)
    D = [0.0] * (L + 1)
    D[L] = 1.0
    for ell in range(L, 0, -1):
        D[ell - 1] = cw[ell] * d2[ell - 1] * D[ell]
    s_b2 = [cw[ell] * D[ell] / ws[ell - 1] for ell in range(1, L + 1)]        # layer ℓ = index + 1
    s_c2 = [0.0] * L
    for i in range(1, L):
        s_c2[i] = cw[i] * (d4[i - 1] * H[i - 1] ** 2 * s_b2[i - 1] + d2[i - 1] * s_c2[i - 1])
    e_abs = _abs_dev(K[L], y)
    out = []
    for i in range(L):
        h = H[i]
        terms = []
        for s in (s_lo, s_hi):
            bb, bc = _abs_moments(s * h, s_b2[i], s_c2[i])
            terms.append((s_hi**2 - s_lo**2) * h * bb + 2 * (s_hi - s_lo) * bc)
        rho = 1 / math.sqrt(2 * math.pi * K[i])
        out.append(ws[i] * rho * e_abs / 2 * (terms[0] - terms[1]))
    total = float(np.sum(out))
    return KinkDrift(tuple(out), total, total * math.sqrt(ws[-1]), (s_lo, s_hi))
