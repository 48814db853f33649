"""How far the NTK of a deep network moves under gradient descent, at order 1/n (one input).

Setting (docs/reference.md §5): one training input x, one output z, loss ½(z − y)², NTK
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
from ..montecarlo._executor import Executor
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


def check_target(y) -> float:
    """The training target y as a finite float (clear error otherwise)."""
    try:
        yv = float(y)
    except (TypeError, ValueError):
        raise PerturbError(f"y must be a number, got {y!r}") from None
    if not math.isfinite(yv):
        raise PerturbError(f"y must be finite, got {y!r}")
    return yv


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
    yv = check_target(y)
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


def _activation_derivatives(net: Network, upto: int) -> list:
    """σ, σ', ..., σ^{(upto)} as numpy functions; for kinked σ the almost-everywhere ones (DiracDelta → 0)."""
    f, d = _activation_fns(net)
    out = [f, d]
    for k in range(2, upto + 1):
        expr = net.activation.derivative(k).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
        fn = compile_expr(expr, [Z])
        out.append(lambda z, fn=fn: np.broadcast_to(np.asarray(fn(z), dtype=float), np.shape(z)))
    return out[: upto + 1]


class _Jet:
    """A truncated Taylor polynomial c_0 + c_1 t + ... + c_K t^K of numpy arrays (K <= 2).

    ``None`` stands for a zero coefficient (skipped in products).  Running a numpy computation on
    jets whose parameters are θ + t v gives the computation's derivatives along the fixed
    direction v: exact forward mode of any order K.  K = 0 is the plain computation.
    """

    __slots__ = ("c",)

    def __init__(self, c):
        self.c = list(c)

    @classmethod
    def const(cls, a, K: int) -> _Jet:
        return cls([a] + [None] * K)

    @staticmethod
    def _plus(a, b):
        return b if a is None else (a if b is None else a + b)

    def _conv(self, other: _Jet, op) -> _Jet:
        K = len(self.c) - 1
        out = [None] * (K + 1)
        for i, a in enumerate(self.c):
            if a is None:
                continue
            for j in range(K + 1 - i):
                if other.c[j] is not None:
                    out[i + j] = self._plus(out[i + j], op(a, other.c[j]))
        return _Jet(out)

    def __add__(self, other):
        if isinstance(other, _Jet):
            return _Jet([self._plus(a, b) for a, b in zip(self.c, other.c, strict=True)])
        return _Jet([self.c[0] + other, *self.c[1:]])

    def __mul__(self, other):
        if isinstance(other, _Jet):
            return self._conv(other, np.multiply)
        return _Jet([None if a is None else a * other for a in self.c])

    __rmul__ = __mul__

    def __matmul__(self, other: _Jet) -> _Jet:
        return self._conv(other, np.matmul)

    @property
    def T(self) -> _Jet:
        return _Jet([None if a is None else a.transpose(0, 2, 1) for a in self.c])

    def total(self) -> _Jet:
        """Sum over the neuron axes (1, 2): one number per network."""
        return _Jet([None if a is None else np.sum(a, axis=(1, 2)) for a in self.c])

    def compose(self, derivs: list, k: int) -> _Jet:
        """σ^{(k)} of this jet (Faà di Bruno to order 2; ``derivs[m]`` is σ^{(m)})."""
        u = self.c
        out = [derivs[k](u[0])]
        if len(u) > 1:
            d1 = derivs[k + 1](u[0])
            out.append(None if u[1] is None else d1 * u[1])
        if len(u) > 2:
            c2 = None if u[2] is None else d1 * u[2]
            if u[1] is not None:
                c2 = self._plus(c2, 0.5 * derivs[k + 2](u[0]) * u[1] ** 2)
            out.append(c2)
        if len(u) > 3:  # pragma: no cover
            raise AssertionError("jets are implemented to order 2")
        return _Jet(out)

    def value(self, i: int = 0, like=None):
        """Coefficient ``i`` as an array (zeros shaped like coefficient 0 when it is zero)."""
        a = self.c[i]
        return np.zeros_like(self.c[0] if like is None else like) if a is None else a


