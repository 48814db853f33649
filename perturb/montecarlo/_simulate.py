"""Simulation of real finite-width networks with explicit random weight matrices.

Nothing here uses the theory being tested: every network is drawn as explicit weight matrices
W^{(ℓ)} (shape n_ℓ × n_{ℓ−1}, iid with variance C_W^{(ℓ)}/n_{ℓ−1}) and bias vectors
b^{(ℓ)} ~ N(0, C_b^{(ℓ)}), and the forward pass is z^{(1)} = b^{(1)} + W^{(1)} x,
z^{(ℓ+1)} = b^{(ℓ+1)} + W^{(ℓ+1)} σ(z^{(ℓ)}) (docs/conventions.md).  Only one output neuron is drawn
(the output layer's other neurons are independent of it and irrelevant to its statistics).

Many networks are simulated at once as stacked tensors ``(B, n_out, n_in)``.  The samples are
split into *chunks* whose size depends only on the network and the inputs (about
:data:`CHUNK_BYTES` of parameters per chunk), never on ``n_samples`` or ``workers``; chunk ``i``
draws from ``SeedSequence(seed, spawn_key=(i,))`` (the i-th child of ``SeedSequence(seed)``).
So a run is reproducible bit for bit whatever the number of worker processes, and the
functions below (outputs, Jacobians, NTKs) see the *same networks* for the same seed and inputs.

Random numbers are drawn per chunk in a fixed order: for ℓ = 1..L+1, the standard draws of
W^{(ℓ)} then those of b^{(ℓ)}; they are then scaled.  The same seed therefore gives the same
networks up to scale for every C_W, C_b (common random numbers across a sweep).

``sampler="law"`` (outputs and preactivations only) replaces the weight draws of a chunk by the
exact conditional law of each layer (:mod:`perturb.montecarlo._law`); its chunks are seeded by
index in the same way.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.special as sc

from ..errors import PerturbError
from ..network import Network
from ._executor import Executor
from ._law import law_chunk_size, law_forward

__all__ = [
    "sample_outputs",
    "sample_preactivations",
    "sample_jacobian",
    "sample_ntk",
    "chunk_size",
    "run_sweep",
    "WEIGHT_LAWS",
    "SAMPLERS",
    "CHUNK_BYTES",
    "MAX_RESULT_BYTES",
]

#: parameter memory per chunk (bytes); keeps the working set of one chunk near the CPU caches
CHUNK_BYTES = 32 * 2**20
#: largest working set of one chunk (activations, deltas, NTK blocks)
MAX_WORK_BYTES = 1 * 2**30
#: largest result array returned (bytes); beyond it, ask for fewer samples or several seeds
MAX_RESULT_BYTES = 4 * 2**30


def _gaussian(rng, size, std):
    w = rng.standard_normal(size)
    w *= std
    return w


def _uniform(rng, size, std):
    a = std * math.sqrt(3.0)  # U(−a, a) has variance a²/3
    w = rng.random(size)
    w *= 2 * a
    w -= a
    return w


def _rademacher(rng, size, std):
    return np.where(rng.random(size) < 0.5, -std, std)


#: weight laws, all with mean 0 and variance C_W/n_{ℓ−1} (biases are always Gaussian)
WEIGHT_LAWS: dict[str, Callable] = {"gaussian": _gaussian, "uniform": _uniform, "rademacher": _rademacher}

#: how networks are drawn: explicit weight matrices (the reference), or the exact conditional
#: Gaussian law of each layer's preactivations (:mod:`perturb.montecarlo._law`; forward only)
SAMPLERS: dict[str, str] = {
    "weights": "explicit weight matrices and biases (every statistic; the default and the reference)",
    "law": "the exact law N(0, C_b + C_W h^T h/n) of each layer given the previous one "
           "(outputs and preactivations only; Gaussian weights only)",
}


# --------------------------------------------------------------------------- validation


def _check_network(net) -> Network:
    if not isinstance(net, Network):
        raise PerturbError(f"net must be a perturb.network.Network, got {type(net).__name__}")
    if net.widths is None:
        raise PerturbError("Monte Carlo needs finite hidden widths; this network is infinitely wide")
    if net.activation.is_generic:
        raise PerturbError("the generic activation sigma(z) cannot be simulated; choose a concrete one")
    return net


def _check_inputs(X, name: str = "X") -> np.ndarray:
    try:
        x = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        raise PerturbError(f"{name} must be an array of numbers, got {X!r}") from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise PerturbError(f"{name} must have shape (n0,) or (N, n0) with N, n0 >= 1, got {np.shape(X)}")
    if not np.all(np.isfinite(x)):
        raise PerturbError(f"{name} contains NaN or inf: {X!r}")
    return x


def _check_count(n, name: str = "n_samples") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise PerturbError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PerturbError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_law(law) -> str:
    if law not in WEIGHT_LAWS:
        raise PerturbError(f"unknown weight_law {law!r}; valid: {', '.join(WEIGHT_LAWS)}")
    return law


def _check_sampler(sampler, kind: str, law: str) -> str:
    if sampler not in SAMPLERS:
        raise PerturbError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
    if sampler == "law":
        if kind not in ("outputs", "preactivations"):
            what = {"ntk": "the NTK", "jacobian": "the Jacobian"}.get(kind, kind)
            raise PerturbError(f"sampler 'law' gives forward outputs and preactivations only; {what} "
                               "needs the weights: use sampler 'weights'")
        if law != "gaussian":
            raise PerturbError(f"sampler 'law' is exact for Gaussian weights only, got weight law {law!r}; "
                               "use sampler 'weights'")
    return sampler


def _n_params(net: Network, n0: int) -> int:
    dims = (n0, *net.widths, 1)
    return sum(dims[i + 1] * (dims[i] + 1) for i in range(len(dims) - 1))


def chunk_size(net: Network, n0: int) -> int:
    """Networks per chunk: about :data:`CHUNK_BYTES` of parameters.

    Depends only on the architecture — never on ``n_samples``, ``workers`` or the number of
    inputs — so that results are reproducible whatever the parallelism, and the same seed gives
    the same networks for any set of inputs (outputs at x and x + ε see the same weights).

    >>> chunk_size(Network("relu", widths=(64,) * 10), 1)
    111
    """
    return max(1, CHUNK_BYTES // (8 * _n_params(net, n0)))


# --------------------------------------------------------------------------- activations

_FAST_FORWARD: dict[str, Callable] = {
    "relu": lambda z: np.maximum(z, 0.0),
    "linear": lambda z: z,
    "tanh": np.tanh,
    "erf": sc.erf,
    "sin": np.sin,
    "cos": np.cos,
    "abs": np.abs,
}
_FAST_DERIV: dict[str, Callable] = {
    "relu": lambda z: (z > 0).astype(float),
    "linear": np.ones_like,
    "tanh": lambda z: 1.0 - np.tanh(z) ** 2,
}


def _activation_fns(net: Network):
    name = net.activation.name
    f = _FAST_FORWARD.get(name) or net.activation.numpy(0)
    d = _FAST_DERIV.get(name)
    if d is None:
        comp = net.activation.numpy(1)

        def d(z):
            return np.broadcast_to(np.asarray(comp(z), dtype=float), np.shape(z))

    return f, d


def _finite_or_raise(a: np.ndarray, net: Network, layer: int, what: str) -> None:
    if not np.all(np.isfinite(a)):
        raise PerturbError(
            f"activation '{net.activation.name}' overflowed: non-finite values in {what} at layer "
            f"{layer} (C_W={net.C_W[layer - 1]:g}); use a smaller C_W, fewer layers or a bounded activation"
        )


# --------------------------------------------------------------------------- one chunk


def _iter_params(rng: np.random.Generator, net: Network, n0: int, B: int, law: str):
    """Yield (W, b) layer by layer, drawn in the fixed order W^{(ℓ)}, b^{(ℓ)}, ℓ = 1..L+1."""
    dims = (n0, *net.widths, 1)
    draw = WEIGHT_LAWS[law]
    for ell in range(1, len(dims)):
        n_in, n_out = dims[ell - 1], dims[ell]
        W = draw(rng, (B, n_out, n_in), math.sqrt(net.C_W[ell - 1] / n_in))
        b = rng.standard_normal((B, n_out, 1))
        b *= math.sqrt(net.C_b[ell - 1])
        yield W, b


def _draw_params(rng: np.random.Generator, net: Network, n0: int, B: int, law: str) -> list:
    return list(_iter_params(rng, net, n0, B, law))


def _forward(params, X: np.ndarray, net: Network, f, *, keep: bool):
    """Preactivations z^{(ℓ)} (B, n_ℓ, N); returns (list of z's if keep, list of h's if keep, output)."""
    h = X.T  # (n0, N), broadcast over the batch
    n_layers = len(net.widths) + 1
    zs, hs = [], []
    with np.errstate(over="ignore", invalid="ignore"):
        for ell, (W, b) in enumerate(params, start=1):
            if keep and ell == 1:
                hs.append(np.broadcast_to(h, (W.shape[0], *h.shape)))
            z = np.matmul(W, h)
            z += b
            if ell == n_layers:
                _finite_or_raise(z, net, ell, "the output z")
                return zs + [z] if keep else None, hs, z
            h = f(z)
            _finite_or_raise(h, net, ell, f"σ(z^({ell}))")
            if keep:
                zs.append(z)
                hs.append(h)
    raise AssertionError("unreachable")  # pragma: no cover


def _deltas(params, zs, d):
    """δ^{(ℓ)} = ∂z^{(L+1)}/∂z^{(ℓ)} for ℓ = 1..L+1, shapes (B, n_ℓ, N) (backpropagation)."""
    B, _, N = zs[-1].shape
    delta = np.ones((B, 1, N))
    out = [delta]
    for ell in range(len(params) - 1, 0, -1):  # from layer L down to 1
        W_next = params[ell][0]  # W^{(ℓ+1)}, (B, n_{ℓ+1}, n_ℓ)
        delta = np.matmul(W_next.transpose(0, 2, 1), delta) * d(zs[ell - 1])
        out.append(delta)
    return out[::-1]


def _ntk_from(params, hs, deltas, net: Network, parameterization: str) -> np.ndarray:
    """Θ_ab = Σ_ℓ [λ_b (δᵀδ)_ab + (λ_W/n_{ℓ−1}) (δᵀδ)_ab (hᵀh)_ab]: the exact per-parameter sum.

    For W^{(ℓ)}_ij the gradient at input a is δ_ia h_ja, so Σ_ij ∂_W z_a ∂_W z_b factorises into
    (Σ_i δ_ia δ_ib)(Σ_j h_ja h_jb) — an identity, not an approximation.
    """
    theta = 0.0
    for ell, ((W, _), h, delta) in enumerate(zip(params, hs, deltas, strict=True), start=1):
        n_in = W.shape[2]
        if parameterization == "ntk":
            lam_b, lam_w = net.lambda_b[ell - 1], net.lambda_W[ell - 1] / n_in
        else:  # standard: every parameter trained with rate 1
            lam_b, lam_w = 1.0, 1.0
        dd = np.matmul(delta.transpose(0, 2, 1), delta)
        hh = np.matmul(h.transpose(0, 2, 1), h)
        theta = theta + lam_b * dd + lam_w * dd * hh
    return theta


def _net_spec(net: Network) -> dict:
    return dict(activation=net.activation.name, widths=net.widths, C_W=net.C_W, C_b=net.C_b,
                lambda_W=net.lambda_W, lambda_b=net.lambda_b)


def _run_chunk(task) -> np.ndarray:
    kind, spec, X, seed, index, size, law, extra, sampler = task
    net = Network(**spec)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    f, d = _activation_fns(net)
    if sampler == "law":
        out = law_forward(rng, net, X, size, f, lambda a, ell, what: _finite_or_raise(a, net, ell, what),
                          keep=kind == "preactivations")
        return out if kind == "preactivations" else out[:, 0, :]
    per_input = 8 * size * (sum(net.widths) + 1) * 2
    step = max(1, CHUNK_BYTES // per_input)
    if kind == "outputs" and X.shape[0] <= step:
        # draw and propagate layer by layer: each weight tensor is used while still in cache
        return _forward(_iter_params(rng, net, X.shape[1], size, law), X, net, f, keep=False)[2][:, 0, :]
    params = _draw_params(rng, net, X.shape[1], size, law)
    if kind == "outputs":
        # blocks of inputs keep the activations of one block within about the parameters' size
        return np.concatenate([_forward(params, X[i:i + step], net, f, keep=False)[2][:, 0, :]
                               for i in range(0, X.shape[0], step)], axis=1)
    zs, hs, out = _forward(params, X, net, f, keep=True)
    if kind == "preactivations":
        return zs
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused below, in one line
        deltas = _deltas(params, zs, d)
        if kind == "jacobian":
            W1 = params[0][0]
            res, what = np.matmul(W1.transpose(0, 2, 1), deltas[0])[:, :, 0], "the Jacobian"  # (B, n0), one input
        elif kind == "ntk":
            res, what = _ntk_from(params, hs, deltas, net, extra), "the NTK"
        else:  # pragma: no cover
            raise AssertionError(kind)
    _finite_or_raise(res, net, 1, f"{what} (backward pass)")
    return res


# --------------------------------------------------------------------------- driver


@dataclass
class _Progress:
    total: int
    label: str
    enabled: bool | None
    start: float = 0.0
    shown: bool = False

    def __post_init__(self):
        self.start = time.perf_counter()

    def update(self, done: int) -> None:
        if self.enabled is False:
            return
        elapsed = time.perf_counter() - self.start
        if elapsed < 2.0 or (self.enabled is None and not sys.stderr.isatty()):
            return
        frac = done / self.total
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        eta = elapsed * (1 - frac) / max(frac, 1e-9)
        sys.stderr.write(f"\r{self.label} [{bar}] {done}/{self.total} ({eta:.0f}s left) ")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _pick_executor(workers, executor) -> Executor:
    workers = _check_count(workers, "workers")
    if executor is None:
        return Executor.processes(workers)
    if not isinstance(executor, Executor):
        raise PerturbError(f"executor must be a perturb.montecarlo.Executor, got {type(executor).__name__}")
    if workers != 1:
        raise PerturbError(f"pass either workers={workers} or an executor, not both")
    return executor


def _run(kind: str, net, X, n_samples, seed, *, weight_law="gaussian", chunk=None, workers=1,
         extra=None, progress: bool | None = False, result_bytes_per_sample: int = 0,
         sampler: str = "weights", executor: Executor | None = None):
    net = _check_network(net)
    X = _check_inputs(X)
    n_samples = _check_count(n_samples)
    seed = _check_seed(seed)
    law = _check_law(weight_law)
    sampler = _check_sampler(sampler, kind, law)
    ex = _pick_executor(workers, executor)
    need = n_samples * result_bytes_per_sample
    if need > MAX_RESULT_BYTES:
        raise PerturbError(
            f"{n_samples} samples need {need / 2**30:.1f} GiB for the result (limit "
            f"{MAX_RESULT_BYTES / 2**30:.0f} GiB); use fewer samples, or several runs with different seeds"
        )
    if sampler == "weights":
        fan = [X.shape[1], *net.widths, 1]
        one = 8 * sum(a * b + b for a, b in zip(fan[:-1], fan[1:]))
        if one > MAX_WORK_BYTES:
            raise PerturbError(
                f"one network of widths {','.join(map(str, net.widths))} has {one / 8:.3g} parameters "
                f"({one / 2**30:.3g} GiB), beyond the {MAX_WORK_BYTES / 2**30:.0f} GiB limit per chunk of "
                "explicit weights; use smaller widths, or --sampler law for forward outputs"
            )
    if chunk is not None:
        size = _check_count(chunk, "chunk")
    elif sampler == "law":
        size = law_chunk_size(net, X.shape[0])
    else:
        size = chunk_size(net, X.shape[1])
    if sampler == "law":
        work = 8 * size * X.shape[0] * (3 * (max(net.widths) + 1) + 2 * X.shape[0])
        if kind == "preactivations":
            work += 8 * size * X.shape[0] * sum(net.widths)
        if work > MAX_WORK_BYTES:
            raise PerturbError(
                f"{X.shape[0]} inputs need {work / 2**30:.1f} GiB of working memory per chunk of {size} "
                f"networks; pass a smaller chunk= (e.g. {max(1, int(size * MAX_WORK_BYTES / work))}) or fewer inputs"
            )
    elif kind != "outputs":  # outputs loop over blocks of inputs; the others keep every input at once
        work = 8 * size * X.shape[0] * (4 * (sum(net.widths) + X.shape[1] + 1) + 3 * X.shape[0])
        if work > MAX_WORK_BYTES:
            raise PerturbError(
                f"{X.shape[0]} inputs need {work / 2**30:.1f} GiB of working memory per chunk of {size} "
                f"networks; pass a smaller chunk= (e.g. {max(1, int(size * MAX_WORK_BYTES / work))}) or fewer inputs"
            )
    n_chunks = -(-n_samples // size)
    spec = _net_spec(net)
    tasks = [(kind, spec, X, seed, i, min(size, n_samples - i * size), law, extra, sampler)
             for i in range(n_chunks)]
    bar = _Progress(n_chunks, f"mc {kind}", progress)
    try:
        results = ex.map(_run_chunk, tasks, on_done=bar.update)
    finally:
        bar.close()
    if kind == "preactivations":
        return [np.concatenate([r[ell] for r in results]) for ell in range(len(results[0]))]
    return np.concatenate(results)


def sample_outputs(net: Network, X, n_samples: int, seed: int, *, weight_law: str = "gaussian",
                   chunk: int | None = None, workers: int = 1, progress: bool | None = False,
                   sampler: str = "weights", executor: Executor | None = None) -> np.ndarray:
    """Outputs z^{(L+1)}_1 of ``n_samples`` random networks at each input.

    Args:
        net: a finite-width :class:`~perturb.network.Network`.
        X: inputs, shape ``(N, n0)`` or ``(n0,)`` (then N = 1).
        n_samples: number of independent networks.
        seed: a non-negative integer; the same seed gives the same result bit for bit,
            whatever ``workers``.
        weight_law: ``"gaussian"`` (default), ``"uniform"`` or ``"rademacher"``, all with
            variance C_W/n_{ℓ−1}; biases stay Gaussian N(0, C_b).
        chunk: networks per chunk (default :func:`chunk_size`; changing it changes the streams).
        workers: local processes to use.
        executor: an :class:`~perturb.montecarlo.Executor` to run the chunks on instead (e.g. a
            Dask cluster, :func:`~perturb.montecarlo.open_executor`); same bits as serial.
        progress: ``True`` always shows a progress bar on stderr for runs over ~2 s, ``None``
            only when stderr is a terminal, ``False`` never.
        sampler: ``"weights"`` (default): explicit weight matrices; ``"law"``: each layer's
            preactivations drawn from their exact Gaussian law given the previous layer
            (:mod:`perturb.montecarlo._law`; Gaussian weights only; other random streams, so
            other networks than ``"weights"`` for the same seed, equal in law).

    Returns:
        array of shape ``(n_samples, N)``.

    >>> net = Network("relu", widths=(8, 8), C_W=2.0)
    >>> sample_outputs(net, [1.0, 0.5], 1000, seed=0).shape
    (1000, 1)
    """
    X = _check_inputs(X)
    return _run("outputs", net, X, n_samples, seed, weight_law=weight_law, chunk=chunk, workers=workers,
                progress=progress, result_bytes_per_sample=8 * X.shape[0], sampler=sampler, executor=executor)


def sample_preactivations(net: Network, X, n_samples: int, seed: int, *, weight_law: str = "gaussian",
                          chunk: int | None = None, workers: int = 1,
                          progress: bool | None = False, sampler: str = "weights",
                          executor: Executor | None = None) -> list[np.ndarray]:
    """Preactivations of every layer: a list over ℓ = 1..L+1 of arrays ``(n_samples, n_ℓ, N)``.

    The last entry is the one output neuron (n_{L+1} = 1) and equals :func:`sample_outputs`
    for the same arguments (``sampler`` included).  Meant for small runs (all neurons of all
    layers are kept).

    >>> net = Network("tanh", widths=(4, 3))
    >>> [a.shape for a in sample_preactivations(net, [1.0, -1.0], 10, seed=1)]
    [(10, 4, 1), (10, 3, 1), (10, 1, 1)]
    """
    X = _check_inputs(X)
    net = _check_network(net)
    per = 8 * X.shape[0] * (sum(net.widths) + 1)
    return _run("preactivations", net, X, n_samples, seed, weight_law=weight_law, chunk=chunk,
                workers=workers, progress=progress, result_bytes_per_sample=per, sampler=sampler,
                executor=executor)


def sample_jacobian(net: Network, x, n_samples: int, seed: int, *, weight_law: str = "gaussian",
                    chunk: int | None = None, workers: int = 1, progress: bool | None = False,
                    sampler: str = "weights", executor: Executor | None = None) -> np.ndarray:
    """Input–output Jacobians ∂z^{(L+1)}_1/∂x at one input, by backpropagation.

    Returns an array ``(n_samples, n0)``; the networks are those of :func:`sample_outputs`
    with the same seed and input.  Only ``sampler="weights"``: backpropagation needs the weights.

    >>> net = Network("linear", widths=(5,))
    >>> sample_jacobian(net, [1.0, 2.0, 3.0], 4, seed=0).shape
    (4, 3)
    """
    X = _check_inputs(x, "x")
    if X.shape[0] != 1:
        raise PerturbError(f"sample_jacobian takes one input vector, got {X.shape[0]} inputs")
    return _run("jacobian", net, X, n_samples, seed, weight_law=weight_law, chunk=chunk, workers=workers,
                progress=progress, result_bytes_per_sample=8 * X.shape[1], sampler=sampler, executor=executor)


def sample_ntk(net: Network, X, n_samples: int, seed: int, *, parameterization: str = "ntk",
               weight_law: str = "gaussian", chunk: int | None = None, workers: int = 1,
               progress: bool | None = False, sampler: str = "weights",
               executor: Executor | None = None) -> np.ndarray:
    """Empirical NTK Θ(x_a, x_b) = Σ_p λ_p ∂z/∂p(x_a) ∂z/∂p(x_b) of one output neuron.

    Args:
        parameterization: ``"ntk"``: λ_b = lambda_b^{(ℓ)}, λ_W/n_{ℓ−1} with lambda_W^{(ℓ)} from
            the network (default λ = C, the NTK parameterisation of Jacot and neural-tangents);
            ``"standard"``: every parameter has λ_p = 1.
        sampler: only ``"weights"`` (the NTK needs the weights; ``"law"`` is refused).

    Returns:
        array ``(n_samples, N, N)``, exact per-parameter gradients by backpropagation.

    >>> net = Network("relu", widths=(16, 16), C_W=2.0)
    >>> sample_ntk(net, [[1.0, 0.0], [0.0, 1.0]], 3, seed=0).shape
    (3, 2, 2)
    """
    if parameterization not in ("ntk", "standard"):
        raise PerturbError(f"parameterization must be 'ntk' or 'standard', got {parameterization!r}")
    X = _check_inputs(X)
    return _run("ntk", net, X, n_samples, seed, weight_law=weight_law, chunk=chunk, workers=workers,
                extra=parameterization, progress=progress, result_bytes_per_sample=8 * X.shape[0] ** 2,
                sampler=sampler, executor=executor)


# --------------------------------------------------------------------------- sweeps


def run_sweep(fn: Callable, tasks: Sequence, *, workers: int = 1, map: Callable | None = None,
              executor: Executor | None = None) -> list:
    """Run ``fn(config, seed)`` for every ``(config, seed)`` in ``tasks``; results in order.

    ``executor`` (an :class:`~perturb.montecarlo.Executor`, e.g. a Dask cluster's from
    :func:`~perturb.montecarlo.open_executor`) or ``workers`` local processes run the tasks;
    ``map`` replaces the executor by any ``map(function, iterable) -> iterable``.  ``fn`` must be
    picklable (a module-level function) for process or distributed execution.

    >>> run_sweep(pow, [(2, 3), (3, 2)])
    [8, 9]
    """
    items = list(tasks)
    for t in items:
        if not (isinstance(t, tuple) and len(t) == 2):
            raise PerturbError(f"each task must be a (config, seed) pair, got {t!r}")
    ex = _pick_executor(workers, executor)
    if map is not None:
        return list(map(_Apply(fn), items))
    return ex.map(_Apply(fn), items)


class _Apply:
    """Picklable ``(config, seed) -> fn(config, seed)``."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, task):
        return self.fn(*task)
