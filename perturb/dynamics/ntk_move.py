"""How far the NTK of a deep network moves under gradient descent, at order 1/n (one input).

Setting (REFERENCE §5): one training input x, one output z, loss ½(z − y)², NTK
parameterisation (λ_μ = the initial variance of parameter μ), GD θ' = θ − η ε g with ε = z − y
and g_μ = λ_μ ∂_μ z.  One step changes the NTK by

    ΔΘ = −η ε O3 + (η²/2) ε² gᵀ(∇²Θ)g + O(η³),        O3 = {Θ, z} = Σ_μ λ_μ ∂_μΘ ∂_μz,

and since E[O3] = 0 (z odd, Θ even under θ_{L+1} → −θ_{L+1}),

    E[ΔΘ] = −η E[z O3] + O(η²),     E[z O3] = (P + 2Q)/n_L  (derived: :mod:`perturb.ntk.dntk`).

This module gives the predictions (:func:`ntk_move`) and the measurement on real networks:
:func:`sample_dntk` returns z, Θ and O3 of explicit random networks, O3 by an exact forward-mode
derivative of the backpropagated NTK along g (for kinked σ the almost-everywhere derivative:
σ'' = 0 off the kinks — see docs/dynamics.md on why E[z O3] is the same at order 1/n).  The
networks are those of :func:`perturb.montecarlo.sample_outputs` for the same seed (same chunks,
same streams).

>>> mv = ntk_move("tanh", [64, 64, 64], [1.0], eta=0.1, C_W=1.0, C_b=0.0)
>>> bool(mv.delta_ntk_step > 0)      # tanh: E[z O3] < 0, the NTK grows
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..activations import Z
from ..compile import compile_expr
from ..errors import PerturbError
from ..montecarlo._estimators import Estimate, moment
from ..montecarlo._simulate import (
    _activation_fns,
    _check_count,
    _check_inputs,
    _check_law,
    _check_network,
    _check_seed,
    _draw_params,
    chunk_size,
)
from ..montecarlo._train import train_gd
from ..network import Network

__all__ = ["DNTKSample", "NTKMove", "StepMeasurement", "measure_gd_step", "network_dntk", "ntk_move",
           "sample_dntk"]


# --------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class NTKMove:
    """Order-1/n predictions for the NTK's motion at one input.

    Attributes:
        ntk_mean: E Θ at initialisation (H + H1/n_L).
        ntk_var: Var Θ at initialisation ((A + 2B)/n_L).
        dntk_z: E[z O3] = (P + 2Q)/n_L.
        delta_ntk_step: E[Θ after one GD step − Θ before] to first order in η: −η E[z O3]
            (independent of the target y, since E[O3] = 0).
        relative_step: delta_ntk_step / ntk_mean.
        eta, y: the step and target used.
        P, Q: the output layer's dNTK statistics.
    """

    ntk_mean: float
    ntk_var: float
    dntk_z: float
    delta_ntk_step: float
    relative_step: float
    eta: float
    y: float
    P: float
    Q: float

    def as_dict(self) -> dict:
        return {"ntk_mean": self.ntk_mean, "ntk_var": self.ntk_var, "dntk_z": self.dntk_z,
                "delta_ntk_step": self.delta_ntk_step, "relative_step": self.relative_step,
                "eta": self.eta, "y": self.y, "P": self.P, "Q": self.Q}


def _check_eta(eta) -> float:
    try:
        e = float(eta)
    except (TypeError, ValueError):
        raise PerturbError(f"eta must be a number > 0, got {eta!r}") from None
    if not (math.isfinite(e) and e > 0):
        raise PerturbError(f"eta must be a finite number > 0, got {eta!r}")
    return e


def ntk_move(activation, widths: Sequence[int], x, *, eta: float, y: float = 0.0, C_W=1.0, C_b=0.0,
             lambda_W=None, lambda_b=None) -> NTKMove:
    """Order-1/n predictions for how far one GD step moves the NTK (see the module docstring).

    Args:
        activation: activation spec; widths: hidden widths n_1..n_L; x: the input vector.
        eta: learning rate (> 0); y: the target (the first-order change does not depend on it).
        C_W, C_b, lambda_W, lambda_b: as in :func:`perturb.ntk.chain.ntk_statistics`.

    >>> mv = ntk_move("relu", [100, 100], [1.0], eta=0.1, C_W=2.0)
    >>> round(mv.dntk_z * 100, 9), round(mv.delta_ntk_step, 9)
    (128.0, -0.128)
    """
    from ..ntk.dntk import dntk_statistics

    e = _check_eta(eta)
    try:
        yv = float(y)
    except (TypeError, ValueError):
        raise PerturbError(f"y must be a number, got {y!r}") from None
    if not math.isfinite(yv):
        raise PerturbError(f"y must be finite, got {y!r}")
    st = dntk_statistics(activation, widths, x, C_W=C_W, C_b=C_b, lambda_W=lambda_W, lambda_b=lambda_b)
    zo = float(st.z_dntk)
    mean = float(st.ntk.mean)
    step = -e * zo
    return NTKMove(mean, float(st.ntk.var), zo, step, step / mean, e, yv,
                   float(st.layers["P"][-1]), float(st.layers["Q"][-1]))


# --------------------------------------------------------------------------- real networks


@dataclass(frozen=True)
class DNTKSample:
    """z, Θ and O3 = {Θ, z} of ``n`` random networks at one input (arrays of shape ``(n,)``)."""

    z: np.ndarray
    ntk: np.ndarray
    o3: np.ndarray


def _second_derivative(net: Network):
    """σ'' as a numpy function; for kinked σ the almost-everywhere one (DiracDelta → 0)."""
    expr = net.activation.derivative(2).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
    fn = compile_expr(expr, [Z])
    return lambda z: np.broadcast_to(np.asarray(fn(z), dtype=float), np.shape(z))


def network_dntk(params, x: np.ndarray, net: Network):
    """Exact z, Θ and O3 of a batch of explicit networks at one input (forward-mode along g).

    ``params`` is the laboratory's list of ``(W, b)`` with shapes ``(B, n_ℓ, n_{ℓ−1})``,
    ``(B, n_ℓ, 1)``; ``x`` has shape ``(n0,)``.  With g_μ = λ_μ ∂_μ z, the tangent of the forward
    pass along g gives dz_out = Θ (a built-in check) and the tangent of the backpropagated
    δ^{(ℓ)} gives O3 = d/dt Θ(θ + t g) at t = 0.  Returns ``(z, Θ, O3)``, each ``(B,)``.
    """
    f, d = _activation_fns(net)
    dd = _second_derivative(net)
    h0 = np.asarray(x, dtype=float).reshape(1, -1, 1)
    # forward
    hs, zs = [np.broadcast_to(h0, (params[0][0].shape[0], *h0.shape[1:]))], []
    for W, b in params:
        z = W @ hs[-1] + b
        zs.append(z)
        hs.append(f(z))
    hs = hs[:-1]                       # inputs of each layer: x, σ(z^{(1)}), ..., σ(z^{(L)})
    n_layers = len(params)
    # backward: δ^{(ℓ)} = ∂z_out/∂z^{(ℓ)}
    deltas = [None] * n_layers
    deltas[-1] = np.ones_like(zs[-1])
    for ell in range(n_layers - 2, -1, -1):
        deltas[ell] = (params[ell + 1][0].transpose(0, 2, 1) @ deltas[ell + 1]) * d(zs[ell])
    lam = [(net.lambda_W[i] / params[i][0].shape[2], net.lambda_b[i]) for i in range(n_layers)]
    # the direction g: gW^{(ℓ)} = λ_W/n δ hᵀ, gb = λ_b δ
    gW = [lw * (deltas[i] @ hs[i].transpose(0, 2, 1)) for i, (lw, _) in enumerate(lam)]
    gb = [lb * deltas[i] for i, (_, lb) in enumerate(lam)]
    # tangent of the forward pass
    dzs, dhs = [], [np.zeros_like(hs[0])]
    for i, (W, _) in enumerate(params):
        dz = gW[i] @ hs[i] + W @ dhs[i] + gb[i]
        dzs.append(dz)
        if i + 1 < n_layers:
            dhs.append(d(zs[i]) * dz)
    # tangent of the backward pass
    ddeltas = [None] * n_layers
    ddeltas[-1] = np.zeros_like(zs[-1])
    for ell in range(n_layers - 2, -1, -1):
        Wn = params[ell + 1][0]
        back = Wn.transpose(0, 2, 1) @ deltas[ell + 1]
        ddeltas[ell] = ((gW[ell + 1].transpose(0, 2, 1) @ deltas[ell + 1] + Wn.transpose(0, 2, 1) @ ddeltas[ell + 1])
                        * d(zs[ell]) + back * dd(zs[ell]) * dzs[ell])
    theta = np.zeros(zs[-1].shape[0])
    o3 = np.zeros_like(theta)
    for i, (lw, lb) in enumerate(lam):
        dsq = np.sum(deltas[i] ** 2, axis=(1, 2))
        hsq = np.sum(hs[i] ** 2, axis=(1, 2))
        ddsq = 2 * np.sum(deltas[i] * ddeltas[i], axis=(1, 2))
        dhsq = 2 * np.sum(hs[i] * dhs[i], axis=(1, 2))
        theta += lb * dsq + lw * dsq * hsq
        o3 += lb * ddsq + lw * (ddsq * hsq + dsq * dhsq)
    if not np.allclose(dzs[-1][:, 0, 0], theta, rtol=1e-9, atol=1e-300):  # pragma: no cover
        raise AssertionError("forward tangent along g is not the NTK: derivative bookkeeping error")
    return zs[-1][:, 0, 0], theta, o3


def sample_dntk(net: Network, x, n_samples: int, seed: int, *, weight_law: str = "gaussian") -> DNTKSample:
    """z, Θ and O3 of ``n_samples`` random networks at one input (exact derivatives).

    The networks are those of :func:`perturb.montecarlo.sample_outputs` with the same seed and
    input (chunk ``i`` from ``SeedSequence(seed, spawn_key=(i,))``).

    >>> s = sample_dntk(Network("tanh", widths=(8, 8)), [1.0], 100, seed=0)
    >>> s.o3.shape
    (100,)
    """
    net = _check_network(net)
    X = _check_inputs(x, "x")
    if X.shape[0] != 1:
        raise PerturbError(f"sample_dntk takes one input vector, got {X.shape[0]} inputs")
    n_samples = _check_count(n_samples)
    seed = _check_seed(seed)
    law = _check_law(weight_law)
    size = chunk_size(net, X.shape[1])
    out = []
    for i in range(-(-n_samples // size)):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
        params = _draw_params(rng, net, X.shape[1], min(size, n_samples - i * size), law)
        out.append(network_dntk(params, X[0], net))
    z, theta, o3 = (np.concatenate(a) for a in zip(*out, strict=True))
    return DNTKSample(z, theta, o3)


# --------------------------------------------------------------------------- one GD step, measured


@dataclass(frozen=True)
class StepMeasurement:
    """One GD step of real networks, measured (every entry an :class:`~perturb.montecarlo.Estimate`).

    Attributes:
        delta_ntk: E[Θ after one step − Θ before] at learning rate ``eta``.
        slope: the first-order coefficient d E[ΔΘ]/dη at η → 0, by Richardson extrapolation on
            the same networks: (4 D(η) − D(2η))/(2η), error O(η²).
        dntk_z: E[(z − y) O3] of the same networks (exact O3; for kinked σ the a.e. one):
            for smooth σ, ``slope`` estimates −``dntk_z``.
        eta2: the O(η²) coefficient of E[ΔΘ], (D(2η) − 2D(η))/(2η²) (error O(η)): the ddNTK
            term ½E[(z − y)² gᵀ∇²Θ g], measured (it is not derived).
        eta, y: what was run; n: networks.
    """

    delta_ntk: Estimate
    slope: Estimate
    dntk_z: Estimate
    eta2: Estimate
    eta: float
    y: float
    n: int


def measure_gd_step(net: Network, x, y: float, eta: float, n_networks: int, seed: int, *,
                    batch: int = 2000) -> StepMeasurement:
    """Train ``n_networks`` random networks one GD step with :func:`perturb.montecarlo.train_gd`.

    Networks are trained in batches of ``batch`` (batch ``i`` is ``train_gd(..., seed=seed + i,
    ensemble=...)``) at η and 2η (the same networks), and O3 is computed on the very same
    parameter draws.

    >>> m = measure_gd_step(Network("tanh", widths=(16, 16)), [1.0], 0.0, 0.05, 400, seed=0, batch=200)
    >>> m.delta_ntk.n
    400
    """
    net = _check_network(net)
    X = _check_inputs(x, "x")
    if X.shape[0] != 1:
        raise PerturbError(f"measure_gd_step takes one input vector, got {X.shape[0]} inputs")
    e = _check_eta(eta)
    n_networks = _check_count(n_networks, "n_networks")
    batch = _check_count(batch, "batch")
    seed = _check_seed(seed)
    d1, slope, zo, curv = [], [], [], []
    for i in range(-(-n_networks // batch)):
        size = min(batch, n_networks - i * batch)
        runs = [train_gd(net, X, [y], eta=h, steps=1, seed=seed + i, ensemble=size) for h in (e, 2 * e)]
        dth = [r.ntk_final[:, 0, 0] - r.ntk_initial[:, 0, 0] for r in runs]
        rng = np.random.default_rng(np.random.SeedSequence(seed + i))   # train_gd's draw
        z, theta, o3 = network_dntk(_draw_params(rng, net, X.shape[1], size, "gaussian"), X[0], net)
        if not np.allclose(theta, runs[0].ntk_initial[:, 0, 0], rtol=1e-10):  # pragma: no cover
            raise AssertionError("the networks differ from train_gd's draw")
        d1.append(dth[0])
        slope.append((4 * dth[0] - dth[1]) / (2 * e))
        zo.append((z - y) * o3)
        curv.append((dth[1] - 2 * dth[0]) / (2 * e**2))
    return StepMeasurement(*(moment(np.concatenate(a), 1) for a in (d1, slope, zo, curv)), eta=e, y=float(y),
                           n=n_networks)