def _dntk_pass(params, x: np.ndarray, net: Network, derivs: list):
    """The exact z, Θ, O3 computation of :func:`network_dntk` on jets (see :class:`_Jet`).

    ``params`` is a list of ``(W, b)`` jets.  Returns the jets of z, Θ and O3 (each ``(B,)``
    coefficient arrays) and a function giving the direction g at t = 0 as a list of ``(gW, gb)``
    arrays (formed only when asked: gW is a rank-one n×n block).
    """
    K = len(params[0][0].c) - 1
    B = params[0][0].c[0].shape[0]
    h0 = np.asarray(x, dtype=float).reshape(1, -1, 1)
    # forward
    hs, zs = [_Jet.const(np.broadcast_to(h0, (B, *h0.shape[1:])), K)], []
    for W, b in params:
        z = W @ hs[-1] + b
        zs.append(z)
        hs.append(z.compose(derivs, 0))
    hs = hs[:-1]                       # inputs of each layer: x, σ(z^{(1)}), ..., σ(z^{(L)})
    n_layers = len(params)
    sig1 = [z.compose(derivs, 1) for z in zs[:-1]]
    sig2 = [z.compose(derivs, 2) for z in zs[:-1]]
    # backward: δ^{(ℓ)} = ∂z_out/∂z^{(ℓ)}
    deltas = [None] * n_layers
    deltas[-1] = _Jet.const(np.ones_like(zs[-1].c[0]), K)
    for ell in range(n_layers - 2, -1, -1):
        deltas[ell] = (params[ell + 1][0].T @ deltas[ell + 1]) * sig1[ell]
    lam = [(net.lambda_W[i] / params[i][0].c[0].shape[2], net.lambda_b[i]) for i in range(n_layers)]
    # the direction g: gW^{(ℓ)} = λ_W/n δ hᵀ (rank one: never formed), gb = λ_b δ
    hh = [(h.T @ h) for h in hs]
    dd = [(dl.T @ dl) for dl in deltas]
    # tangent of the forward pass along g: gW h = λ_W/n δ (hᵀh)
    dzs, dhs = [], [_Jet.const(np.zeros_like(hs[0].c[0]), K)]
    for i, (W, _) in enumerate(params):
        lw, lb = lam[i]
        dz = deltas[i] * hh[i] * lw + W @ dhs[i] + deltas[i] * lb
        dzs.append(dz)
        if i + 1 < n_layers:
            dhs.append(sig1[i] * dz)
    # tangent of the backward pass along g
    ddeltas = [None] * n_layers
    ddeltas[-1] = _Jet.const(np.zeros_like(zs[-1].c[0]), K)
    for ell in range(n_layers - 2, -1, -1):
        WnT = params[ell + 1][0].T
        back = WnT @ deltas[ell + 1]
        gWT_delta = hs[ell + 1] * dd[ell + 1] * lam[ell + 1][0]          # gWᵀ δ = λ_W/n h (δᵀδ)
        ddeltas[ell] = ((gWT_delta + WnT @ ddeltas[ell + 1]) * sig1[ell] + back * sig2[ell] * dzs[ell])
    theta = o3 = None
    for i, (lw, lb) in enumerate(lam):
        dsq = _Jet([None if a is None else a[:, 0, 0] for a in dd[i].c])
        hsq = _Jet([None if a is None else a[:, 0, 0] for a in hh[i].c])
        ddsq = (deltas[i] * ddeltas[i]).total() * 2.0
        dhsq = (hs[i] * dhs[i]).total() * 2.0
        t_i = dsq * lb + dsq * hsq * lw
        o_i = ddsq * lb + (ddsq * hsq + dsq * dhsq) * lw
        theta = t_i if theta is None else theta + t_i
        o3 = o_i if o3 is None else o3 + o_i
    zout = _Jet([None if a is None else a[:, 0, 0] for a in zs[-1].c])
    dout = [None if a is None else a[:, 0, 0] for a in dzs[-1].c]
    for a, b in zip(dout, theta.c, strict=True):   # the forward tangent along g is the NTK
        if b is not None and not np.allclose(a, b, rtol=1e-9, atol=1e-12 * (np.max(np.abs(b)) + 1e-300)):
            raise AssertionError("forward tangent along g is not the NTK: derivative bookkeeping error")  # pragma: no cover
    def g0():
        return [(lw * (dl.c[0] @ h.c[0].transpose(0, 2, 1)), lb * dl.c[0])
                for dl, h, (lw, lb) in zip(deltas, hs, lam, strict=True)]

    return zout, theta, o3, g0


def network_dntk(params, x: np.ndarray, net: Network):
    """Exact z, Θ and O3 of a batch of explicit networks at one input (forward-mode along g).

    ``params`` is the laboratory's list of ``(W, b)`` with shapes ``(B, n_ℓ, n_{ℓ−1})``,
    ``(B, n_ℓ, 1)``; ``x`` has shape ``(n0,)``.  With g_μ = λ_μ ∂_μ z, the tangent of the forward
    pass along g gives dz_out = Θ (a built-in check) and the tangent of the backpropagated
    δ^{(ℓ)} gives O3 = d/dt Θ(θ + t g) at t = 0.  Returns ``(z, Θ, O3)``, each ``(B,)``.
    """
    jets = [(_Jet([W]), _Jet([b])) for W, b in params]
    z, theta, o3, _ = _dntk_pass(jets, x, net, _activation_derivatives(net, 2))
    return z.c[0], theta.c[0], o3.c[0]


