"""Chebyshev interpolation of <f>_K over large variance arrays agrees pointwise with quadrature."""

import numpy as np
import pytest
import sympy as sp

from perturb.activations import Z
from perturb.gaussian import expect, expect_numeric
from perturb.gaussian.interp import INTERPOLATE_ABOVE, expect_interpolated


@pytest.mark.parametrize("f", [sp.tanh(Z) ** 2, sp.tanh(Z) ** 4 * Z**4, sp.Max(Z, 0) ** 3 * sp.tanh(Z),
                               sp.erf(Z) ** 2 * Z**2])
def test_interpolated_equals_quadrature_pointwise(f):
    K = np.random.default_rng(1).uniform(0.01, 8.0, 50_000)
    v = expect_interpolated(f, K)
    idx = np.arange(0, K.size, 211)
    direct = expect_numeric(f, K[idx])
    assert np.max(np.abs(v[idx] - direct) / np.abs(direct)) < 5e-13


def test_dispatcher_interpolates_only_large_arrays():
    f = sp.tanh(Z) ** 2
    K = np.full(INTERPOLATE_ABOVE + 1, 0.7)
    K[0] = 0.0  # a zero variance: interpolation in log K is impossible, quadrature is used
    v = expect(f, K, method="quad")
    assert v[0] == 0.0 and abs(v[1] - float(expect(f, 0.7, dps=20))) < 1e-14
