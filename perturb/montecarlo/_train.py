"""Gradient-descent training of finite random networks (for the training-dynamics checks).

Full-batch gradient descent on the loss ½ Σ_a (z(x_a) − y_a)² of one output neuron, each
parameter p updated by p ← p − η λ_p ∂L/∂p with the learning-rate factors of docs/conventions.md
(``"ntk"``: λ_b, λ_W/n_{ℓ−1} from the network; ``"standard"``: λ_p = 1).  To first order in η
the outputs then move by −η Θ r, with Θ the empirical NTK of :func:`sample_ntk` — the same
gradients, the same networks for the same seed.

:func:`train_ensemble` trains many networks in chunks seeded by index exactly as the laboratory
draws them (chunk ``i`` from ``SeedSequence(seed, spawn_key=(i,))``, :func:`chunk_size` networks),
so its networks are those of :func:`sample_outputs`/:func:`sample_ntk` for the same seed, and the
chunks can run on any executor (local processes, a Dask cluster) with the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PerturbError
from ..network import Network
from ._executor import Executor
from ._simulate import (
    _activation_fns,
    _check_count,
    _check_inputs,
    _check_law,
    _check_network,
    _check_seed,
    _deltas,
    _draw_params,
    _forward,
    _net_spec,
    _ntk_from,
    _pick_executor,
    chunk_size,
)

__all__ = ["TrainResult", "GDDivergedError", "train_gd", "train_ensemble"]


class GDDivergedError(PerturbError):
    """Gradient descent blew up: raised by :func:`train_gd` with the trajectory up to that step.

    Attributes:
        step: the step ``t`` at which the residual became non-finite or exceeded 1e150.
        outputs: the outputs at steps ``0..t`` (``(t+1, N)``, or ``(ensemble, t+1, N)``), so a
            caller can show the run up to its divergence instead of losing it.
        loss: ½ Σ_a (z_a − y_a)² at steps ``0..t`` (the last entry may be ``inf``).
    """

    def __init__(self, message: str, step: int, outputs: np.ndarray, loss: np.ndarray):
        super().__init__(message)
        self.step, self.outputs, self.loss = step, outputs, loss


@dataclass(frozen=True)
class TrainResult:
    """Trajectory of gradient descent.

    Attributes:
        outputs: network outputs at the training inputs, shape ``(steps+1, N)``
            (``(ensemble, steps+1, N)`` when an ensemble was trained).
        loss: ½ Σ_a (z_a − y_a)² per step, shape ``(steps+1,)`` (or ``(ensemble, steps+1)``).
        ntk_initial, ntk_final: the empirical NTK on the training inputs before the first and
            after the last step, ``(N, N)`` (or ``(ensemble, N, N)``).
        eta, parameterization: what was run.
    """

    outputs: np.ndarray
    loss: np.ndarray
    ntk_initial: np.ndarray
    ntk_final: np.ndarray
    eta: float
    parameterization: str


def _check_train(net, X, Y, eta, steps, seed, parameterization, weight_law):
    net = _check_network(net)
    X = _check_inputs(X)
    try:
        y = np.asarray(Y, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise PerturbError(f"Y must be an array of numbers, got {Y!r}") from None
    if y.shape[0] != X.shape[0]:
        raise PerturbError(f"Y has {y.shape[0]} targets for {X.shape[0]} inputs")
    if not np.all(np.isfinite(y)):
        raise PerturbError("Y contains NaN or inf")
    try:
        eta = float(eta)
    except (TypeError, ValueError):
        raise PerturbError(f"eta must be a number, got {eta!r}") from None
    if not (np.isfinite(eta) and eta > 0):
        raise PerturbError(f"eta must be a finite number > 0, got {eta!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise PerturbError(f"steps must be a non-negative integer, got {steps!r}")
    if parameterization not in ("ntk", "standard"):
        raise PerturbError(f"parameterization must be 'ntk' or 'standard', got {parameterization!r}")
    return net, X, y, eta, int(steps), _check_seed(seed), _check_law(weight_law)


def _train_params(params, net: Network, X: np.ndarray, y: np.ndarray, eta: float, steps: int,
                  parameterization: str, *, squeeze: bool = False):
    """GD on a batch of drawn networks (updated in place): outputs, loss, NTK before and after.

    ``squeeze``: a divergence reports the history of the one network (``train_gd`` without
    ``ensemble``) instead of the batch.
    """
    B = params[0][0].shape[0]
    f, d = _activation_fns(net)
    lam = []
    for ell, (W, _) in enumerate(params, start=1):
        if parameterization == "ntk":
            lam.append((net.lambda_W[ell - 1] / W.shape[2], net.lambda_b[ell - 1]))
        else:
            lam.append((1.0, 1.0))

    outputs = np.empty((B, steps + 1, X.shape[0]))
    ntk_initial = None
    for t in range(steps + 1):
        zs, hs, out = _forward(params, X, net, f, keep=True)
        outputs[:, t, :] = out[:, 0, :]
        deltas = _deltas(params, zs, d)
        if t == 0:
            ntk_initial = _ntk_from(params, hs, deltas, net, parameterization)
        if t == steps:
            ntk_final = _ntk_from(params, hs, deltas, net, parameterization)
            break
        r = out[:, 0, :] - y  # (B, N)
        if not np.all(np.isfinite(r)) or np.max(np.abs(r)) > 1e150:
            hist = outputs[:, :t + 1]
            with np.errstate(over="ignore", invalid="ignore"):
                hist_loss = 0.5 * np.sum((hist - y) ** 2, axis=2)
            if squeeze:
                hist, hist_loss = hist[0], hist_loss[0]
            raise GDDivergedError(f"gradient descent diverged at step {t} (eta={eta:g}); use a smaller eta",
                                  t, hist, hist_loss)
        for (W, b), h, delta, (lw, lb) in zip(params, hs, deltas, lam, strict=True):
            dr = delta * r[:, None, :]  # (B, n_ℓ, N)
            W -= eta * lw * np.matmul(dr, h.transpose(0, 2, 1))
            b -= eta * lb * dr.sum(axis=2, keepdims=True)
    loss = 0.5 * np.sum((outputs - y) ** 2, axis=2)
    return outputs, loss, ntk_initial, ntk_final


def train_gd(net: Network, X, Y, eta: float, steps: int, seed: int, *, parameterization: str = "ntk",
             ensemble: int | None = None, weight_law: str = "gaussian") -> TrainResult:
    """Train random finite networks by full-batch gradient descent and record the trajectory.

    Args:
        net: a finite-width network.
        X: training inputs ``(N, n0)`` (or ``(n0,)``); Y: targets ``(N,)``.
        eta: learning rate (> 0); steps: number of GD steps (>= 0).
        seed: the network draw (``SeedSequence(seed)``; with ``ensemble=None`` one network).
        parameterization: ``"ntk"`` (λ from the network, default λ = C) or ``"standard"``.
        ensemble: train this many independent networks at once (batched); arrays then get a
            leading ensemble axis.

    >>> net = Network("tanh", widths=(32,))
    >>> r = train_gd(net, [[1.0], [-0.5]], [0.3, -0.2], eta=0.5, steps=50, seed=0)
    >>> r.outputs.shape, bool(r.loss[-1] < r.loss[0])
    ((51, 2), True)
    """
    net, X, y, eta, steps, seed, law = _check_train(net, X, Y, eta, steps, seed, parameterization, weight_law)
    if ensemble is not None and (isinstance(ensemble, bool) or not isinstance(ensemble, (int, np.integer))
                                 or ensemble < 1):
        raise PerturbError(f"ensemble must be a positive integer or None, got {ensemble!r}")
    B = 1 if ensemble is None else int(ensemble)

    rng = np.random.default_rng(np.random.SeedSequence(seed))
    params = _draw_params(rng, net, X.shape[1], B, law)
    outputs, loss, ntk_initial, ntk_final = _train_params(params, net, X, y, eta, steps, parameterization,
                                                          squeeze=ensemble is None)
    if ensemble is None:
        return TrainResult(outputs[0], loss[0], ntk_initial[0], ntk_final[0], eta, parameterization)
    return TrainResult(outputs, loss, ntk_initial, ntk_final, eta, parameterization)


def _train_chunk(task):
    spec, X, y, eta, steps, parameterization, seed, index, size, law = task
    net = Network(**spec)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    return _train_params(_draw_params(rng, net, X.shape[1], size, law), net, X, y, eta, steps, parameterization)


def train_ensemble(net: Network, X, Y, eta: float, steps: int, n_networks: int, seed: int, *,
                   parameterization: str = "ntk", weight_law: str = "gaussian", chunk: int | None = None,
                   workers: int = 1, executor: Executor | None = None) -> TrainResult:
    """Train ``n_networks`` random networks by full-batch GD, in chunks on any executor.

    Chunk ``i`` (``chunk`` networks, default :func:`chunk_size`) is drawn from
    ``SeedSequence(seed, spawn_key=(i,))`` as in :func:`sample_ntk`: the ensemble's networks
    are the laboratory's for the same seed (``ntk_initial`` equals :func:`sample_ntk`'s), and
    the result is the same bits whether the chunks run serially, on ``workers`` processes or on
    a Dask cluster (``executor``, see :func:`open_executor`).  A divergence raises
    :class:`GDDivergedError` with the history of the chunk that diverged.

    Returns:
        :class:`TrainResult` with a leading ensemble axis (as ``train_gd(..., ensemble=n)``).

    >>> r = train_ensemble(Network("tanh", widths=(16,)), [[1.0], [-0.5]], [0.3, -0.2], 0.5, 20, 50, seed=0)
    >>> r.outputs.shape, r.ntk_initial.shape
    ((50, 21, 2), (50, 2, 2))
    """
    net, X, y, eta, steps, seed, law = _check_train(net, X, Y, eta, steps, seed, parameterization, weight_law)
    n_networks = _check_count(n_networks, "n_networks")
    ex = _pick_executor(workers, executor)
    size = chunk_size(net, X.shape[1]) if chunk is None else _check_count(chunk, "chunk")
    spec = _net_spec(net)
    tasks = [(spec, X, y, eta, steps, parameterization, seed, i, min(size, n_networks - i * size), law)
             for i in range(-(-n_networks // size))]
    parts = ex.map(_train_chunk, tasks)
    return TrainResult(*(np.concatenate([p[k] for p in parts]) for k in range(4)), eta, parameterization)