def sample_dntk(net: Network, x, n_samples: int, seed: int, *, weight_law: str = "gaussian",
                executor: Executor | None = None) -> DNTKSample:
    """z, Θ and O3 of ``n_samples`` random networks at one input (exact derivatives).

    The networks are those of :func:`perturb.montecarlo.sample_outputs` with the same seed and
    input (chunk ``i`` from ``SeedSequence(seed, spawn_key=(i,))``); the chunks run on
    ``executor`` (:func:`perturb.montecarlo.open_executor`; default serial) with the same bits.

    >>> s = sample_dntk(Network("tanh", widths=(8, 8)), [1.0], 100, seed=0)
    >>> s.o3.shape
    (100,)
    """
    return DNTKSample(*_sample_chunks(network_dntk, net, x, n_samples, seed, weight_law, "sample_dntk", executor))


def _one_input(net, x, name: str):
    net = _check_network(net)
    X = _check_inputs(x, "x")
    if X.shape[0] != 1:
        raise PerturbError(f"{name} takes one input vector, got {X.shape[0]} inputs")
    return net, X


class _OnChunk:
    """Picklable task ``i -> fn(params of chunk i, x, net)`` (an executor maps it over chunks)."""

    def __init__(self, fn, net, X, seed, size, n_samples, law):
        self.fn, self.net, self.X, self.seed, self.size, self.n, self.law = fn, net, X, seed, size, n_samples, law

    def __call__(self, i: int):
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(i,)))
        params = _draw_params(rng, self.net, self.X.shape[1], min(self.size, self.n - i * self.size), self.law)
        return self.fn(params, self.X[0], self.net)


def _sample_chunks(fn, net, x, n_samples, seed, weight_law, name: str, executor=None) -> list[np.ndarray]:
    """``fn(params, x, net)`` over the chunks of :func:`perturb.montecarlo.sample_outputs`
    (chunk ``i`` from ``SeedSequence(seed, spawn_key=(i,))``), mapped by ``executor`` (default
    serial), its outputs concatenated."""
    net, X = _one_input(net, x, name)
    n_samples = _check_count(n_samples)
    seed = _check_seed(seed)
    law = _check_law(weight_law)
    size = chunk_size(net, X.shape[1])
    task = _OnChunk(fn, net, X, seed, size, n_samples, law)
    out = (executor or Executor.serial()).map(task, range(-(-n_samples // size)))
    return [np.concatenate(a) for a in zip(*out, strict=True)]


def _gd_batches(net, x, n_networks, batch, seed, name: str):
    """Checked arguments and the batches of a GD measurement: yields ``(size, seed_i, params)``,
    with ``params`` the very draw of ``train_gd(..., seed=seed_i, ensemble=size)``."""
    net, X = _one_input(net, x, name)
    n_networks = _check_count(n_networks, "n_networks")
    batch = _check_count(batch, "batch")
    seed = _check_seed(seed)
    for i in range(-(-n_networks // batch)):
        size = min(batch, n_networks - i * batch)
        rng = np.random.default_rng(np.random.SeedSequence(seed + i))   # train_gd's draw
        yield net, X, size, seed + i, _draw_params(rng, net, X.shape[1], size, "gaussian")


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
            term ½E[(z − y)² gᵀ∇²Θ g], measured; derived at order 1/n as ``eta2_step`` of
            :func:`perturb.dynamics.ntk_run.ntk_run`.
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
    e = _check_eta(eta)
    d1, slope, zo, curv = [], [], [], []
    for cnet, X, size, seed_i, params in _gd_batches(net, x, n_networks, batch, seed, "measure_gd_step"):
        runs = [train_gd(cnet, X, [y], eta=h, steps=1, seed=seed_i, ensemble=size) for h in (e, 2 * e)]
        dth = [r.ntk_final[:, 0, 0] - r.ntk_initial[:, 0, 0] for r in runs]
        z, theta, o3 = network_dntk(params, X[0], cnet)
        if not np.allclose(theta, runs[0].ntk_initial[:, 0, 0], rtol=1e-10):  # pragma: no cover
            raise AssertionError("the networks differ from train_gd's draw")
        d1.append(dth[0])
        slope.append((4 * dth[0] - dth[1]) / (2 * e))
        zo.append((z - y) * o3)
        curv.append((dth[1] - 2 * dth[0]) / (2 * e**2))
    return StepMeasurement(*(moment(np.concatenate(a), 1) for a in (d1, slope, zo, curv)), eta=e, y=float(y),
                           n=n_networks)
