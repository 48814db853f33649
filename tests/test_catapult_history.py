"""A diverging GD run keeps its loss history up to the divergence (it used to become all inf).

Independent check: the history that network_catapult reports for a run that blows up equals,
step for step, a train_gd run of the same network stopped just before the divergence; and the
uv model predicts the blow-up rate — past ηλ = 4 the loss grows by at least (ηλ − 1)² per step.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("perturb.montecarlo._train")

from perturb.dynamics.gd_experiments import default_data, network_catapult, network_lambda0  # noqa: E402
from perturb.errors import PerturbError  # noqa: E402
from perturb.montecarlo import train_gd  # noqa: E402
from perturb.montecarlo._train import GDDivergedError  # noqa: E402
from perturb.network import Network  # noqa: E402


def test_divergent_run_keeps_its_history():
    X, Y = default_data(4, 8, seed=0)
    net = Network("relu", widths=(256,), C_W=2.0, C_b=0.0)
    lam0 = network_lambda0(net, X, Y, seed=0)
    r = network_catapult(net, X, Y, 6.0, 100, 0, lambda0=lam0)
    assert r.phase == "divergent"
    t = r.diverged_at
    assert t is not None and 2 < t < 100 and len(r.loss) == t + 1
    assert np.isfinite(r.loss[:-1]).all() and r.loss[-2] > 1e3 * r.loss[0]
    # the same network trained by train_gd for t - 1 steps: identical history (not re-derived)
    ref = train_gd(net, X, Y, 6.0 / lam0, t - 1, 0)
    np.testing.assert_allclose(r.loss[:t], ref.loss, rtol=1e-12)
    # once ηλ > 4 the residual is multiplied by at least |1 − ηλ| ≥ 3 each step (uv model, y = 0)
    growth = r.loss[t - 5:t] / r.loss[t - 6:t - 1]
    assert (growth > 9 * 0.9).all()


def test_train_gd_error_carries_the_trajectory_and_stays_a_one_line_error():
    X, Y = default_data(2, 8, seed=0)
    net = Network("relu", widths=(64,), C_W=2.0, C_b=0.0)
    lam0 = network_lambda0(net, X, Y, seed=1)
    with pytest.raises(GDDivergedError) as info:
        train_gd(net, X, Y, 20.0 / lam0, 500, 1)
    e = info.value
    assert isinstance(e, PerturbError) and "\n" not in str(e) and f"step {e.step}" in str(e)
    assert e.outputs.shape == (e.step + 1, 2) and e.loss.shape == (e.step + 1,)
    with pytest.raises(GDDivergedError) as info:
        train_gd(net, X, Y, 20.0 / lam0, 500, 1, ensemble=3)
    assert info.value.outputs.shape[0] == 3 and info.value.outputs.shape[1] == info.value.step + 1
