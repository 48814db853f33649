"""Ensembles and sweeps on a real Dask cluster: the same bits as a single process.

One LocalCluster of 2 worker processes (1 thread each) serves the whole module and is always
closed.  Every check compares the cluster's result with the serial one by exact equality: chunks
of a Monte Carlo ensemble draw from ``SeedSequence(seed, spawn_key=(i,))`` and sweep blocks are
fixed by the grid, so nothing may depend on where or when a task ran.  Skipped when the ``dask``
extra is not installed; the refusal without it is tested either way.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest

from perturb import criticality
from perturb.cli import main
from perturb.criticality import phase_diagram
from perturb.dynamics.ntk_move import sample_dntk
from perturb.errors import PerturbError
from perturb.montecarlo import (
    Executor,
    open_executor,
    run_sweep,
    sample_ntk,
    sample_outputs,
    sample_preactivations,
    train_ensemble,
)
from perturb.network import Network

X2 = [[1.0, 0.5], [-0.3, 0.8]]


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("distributed")
    with open_executor(dask_local=2) as ex:
        assert ex.kind == "dask" and len(ex.client.scheduler_info()["workers"]) == 2
        yield ex


def test_ensembles_bit_identical_on_the_cluster(cluster):
    net = Network("tanh", widths=(6, 5), C_W=1.5, C_b=0.1)
    for kw in (dict(), dict(sampler="law")):
        serial = sample_outputs(net, X2, 900, seed=7, chunk=100, **kw)        # 9 chunks
        assert _same_bits(sample_outputs(net, X2, 900, seed=7, chunk=100, executor=cluster, **kw), serial)
    a = sample_ntk(net, X2, 300, seed=3, chunk=60)
    assert _same_bits(sample_ntk(net, X2, 300, seed=3, chunk=60, executor=cluster), a)
    r0 = train_ensemble(net, X2, [0.2, -0.4], 0.3, 3, 90, seed=5, chunk=40)       # trained ensembles
    r1 = train_ensemble(net, X2, [0.2, -0.4], 0.3, 3, 90, seed=5, chunk=40, executor=cluster)
    assert all(_same_bits(getattr(r0, k), getattr(r1, k)) for k in ("outputs", "loss", "ntk_initial", "ntk_final"))
    zs = sample_preactivations(net, X2, 120, seed=2, chunk=40, executor=cluster)
    assert all(_same_bits(u, v) for u, v in zip(zs, sample_preactivations(net, X2, 120, seed=2, chunk=40)))


def test_dntk_ensembles_on_the_executor():
    # the dynamics' ensembles map their chunks through the same executor (local processes here,
    # without the cluster's cold start): 2 chunks of 245 networks
    wide = Network("tanh", widths=(128, 128))
    d0 = sample_dntk(wide, [1.0], 300, seed=1)
    d1 = sample_dntk(wide, [1.0], 300, seed=1, executor=Executor.processes(2))
    assert all(_same_bits(getattr(d0, f.name), getattr(d1, f.name)) for f in dataclasses.fields(d0))


def _sweep_point(cw, seed):  # a (config, seed) task: E z² of a small ensemble
    return float(np.mean(sample_outputs(Network("relu", widths=(4, 4), C_W=cw), [1.0], 200, seed) ** 2))


def test_sweeps_bit_identical_on_the_cluster(cluster, monkeypatch):
    tasks = [(cw, s) for cw in (1.0, 2.0) for s in (0, 1)]
    assert run_sweep(_sweep_point, tasks, executor=cluster) == run_sweep(_sweep_point, tasks)
    # phase diagram (leaky ReLU: closed forms, cheap on cold workers): 12 x 12 points in blocks of 3 rows
    monkeypatch.setattr(criticality, "PHASE_BLOCK_POINTS", 36)
    cb, cw = np.linspace(0.0, 2.0, 12), np.linspace(0.5, 4.5, 12)
    d0 = phase_diagram("leaky_relu:0.2", cb, cw)
    d1 = phase_diagram("leaky_relu:0.2", cb, cw, executor=cluster)
    assert {"ordered", "divergent"} <= set(d0.grid.phase.ravel().tolist())
    for f in dataclasses.fields(d0.grid):
        assert _same_bits(getattr(d0.grid, f.name), getattr(d1.grid, f.name)), f.name
    assert json.dumps(d0.as_dict(), default=np.ndarray.tolist) == json.dumps(d1.as_dict(), default=np.ndarray.tolist)


def test_cli_scheduler_address_same_json(cluster, capsys):
    argv = ["mc", "--activation", "relu", "--cw", "2", "--widths", "6,6", "--x", "1,0.5", "--samples", "3000",
            "--seed", "4", "--ntk", "--json"]
    assert main(argv) == 0
    serial = capsys.readouterr().out
    assert main([*argv, "--scheduler", cluster.client.scheduler.address]) == 0
    assert capsys.readouterr().out == serial
    argv = ["criticality", "--activation", "leaky_relu:0.2", "--cb-values", "0.1,0.5", "--json"]
    assert main(argv) == 0
    serial = capsys.readouterr().out
    assert main([*argv, "--scheduler", cluster.client.scheduler.address]) == 0
    assert capsys.readouterr().out == serial and [p["C_b"] for p in json.loads(serial)["points"]] == [0.1, 0.5]


def test_without_the_extra_one_line_exit_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(PerturbError, match=r"pip install 'perturb\[dask\]'"):
        with open_executor(dask_local=2):
            pass
    assert main(["mc", "--activation", "tanh", "--widths", "4", "--x", "1", "--samples", "10",
                 "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "perturb[dask]" in err


def test_executor_choices_are_checked():
    with pytest.raises(PerturbError, match="choose one of"):
        with open_executor(workers=2, dask_local=2):
            pass
    with pytest.raises(PerturbError, match="--dask-local must be an integer in 1..256"):
        with open_executor(dask_local=0):
            pass
    with pytest.raises(PerturbError, match="either workers=2 or an executor"):
        sample_outputs(Network("tanh", widths=(3,)), [1.0], 5, 0, workers=2, executor=Executor.serial())
