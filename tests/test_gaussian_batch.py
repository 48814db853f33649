"""perturb.gaussian.batch.expect_batch — all atoms of a layer in one quadrature per covariance —
against the one-at-a-time path (perturb.gaussian.expect) and mpmath, and the NTK statistics at
two inputs through it against the one-at-a-time evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import perturb.ntk.multi as multi
from perturb.activations import Z, get_activation
from perturb.errors import PerturbError
from perturb.gaussian import expect, expect_mpmath, zvars
from perturb.gaussian.batch import expect_batch

Z1, Z2 = zvars(2)


def _items():
    gelu = get_activation("gelu")
    s, ds, dds = gelu.expr, gelu.derivative(), gelu.derivative().diff(Z)
    K2 = [[1.3, 0.4], [0.4, 0.8]]
    K2b = [[0.7, -0.2], [-0.2, 1.9]]
    pair = [(f.subs(Z, Z1) * g.subs(Z, Z2), K) for f in (s, ds, dds) for g in (s, ds) for K in (K2, K2b)]
    one = [(f * g, v) for f in (s, ds) for g in (ds, dds) for v in (0.6, 1.3)]
    kinked = [(sp.Max(Z1, 0) * sp.tanh(Z2), K2), (sp.Heaviside(Z1) * Z2**2 * sp.tanh(Z2), K2),
              (sp.tanh(Z1) ** 2 * sp.tanh(Z2), K2b), (sp.Abs(Z) * sp.tanh(Z), 0.9)]
    closed = [(Z1 * Z2, K2), (sp.Max(Z, 0) ** 2, 1.1)]
    return pair + one + kinked + closed


def test_batch_equals_one_at_a_time():
    items = _items()
    got = expect_batch(items)
    ref = np.array([float(expect(f, K)) for f, K in items])
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("k", [0, 5, 13, 23])
def test_batch_against_mpmath(k):
    f, K = _items()[k]
    got = expect_batch(_items())[k]
    ref = expect_mpmath(f, K, dps=25)
    assert abs(got - float(ref)) <= 1e-11 * max(1.0, abs(float(ref)))


def test_batch_refuses_like_expect():
    with pytest.raises(PerturbError, match="diverges"):
        expect_batch([(sp.exp(Z1**2) * sp.tanh(Z2), [[1.0, 0.1], [0.1, 1.0]])])
    with pytest.raises(PerturbError, match="generic"):
        expect_batch([(sp.Function("sigma")(Z1) * Z2, [[1.0, 0.1], [0.1, 1.0]])])


@pytest.mark.slow      # the two-input map is derived first (~30 s cold, shared with test_ntk_multi)
def test_ntk_statistics_two_inputs_batched_equals_one_at_a_time(monkeypatch):
    X = np.array([[1.0, 0.5, -0.3], [0.2, -0.7, 0.4]])
    fast = multi.ntk_statistics_multi("gelu", [20, 30], X, C_W=1.5)
    monkeypatch.setattr(multi, "expect_batch",
                        lambda items, method="auto": [float(expect(f, K, method=method)) for f, K in items])
    slow = multi.ntk_statistics_multi("gelu", [20, 30], X, C_W=1.5)
    for name in ("mean", "cov", "mean_z", "cov_z"):
        a, b = np.asarray(getattr(fast, name), float), np.asarray(getattr(slow, name), float)
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13 * np.abs(b).max())
