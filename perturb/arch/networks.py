"""Random conv/pool/residual networks of finite width in numpy: outputs and NTKs by backprop.

The Monte Carlo counterpart of :mod:`.fold`.  Every dense/conv layer has ``n`` output channels
(the readout 1; a residual block's last layer as many as the block's input), parameters
``θ ~ N(0, 1)`` in the NTK parameterisation::

    z(p) = √C_b β + √(C_W / fan_in) Σ_{d ∈ F, c} θ_{d c k} h(p + d, c),   fan_in = |F| · channels

so the empirical NTK ``Θ̂(x, x') = Σ_θ ∂f(x)/∂θ ∂f(x')/∂θ`` is computed exactly from the
backward pass: per layer ``Θ̂ += (C_W/fan_in) ⟨patches(h)ᵀδ, patches(h')ᵀδ'⟩ + C_b ⟨Σ_p δ, Σ_p δ'⟩``
with ``δ = ∂f/∂z``.  Batches of independent networks are vectorised along a leading axis.

When every activation acts on exactly Gaussian pre-activations (one nonlinearity deep, with or
without a residual stream around it), ``E f(x) f(x') = K(x, x')`` and ``E Θ̂ = Θ`` hold exactly
at any width, which the tests use for z-score checks without a width extrapolation.

>>> import numpy as np
>>> from perturb.arch import serial, conv, act, global_avg_pool, dense
>>> net = serial(conv([3], C_W=2.0), act("relu"), global_avg_pool(), dense())
>>> f, ntk = sample_networks(net, np.ones((2, 5, 1)), width=8, samples=4, seed=0)
>>> f.shape, ntk.shape
((4, 2), (4, 2, 2))
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import PerturbError
from .fold import check_inputs
from .maps import _pads
from .spec import Act, Architecture, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Residual

__all__ = ["sample_networks"]

#: most networks × inputs × positions × channels held by one batch
MAX_BATCH_ENTRIES = 4_000_000


def _conv_index(sp_shape, filt, padding):
    """For each output position and tap, the flat input position (``P`` = the zero pad)."""
    P = math.prod(sp_shape)
    lohi = [_pads(k, padding) for k in filt]
    out_shape = tuple(s + lo + hi - k + 1 for s, k, (lo, hi) in zip(sp_shape, filt, lohi))
    outs = np.stack(np.meshgrid(*[np.arange(o) for o in out_shape], indexing="ij"), -1).reshape(-1, len(filt))
    taps = np.stack(np.meshgrid(*[np.arange(k) for k in filt], indexing="ij"), -1).reshape(-1, len(filt))
    pos = outs[:, None, :] + taps[None, :, :] - np.array([lo for lo, _ in lohi])
    inside = np.all((pos >= 0) & (pos < np.array(sp_shape)), axis=-1)
    flat = np.ravel_multi_index(tuple(np.clip(pos, 0, np.array(sp_shape) - 1).transpose(2, 0, 1)), sp_shape)
    return np.where(inside, flat, P), out_shape


def _pool_index(sp_shape, window):
    out_shape = tuple(s // w for s, w in zip(sp_shape, window))
    outs = np.stack(np.meshgrid(*[np.arange(o) for o in out_shape], indexing="ij"), -1).reshape(-1, len(window))
    taps = np.stack(np.meshgrid(*[np.arange(w) for w in window], indexing="ij"), -1).reshape(-1, len(window))
    pos = outs[:, None, :] * np.array(window) + taps[None, :, :]
    return np.ravel_multi_index(tuple(pos.transpose(2, 0, 1)), sp_shape), out_shape


class _Net:
    """One batch of random networks: forward pass with a tape, backward pass into Θ̂."""

    def __init__(self, arch: Architecture, width: int, rng: np.random.Generator, S: int):
        self.arch, self.width, self.rng, self.S = arch, width, rng, S

    def forward(self, layers, h, sp_shape, out_channels=None):
        tape = []
        for i, x in enumerate(layers):
            if isinstance(x, (Dense, Conv)):
                last = i == len(layers) - 1
                if isinstance(x, Dense):
                    filt, pad = (1,) * len(sp_shape), "VALID"
                else:
                    filt, pad = x.filter, x.padding
                idx, out_shape = _conv_index(sp_shape, filt, pad) if sp_shape else (np.zeros((1, 1), int), ())
                c = h.shape[-1]
                n = (out_channels if (last and out_channels is not None) else self.width)
                S, N = h.shape[:2]
                hp = np.concatenate([h, np.zeros((S, N, 1, c))], axis=2)
                patches = hp[:, :, idx].reshape(S, N, idx.shape[0], idx.shape[1] * c)
                fan_in = idx.shape[1] * c
                W = self.rng.standard_normal((S, fan_in, n)) * math.sqrt(x.C_W / fan_in)
                z = np.einsum("snpk,skm->snpm", patches, W)
                if x.C_b:
                    z += (self.rng.standard_normal((S, 1, 1, n)) * math.sqrt(x.C_b))
                tape.append(("affine", x, patches, W, idx, c, sp_shape))
                h, sp_shape = z, out_shape
            elif isinstance(x, Act):
                f0, f1 = x.activation.numpy(0), x.activation.numpy(1)
                tape.append(("act", np.broadcast_to(f1(h), h.shape)))
                h = np.broadcast_to(f0(h), h.shape).astype(float)
            elif isinstance(x, AvgPool):
                idx, out_shape = _pool_index(sp_shape, x.window)
                tape.append(("pool", idx, h.shape[2]))
                h, sp_shape = h[:, :, idx].mean(axis=3), out_shape
            elif isinstance(x, GlobalAvgPool):
                tape.append(("gap", h.shape[2]))
                h, sp_shape = h.mean(axis=2, keepdims=True), ()
            elif isinstance(x, Flatten):
                tape.append(("flatten", h.shape))
                S, N = h.shape[:2]
                h, sp_shape = h.reshape(S, N, 1, -1), ()
            elif isinstance(x, Residual):
                hb, sp_b, tb = self.forward(x.block, h, sp_shape, out_channels=h.shape[-1])
                tape.append(("residual", tb))
                h = h + hb
        return h, sp_shape, tape

    def backward(self, tape, delta, theta):
        """δ = ∂f/∂(output of the taped layers) -> ∂f/∂(their input); Θ̂ accumulated in place."""
        for entry in reversed(tape):
            kind = entry[0]
            if kind == "affine":
                _, x, patches, W, idx, c, sp_in = entry
                G = np.einsum("snpk,snpm->snkm", patches, delta)     # ∂f/∂W, and W = √(C_W/fan_in) θ
                theta += (x.C_W / patches.shape[-1]) * np.einsum("sakm,sbkm->sab", G, G)
                if x.C_b:
                    g = delta.sum(axis=2)
                    theta += x.C_b * np.einsum("sam,sbm->sab", g, g)
                dpatch = np.einsum("snpm,skm->snpk", delta, W)
                S, N, Pout = dpatch.shape[:3]
                dpatch = dpatch.reshape(S, N, Pout, idx.shape[1], c)
                P_in = math.prod(sp_in) if sp_in else 1
                dh = np.zeros((S, N, P_in + 1, c))
                for t in range(idx.shape[1]):
                    np.add.at(dh, (slice(None), slice(None), idx[:, t]), dpatch[:, :, :, t])
                delta = dh[:, :, :P_in]
            elif kind == "act":
                delta = delta * entry[1]
            elif kind == "pool":
                _, idx, P_in = entry
                S, N, _, c = delta.shape
                dh = np.zeros((S, N, P_in, c))
                for t in range(idx.shape[1]):
                    dh[:, :, idx[:, t]] += delta / idx.shape[1]
                delta = dh
            elif kind == "gap":
                delta = np.broadcast_to(delta / entry[1], delta.shape[:2] + (entry[1],) + delta.shape[3:])
            elif kind == "flatten":
                delta = delta.reshape(entry[1])
            elif kind == "residual":
                delta = delta + self.backward(entry[1], delta, theta)
        return delta


def sample_networks(arch: Architecture, X, *, width: int, samples: int, seed: int = 0,
                    ntk: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Outputs and empirical NTKs of ``samples`` independent random networks of width ``width``.

    Returns ``(f, Θ̂)`` of shapes (samples, N) and (samples, N, N) (``None`` with ``ntk=False``).
    """
    if not isinstance(arch, Architecture):
        arch = Architecture.from_spec(arch)
    X = check_inputs(X)
    arch.check(X.shape[1:])
    for v, nm in ((width, "width"), (samples, "samples")):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise PerturbError(f"{nm} must be a positive integer, got {v!r}")
    rng = np.random.default_rng(seed)
    N = X.shape[0]
    sp_shape = X.shape[1:-1]
    P = math.prod(sp_shape) if sp_shape else 1
    h0 = X.reshape(1, N, P, X.shape[-1])
    per = max(1, MAX_BATCH_ENTRIES // (N * P * max(width, X.shape[-1]) * 9))
    fs, ts = [], []
    done = 0
    while done < samples:
        S = min(per, samples - done)
        net = _Net(arch, int(width), rng, S)
        out, _, tape = net.forward(arch.layers, np.broadcast_to(h0, (S,) + h0.shape[1:]), sp_shape, out_channels=1)
        f = out.reshape(S, N)
        fs.append(f)
        if ntk:
            theta = np.zeros((S, N, N))
            net.backward(tape, np.ones((S, N, 1, 1)), theta)
            ts.append(theta)
        done += S
    return np.concatenate(fs), (np.concatenate(ts) if ntk else None)
