"""train_ensemble: GD of many networks in chunks seeded by index (any executor, same bits).

Its networks are the laboratory's for the same seed, so the initial NTK and outputs must equal
sample_ntk / sample_outputs exactly, and each chunk must be train_gd's batched GD on that draw.
"""

from __future__ import annotations

import numpy as np
import pytest

from perturb.errors import PerturbError
from perturb.montecarlo import sample_ntk, sample_outputs, train_ensemble, train_gd
from perturb.montecarlo._simulate import _draw_params
from perturb.montecarlo._train import _train_params
from perturb.network import Network

NET = Network("tanh", widths=(8, 6), C_W=1.5, C_b=0.1)
X = [[1.0, 0.5], [-0.3, 0.8]]
Y = [0.2, -0.4]


def test_same_networks_as_the_laboratory_and_workers_do_not_matter():
    r = train_ensemble(NET, X, Y, 0.3, 5, 130, seed=9, chunk=50)
    assert r.outputs.shape == (130, 6, 2) and r.ntk_final.shape == (130, 2, 2)
    assert np.array_equal(r.ntk_initial, sample_ntk(NET, X, 130, seed=9, chunk=50))
    np.testing.assert_allclose(r.outputs[:, 0, :], sample_outputs(NET, X, 130, seed=9, chunk=50),
                               rtol=1e-13, atol=1e-15)
    r2 = train_ensemble(NET, X, Y, 0.3, 5, 130, seed=9, chunk=50, workers=2)
    assert all(np.array_equal(getattr(r, k), getattr(r2, k)) for k in ("outputs", "loss", "ntk_initial", "ntk_final"))
    assert np.all(r.loss[:, -1] < r.loss[:, 0])


def test_each_chunk_is_batched_gd_on_its_draw():
    r = train_ensemble(NET, X, Y, 0.3, 4, 70, seed=2, chunk=50)
    rng = np.random.default_rng(np.random.SeedSequence(2, spawn_key=(1,)))
    out, loss, t0, t1 = _train_params(_draw_params(rng, NET, 2, 20, "gaussian"), NET, np.asarray(X), np.asarray(Y),
                                      0.3, 4, "ntk")
    assert np.array_equal(r.outputs[50:], out) and np.array_equal(r.ntk_final[50:], t1)
    # and train_gd's batched path is the same GD (its own draw from SeedSequence(seed))
    g = train_gd(NET, X, Y, 0.3, 4, seed=2, ensemble=3)
    rng = np.random.default_rng(np.random.SeedSequence(2))
    out, *_ = _train_params(_draw_params(rng, NET, 2, 3, "gaussian"), NET, np.asarray(X), np.asarray(Y), 0.3, 4, "ntk")
    assert np.array_equal(g.outputs, out)


def test_bad_input():
    with pytest.raises(PerturbError, match="n_networks must be a positive integer"):
        train_ensemble(NET, X, Y, 0.3, 4, 0, seed=0)
    with pytest.raises(PerturbError, match="eta must be a finite number > 0"):
        train_ensemble(NET, X, Y, -1.0, 4, 10, seed=0)
