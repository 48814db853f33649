"""Large-depth series at criticality derived by the engine, against iteration of the same recursions
and against REFERENCE §3 [D]: K*=0 class V/K² → (2/3) ℓ, tanh G1/K → −ℓ/3; ReLU V = 5(ℓ−1)K²."""

from __future__ import annotations

import math

import pytest
import sympy as sp

from perturb.criticality import vertex_depth_series
from perturb.errors import PerturbError
from perturb.finite import FiniteWidth
from perturb.finite.asymptotics import k_star_zero_series


@pytest.mark.parametrize("activation,kappa", [("tanh", sp.Rational(1, 2)), ("erf", sp.Rational(1, 2)),
                                               ("sin", sp.Integer(1))])
def test_k_star_zero_series(activation, kappa):
    s = k_star_zero_series(activation)
    assert (s.kappa, s.v, s.g) == (kappa, sp.Rational(2, 3), sp.Rational(-1, 3))


def test_series_against_iterating_the_numeric_recursion():
    """V/(K² ℓ) and G1/(K ℓ) of the numeric order-1 fold approach v and g at the O(log ℓ/ℓ) rate."""
    s = k_star_zero_series("tanh")
    errs = []
    for L in (100, 800):
        st = FiniteWidth("tanh", depth=L, order=1).evaluate(K1=1.0, widths=[50] * L, C_W=1.0)
        ell, K = L + 1, st.K
        V = 50 * st.cumulants[4][1] / 3          # κ4 = 3V/n
        G1 = 50 * st.cumulants[2][1]             # E z² = K + G1/n
        errs.append((abs(V / K**2 / ell - float(s.v)), abs(G1 / K / ell - float(s.g))))
        bound = 3 * math.log(ell) / ell
        assert errs[-1][0] < bound and errs[-1][1] < bound
    assert errs[1][0] < errs[0][0] / 2 and errs[1][1] < errs[0][1] / 2


def test_vertex_depth_series_scale_invariant_exact():
    assert vertex_depth_series("relu").startswith("V^(l)/K^2 = 5*l - 5,  G1^(l) = 0")
    # leaky ReLU (slope 1/5): V/K² = [6(1+a⁴)/(1+a²)² − 1](l − 1) = 770/169 (l − 1)
    assert vertex_depth_series("leaky_relu:0.2").startswith("V^(l)/K^2 = 770*l/169 - 770/169")


def test_not_in_class():
    with pytest.raises(PerturbError, match="K\\*=0 class"):
        k_star_zero_series("softplus")
    with pytest.raises(PerturbError, match="kinks"):
        k_star_zero_series("relu")
