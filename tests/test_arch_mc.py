"""Monte Carlo of real finite-width conv, pooling and residual networks against perturb.arch.kernels.

The networks are built layer by layer in numpy (perturb.arch.networks: explicit weights, im2col
convolutions, NTK by backprop).  When every activation acts on exactly Gaussian pre-activations
(one nonlinearity deep, inside or outside a residual block), E f(x) f(x') = K(x, x') and E Θ̂ = Θ
hold exactly at ANY width — each later layer is linear in the previous empirical Gram — so the
check is a pure z-test (the laboratory's 99 % verdict, Bonferroni over entries, fixed seeds).
Deeper networks differ by O(1/n); the slow test extrapolates in width.  A negative control shows
the test can fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from perturb.arch import (
    act,
    avg_pool,
    conv,
    dense,
    flatten,
    global_avg_pool,
    kernels,
    residual,
    serial,
)
from perturb.arch.networks import sample_networks
from perturb.montecarlo import assert_agrees, extrapolate_in_width, moment, verdict

RNG = np.random.default_rng(2026)
IMG = RNG.standard_normal((3, 4, 4, 2))
IMG_BLACK = IMG.copy()
IMG_BLACK[0, :2, :3] = 0.0                      # zero-variance pixels with C_b = 0
SEQ = RNG.standard_normal((3, 6, 2))

ONE_NONLINEARITY = {
    "conv2d-relu-gap": (serial(conv([3, 3], C_W=2.0, C_b=0.1), act("relu"), global_avg_pool(), dense(1.5, 0.2)), IMG),
    "conv2d-relu-black": (serial(conv([2, 2], C_W=2.0), act("relu"), global_avg_pool(), dense(1.0)), IMG_BLACK),
    "conv2d-erf-valid-pool-flatten": (serial(conv([2, 3], "VALID", C_W=1.7, C_b=0.3), act("erf"), avg_pool([1, 2]),
                                             flatten(), dense(1.0, 0.1)), IMG),
    "conv1d-residual-flatten": (serial(conv([3], C_W=1.0), residual(act("relu"), conv([3], C_W=2.0, C_b=0.1)),
                                       flatten(), dense(2.0)), SEQ),
    "conv2d-residual-tanh-pool": (serial(conv([3, 3], C_W=1.5, C_b=0.1), residual(act("tanh"), conv([2, 2], C_W=1.0)),
                                         avg_pool([2, 2]), global_avg_pool(), dense(1.0)), IMG),
}


def _stats(arch, X, width, samples, seed):
    f, th = sample_networks(arch, X, width=width, samples=samples, seed=seed)
    ff = (f[:, :, None] * f[:, None, :]).reshape(samples, -1)
    return moment(ff, 1), moment(th.reshape(samples, -1), 1)


@pytest.mark.parametrize("name", sorted(ONE_NONLINEARITY))
def test_exact_at_finite_width(name):
    arch, X = ONE_NONLINEARITY[name]
    k = kernels(arch, X)
    K_est, T_est = _stats(arch, X, width=12, samples=3000, seed=7)
    assert_agrees(k.nngp.reshape(-1), K_est, label=f"{name} NNGP")
    assert_agrees(k.ntk.reshape(-1), T_est, label=f"{name} NTK")


def test_negative_control():
    """The same data reject the two convention slips one could make: reading out by the pixel
    diagonal (flatten) instead of all position pairs (global pooling), and VALID for SAME padding."""
    arch, X = ONE_NONLINEARITY["conv2d-relu-gap"]
    K_est, T_est = _stats(arch, X, width=12, samples=3000, seed=7)
    for wrong in (serial(*arch.layers[:2], flatten(), arch.layers[3]),
                  serial(conv([3, 3], "VALID", C_W=2.0, C_b=0.1), *arch.layers[1:])):
        k = kernels(wrong, X)
        assert not verdict(k.nngp.reshape(-1), K_est).passed
        assert not verdict(k.ntk.reshape(-1), T_est).passed


@pytest.mark.slow
def test_two_nonlinearities_width_extrapolation():
    """conv, residual(relu, conv), erf, GAP has O(1/n) corrections: the n → ∞ extrapolation of widths 8, 16, 32
    (degree 1 in 1/n) must agree with the infinite-width kernel."""
    arch = serial(conv([3], C_W=2.0, C_b=0.1), residual(act("relu"), conv([3], C_W=1.0)), act("erf"),
                  global_avg_pool(), dense(1.0))
    X = SEQ[:, :5]
    k = kernels(arch, X)
    ns = (8, 16, 32)
    Ks, Ts = zip(*(_stats(arch, X, width=n, samples=6000, seed=11 + n) for n in ns))
    assert_agrees(k.nngp.reshape(-1), extrapolate_in_width(ns, Ks, degree=1), label="NNGP, n → ∞")
    assert_agrees(k.ntk.reshape(-1), extrapolate_in_width(ns, Ts, degree=1), label="NTK, n → ∞")
