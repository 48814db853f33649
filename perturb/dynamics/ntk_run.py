"""The NTK over a whole gradient-descent run at order 1/n (one input): measurement and predictions.

Setting as in :mod:`perturb.dynamics.ntk_move` (docs/reference.md §5): one training input x, one output
z, loss ½(z − y)², NTK parameterisation (λ_μ = initial variance of θ_μ, g_μ = λ_μ ∂_μ z), GD
θ' = θ − η ε g with ε = z − y, bracket {A, B} = Σ_μ λ_μ ∂_μA ∂_μB.  Besides Θ = {z, z} and
O3 = {Θ, z} the run needs

    O4 = {O3, z},     {Θ, Θ},     G = gᵀ(∇²Θ)g = d²/dt² Θ(θ + t g)|₀  (g frozen),

related by G = O4 − ½{Θ, Θ} (because (∇g)g = ½ λ∇Θ).  All are O(1/n).

**Real networks** (:func:`network_ddntk`, :func:`sample_ddntk`): the z, Θ, O3 computation of
:func:`~perturb.dynamics.ntk_move.network_dntk` (itself forward mode along the moving g) is run
on second-order Taylor jets along the fixed direction g₀ = g(θ₀): Θ(θ₀ + t g₀) = Θ + O3 t + ½G t²
and O3(θ₀ + t g₀) = O3 + O4 t, exactly (no finite differences); {Θ, Θ} = 2(O4 − G).  For kinked
σ (ReLU) the almost-everywhere derivatives are used (σ'' = σ''' = σ'''' = 0 off the kink), as
for O3: those are what backprop/autodiff gives, not the distributional ones.

**Per network** (:func:`hierarchy_prediction`): the truncated hierarchy with O4 and G frozen and
ε_s = (1 − ηΘ₀)^s ε₀ at leading order gives after T steps

    ΔΘ_T = −η O3 S1 + η² O4 S2 + (η²/2) G S3,
    S1 = Σ_{s<T} ε_s,  S3 = Σ_{s<T} ε_s²,  S2 = Σ_{s<T} ε_s Σ_{r<s} ε_r = (S1² − S3)/2,

closed geometric sums; to convergence (0 < ηΘ₀ < 2)

    ΔΘ_∞ = −O3 ε₀/Θ₀ + O4 ε₀²/(2Θ₀²) − η {Θ,Θ} ε₀² / (4Θ₀(2 − ηΘ₀)).

:func:`measure_gd_run` trains real networks with :func:`perturb.montecarlo.train_gd` and holds
the actual Θ_T − Θ_0 against this, network by network.

**Expected, order 1/n** (:func:`ntk_run`): at this order only the means E[z O3], E[O4],
E[{Θ,Θ}] enter (E[O4 z²] = E[O4] K + O(n⁻²), the Θ₀-dependence of the sums only at O(n⁻²)), so
with Θ̄, K the infinite-width NTK and kernel

    E[ΔΘ_T] = −η E[zO3] s1(Θ̄) + (K + y²)[η² E[O4] s2(Θ̄) + (η²/2) E[G] s3(Θ̄)],

with s_i the sums per unit ε₀.  One step: E[ΔΘ_1] = −η E[zO3] + (η²/2)(K + y²)(E[O4] − ½E[{Θ,Θ}]).
E[zO3] comes from :mod:`perturb.ntk.dntk`, E[O4] and E[{Θ,Θ}] from :mod:`perturb.ntk.ddntk`.

>>> from perturb.network import Network
>>> s = sample_ddntk(Network("tanh", widths=(8, 8)), [1.0], 50, seed=0)
>>> bool(np.allclose(s.theta_theta, 2 * (s.o4 - s.g)))
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import PerturbError
from ..montecarlo._estimators import Estimate, moment
from ..montecarlo._train import train_gd
from ..montecarlo._verdict import _num as _array
from ..network import Network
from .ntk_move import (
    _activation_derivatives,
    _check_eta,
    _dntk_pass,
    _gd_batches,
    _Jet,
    _sample_chunks,
)

__all__ = ["DDNTKSample", "HierarchyPrediction", "NTKRun", "RunMeasurement", "geometric_sums",
           "hierarchy_prediction", "measure_gd_run", "network_ddntk", "ntk_run", "sample_ddntk"]


# --------------------------------------------------------------------------- real networks


@dataclass(frozen=True)
class DDNTKSample:
    """z, Θ, O3, O4, G and {Θ, Θ} of ``n`` random networks at one input (arrays ``(n,)``)."""

    z: np.ndarray
    ntk: np.ndarray
    o3: np.ndarray
    o4: np.ndarray
    g: np.ndarray
    theta_theta: np.ndarray


def _directional_jets(params, x, net: Network, direction, derivs):
    """z, Θ, O3 as order-2 jets along θ + t·direction (``direction`` a list of (dW, db))."""
    jets = [(_Jet([W, dW, None]), _Jet([b, db, None])) for (W, b), (dW, db) in zip(params, direction, strict=True)]
    return _dntk_pass(jets, x, net, derivs)[:3]


def network_ddntk(params, x: np.ndarray, net: Network):
    """Exact z, Θ, O3, O4, G, {Θ,Θ} of a batch of explicit networks at one input.

    ``params`` as in :func:`~perturb.dynamics.ntk_move.network_dntk`.  One plain pass gives the
    direction g₀; a second pass on order-2 jets along θ₀ + t g₀ gives Θ's Taylor coefficients
    (Θ, O3, G/2) and O3's (O3, O4).  Built-in checks: the jet's first coefficient of Θ equals
    the O3 of the plain pass.  Returns six ``(B,)`` arrays.
    """
    derivs = _activation_derivatives(net, 4)
    plain = [(_Jet([W]), _Jet([b])) for W, b in params]
    z, theta, o3, direction = _dntk_pass(plain, x, net, derivs[:3])
    direction = direction()
    _, th_j, o3_j = _directional_jets(params, x, net, direction, derivs)
    o3v = o3.c[0]
    if not np.allclose(th_j.value(1, o3v), o3v, rtol=1e-8, atol=1e-10 * (np.max(np.abs(o3v)) + 1e-300)):
        raise AssertionError("dΘ/dt along g is not O3: derivative bookkeeping error")  # pragma: no cover
    o4 = o3_j.value(1, o3v)
    g = 2.0 * th_j.value(2, o3v)
    return z.c[0], theta.c[0], o3v, o4, g, 2.0 * (o4 - g)


def sample_ddntk(net: Network, x, n_samples: int, seed: int, *, weight_law: str = "gaussian",
                 executor=None) -> DDNTKSample:
    """z, Θ, O3, O4, G, {Θ,Θ} of ``n_samples`` random networks at one input (exact derivatives).

    The networks are those of :func:`~perturb.dynamics.ntk_move.sample_dntk` (and of
    :func:`perturb.montecarlo.sample_outputs`) for the same seed and input; the chunks run on
    ``executor`` (a :class:`perturb.montecarlo.Executor`; default serial) with the same bits.

    >>> s = sample_ddntk(Network("tanh", widths=(8, 8)), [1.0], 100, seed=0)
    >>> s.o4.shape
    (100,)
    """
    return DDNTKSample(*_sample_chunks(network_ddntk, net, x, n_samples, seed, weight_law, "sample_ddntk",
                                       executor))


# --------------------------------------------------------------------------- the truncated hierarchy


def _check_steps(steps, allow_none: bool = True):
    if steps is None and allow_none:
        return None
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        valid = "a non-negative integer or None (to convergence)" if allow_none else "a non-negative integer"
        raise PerturbError(f"steps must be {valid}, got {steps!r}")
    return int(steps)


def geometric_sums(u, steps: int | None):
    """The sums per unit ε₀ of the truncated hierarchy, with ε_s = (1 − u)^s ε₀ and u = ηΘ₀.

    Returns ``(s1, s2, s3)``: s1 = Σ_{s<T} q^s, s3 = Σ_{s<T} q^{2s}, s2 = Σ_{s<T} q^s Σ_{r<s} q^r
    = (s1² − s3)/2, q = 1 − u; ``steps=None`` is T → ∞ (needs 0 < u < 2).  Evaluated without
    cancellation near u → 0 and u → 2 (expm1/log1p).

    >>> tuple(round(float(v), 6) for v in geometric_sums(0.5, None))      # 1/u, (s1² − s3)/2, 1/(u(2 − u))
    (2.0, 1.333333, 1.333333)
    """
    u = np.asarray(u, dtype=float)
    if steps is None:
        if not np.all((u > 0) & (u < 2)):
            raise PerturbError(_no_convergence(u))
        s1 = 1.0 / u
        s3 = 1.0 / (u * (2.0 - u))
    else:
        T = _check_steps(steps, allow_none=False)
        if T == 0:
            z = np.zeros_like(u)
            return z[()], z[()], z[()]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_q = np.where(u < 1, np.log1p(-np.minimum(u, 1)), np.log1p(np.maximum(u, 1) - 2))  # log|q|
            qT = np.where(u <= 1, 1.0, (-1.0) ** T) * np.exp(T * log_q)               # q^T
            one_qT = np.where(u < 1, -np.expm1(T * log_q), 1.0 - qT)                   # 1 − q^T
            s1 = np.where(u == 0, float(T), one_qT / np.where(u == 0, 1.0, u))
            one_r = u * (2.0 - u)                                                     # 1 − q²
            s3 = np.where(one_r == 0, float(T), -np.expm1(2 * T * log_q) / np.where(one_r == 0, 1.0, one_r))
    s2 = (s1 * s1 - s3) / 2.0
    return s1[()], s2[()], s3[()]


def _no_convergence(u) -> str:
    u = np.atleast_1d(u)
    bad = u[~((u > 0) & (u < 2))]
    worst = float(bad[np.argmax(np.abs(bad - 1))])
    where = f" for {bad.size} of {u.size} networks (worst)" if u.size > 1 else ""
    return (f"the run does not converge: η Θ = {worst:.6g}{where}; gradient descent on one sample converges "
            "only for 0 < η Θ < 2: use a smaller eta (or a finite number of steps)")


@dataclass(frozen=True)
class HierarchyPrediction:
    """Per-network Θ_T − Θ_0 from the truncated hierarchy and its three terms (arrays)."""

    delta_ntk: np.ndarray
    o3_term: np.ndarray
    o4_term: np.ndarray
    g_term: np.ndarray


def hierarchy_prediction(z, ntk, o3, o4, g, y, eta, steps: int | None = None) -> HierarchyPrediction:
    """Θ_T − Θ_0 of each network from the truncated hierarchy (O4 and G frozen; see the module).

    Args:
        z, ntk, o3, o4, g: per-network initial values (arrays of one shape, or numbers), e.g.
            from :func:`sample_ddntk`.
        y: the target; eta: the learning rate (> 0).
        steps: T GD steps, or ``None`` for the converged run (needs 0 < η Θ₀ < 2 everywhere).

    >>> p = hierarchy_prediction(0.5, 1.0, -0.01, 0.02, 0.03, 0.0, 0.5)
    >>> round(float(p.delta_ntk), 12)          # 0.005 + 0.0025 − 0.5·(−0.02)(0.25)/(4·1.5)
    0.007916666667
    """
    z, ntk, o3, o4, g = (_array(a, name) for a, name in ((z, "z"), (ntk, "ntk"), (o3, "o3"), (o4, "o4"), (g, "g")))
    yv = float(_array(y, "y"))
    e = _check_eta(eta)
    steps = _check_steps(steps)
    if np.any(ntk <= 0):
        raise PerturbError(f"ntk must be > 0 (an NTK), got {float(np.min(ntk)):.6g}")
    try:
        z, ntk, o3, o4, g = np.broadcast_arrays(z, ntk, o3, o4, g)
    except ValueError:
        raise PerturbError("z, ntk, o3, o4, g must have one shape") from None
    s1, s2, s3 = geometric_sums(e * ntk, steps)
    eps = z - yv
    t3 = -e * o3 * eps * s1
    t4 = e**2 * o4 * eps**2 * s2
    tg = 0.5 * e**2 * g * eps**2 * s3
    return HierarchyPrediction(t3 + t4 + tg, t3, t4, tg)


@dataclass(frozen=True)
class RunMeasurement:
    """A GD run of real networks against the per-network hierarchy (each an :class:`Estimate`).

    Attributes:
        delta_ntk: E[Θ_T − Θ_0], measured (``train_gd``).
        predicted: E of the per-network prediction of :func:`hierarchy_prediction`.
        difference: E[actual − predicted], paired network by network.
        first_order: E of the O3 term alone (−η O3 S1), the prediction without O4 and G.
        first_order_difference: E[actual − O3 term], paired.
        eta, y, steps, n: what was run; max_final_loss: the largest final loss (convergence).
    """

    delta_ntk: Estimate
    predicted: Estimate
    difference: Estimate
    first_order: Estimate
    first_order_difference: Estimate
    eta: float
    y: float
    steps: int
    n: int
    max_final_loss: float


def measure_gd_run(net: Network, x, y: float, eta: float, steps: int, n_networks: int, seed: int, *,
                   batch: int = 2000) -> RunMeasurement:
    """Train ``n_networks`` random networks ``steps`` GD steps and compare with the hierarchy.

    Batch ``i`` is ``train_gd(net, x, [y], eta, steps, seed=seed + i, ensemble=...)``; O3, O4
    and G are computed exactly on the very same parameter draws (as in
    :func:`~perturb.dynamics.ntk_move.measure_gd_step`).

    >>> m = measure_gd_run(Network("tanh", widths=(16, 16)), [1.0], 1.0, 1.0, 10, 200, seed=0, batch=100)
    >>> m.difference.n
    200
    """
    e = _check_eta(eta)
    yv = float(_array(y, "y"))
    T = _check_steps(steps, allow_none=False)
    if T < 1:
        raise PerturbError(f"steps must be >= 1 for a measured run, got {steps!r}")
    cols, loss = [], 0.0
    for cnet, X, size, seed_i, params in _gd_batches(net, x, n_networks, batch, seed, "measure_gd_run"):
        run = train_gd(cnet, X, [yv], eta=e, steps=T, seed=seed_i, ensemble=size)
        z, theta, o3, o4, g, _ = network_ddntk(params, X[0], cnet)
        if not np.allclose(theta, run.ntk_initial[:, 0, 0], rtol=1e-10):  # pragma: no cover
            raise AssertionError("the networks differ from train_gd's draw")
        actual = run.ntk_final[:, 0, 0] - theta
        pred = hierarchy_prediction(z, theta, o3, o4, g, yv, e, T)
        cols.append(np.stack([actual, pred.delta_ntk, actual - pred.delta_ntk, pred.o3_term, actual - pred.o3_term]))
        loss = max(loss, float(np.max(run.loss[:, -1])))
    data = np.concatenate(cols, axis=1)
    return RunMeasurement(*(moment(row, 1) for row in data), eta=e, y=yv, steps=T, n=n_networks,
                          max_final_loss=loss)


# --------------------------------------------------------------------------- order-1/n expectation


@dataclass(frozen=True)
class NTKRun:
    """Order-1/n predictions for the mean NTK over a GD run at one input.

    Attributes:
        delta_ntk: E[Θ_T − Θ_0] after ``steps`` steps (``steps=None``: at convergence).
        eta1_step, eta2_step: one step E[ΔΘ_1] = eta1_step·η + eta2_step·η² + O(η³):
            eta1_step = −E[zO3], eta2_step = ½(K + y²)(E[O4] − ½E[{Θ,Θ}]).
        o3_term, o4_term, g_term: the three terms of delta_ntk (−η E[zO3] s1, η²(K+y²)E[O4] s2,
            (η²/2)(K+y²)E[G] s3).
        ntk_inf, K: the infinite-width NTK Θ̄ and kernel K at the output.
        dntk_z, o4, theta_theta, g: E[zO3], E[O4], E[{Θ,Θ}], E[G] = E[O4] − ½E[{Θ,Θ}].
        eta, y, steps: what was asked.
    """

    delta_ntk: float
    eta1_step: float
    eta2_step: float
    o3_term: float
    o4_term: float
    g_term: float
    ntk_inf: float
    K: float
    dntk_z: float
    o4: float
    theta_theta: float
    g: float
    eta: float
    y: float
    steps: int | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def after(self, steps: int | None) -> NTKRun:
        """The same network and step after ``steps`` steps (``None``: at convergence)."""
        return _assemble(self.ntk_inf, self.K, self.dntk_z, self.o4, self.theta_theta, self.eta, self.y,
                         _check_steps(steps))


def ntk_run(activation, widths: Sequence[int], x, *, eta: float, y: float = 0.0, steps: int | None = None,
            C_W=1.0, C_b=0.0, lambda_W=None, lambda_b=None) -> NTKRun:
    """E[Θ_T − Θ_0] of a GD run at order 1/n (see the module docstring).

    Args:
        activation, widths, x, C_W, C_b, lambda_W, lambda_b: as in :func:`~perturb.dynamics.ntk_move.ntk_move`.
        eta: learning rate (> 0); y: the target.
        steps: T, or ``None`` for the converged run (needs 0 < η Θ̄ < 2).
    """
    from ..ntk.ddntk import ddntk_statistics

    e = _check_eta(eta)
    yv = float(_array(y, "y"))
    T = _check_steps(steps)
    # one fold: the ddNTK statistics carry the dNTK and NTK statistics they were built on
    dd = ddntk_statistics(activation, widths, x, C_W=C_W, C_b=C_b, lambda_W=lambda_W, lambda_b=lambda_b)
    st = dd.dntk
    H, K, zo = float(st.ntk.H), float(st.ntk.K), float(st.z_dntk)
    if T is None and not 0 < e * H < 2:
        raise PerturbError(_no_convergence(e * H))
    return _assemble(H, K, zo, float(dd.o4), float(dd.tt), e, yv, T)


def _assemble(H, K, zo, o4, tt, e, yv, T) -> NTKRun:
    g = o4 - tt / 2
    s1, s2, s3 = (float(v) for v in geometric_sums(e * H, T))
    w = K + yv**2
    t3, t4, tg = -e * zo * s1, e**2 * w * o4 * s2, 0.5 * e**2 * w * g * s3
    out = NTKRun(t3 + t4 + tg, -zo, 0.5 * w * g, t3, t4, tg, H, K, zo, o4, tt, g, e, yv, T)
    bad = [k for k, v in out.as_dict().items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise PerturbError(f"ntk_run: {', '.join(bad)} not finite for these parameters")
    return out
