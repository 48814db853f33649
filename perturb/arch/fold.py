"""The infinite-width NNGP and NTK of an architecture: the fold of its layer maps, in blocks.

Every layer map of :mod:`.maps` acts on each pair of inputs (α, β) separately, except that the
activation needs the variances ``K_{αα}(p, p)`` and ``K_{ββ}(p', p')`` of both entries.  So the
N×N problem is cut into blocks of inputs I, J: the diagonal blocks (I, I) are folded first and
record, at every activation, the variances of their inputs; each off-diagonal block (I, J),
I < J, is then folded with those variances, and the result is mirrored.  A block's pixel-pair
kernel, laid out as an ``(|I| |S|) × (|J| |S|)`` matrix, has ``|I| |J| |S|²`` entries (``|S|`` positions), or ``|I| |J| |S|`` when no pooling
layer needs different positions (the pixel diagonal: conv maps ``K(p, p)`` to ``K(p, p)``);
the block size is chosen so that one such array stays under ``max_block_bytes``.

The input kernel is ``K⁰_{αβ}(p, p') = x_α(p)·x_β(p')/C`` (C input channels) and ``Θ⁰ = 0``;
the first dense or conv layer turns it into ``C_b + C_W K⁰`` (patch-averaged for conv), as in
neural-tangents.  With ``dps=D`` one block holds all inputs and every entry is computed with
mpmath at D digits (closed forms, else :func:`perturb.gaussian.expect_mpmath`).

>>> import numpy as np
>>> from perturb.arch import serial, conv, act, global_avg_pool, dense
>>> net = serial(conv([3], C_W=2.0), act("relu"), global_avg_pool(), dense(C_W=1.0))
>>> X = np.random.default_rng(0).standard_normal((3, 5, 2))       # 3 sequences, 5 positions, 2 channels
>>> k = kernels(net, X)
>>> k.nngp.shape, bool(np.allclose(k.nngp, k.nngp.T))
((3, 3), True)
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import mpmath
import numpy as np

from ..errors import PerturbError
from ..infinite import Kernels, _engine, _has_delta, _mp_two_point
from .maps import act_embedded, act_pair, direct, flatten_mean, global_mean, patch_sum, pool_window
from .spec import Act, Architecture, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Residual

__all__ = ["kernels", "check_inputs", "plan", "Plan", "MAX_BLOCK_BYTES"]

#: default ceiling on one block's pixel-pair kernel array (bytes)
MAX_BLOCK_BYTES = 256 * 2**20


def check_inputs(X) -> np.ndarray:
    """Inputs as a float array of shape (N, d), (N, W, C) or (N, H, W, C), finite."""
    try:
        arr = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        raise PerturbError("inputs must be a list of equally shaped numeric arrays (N×d, N×W×C or N×H×W×C); "
                           "found ragged or non-numeric entries (channel or size mismatch)") from None
    if arr.ndim < 2 or arr.ndim > 4 or arr.shape[0] < 1 or 0 in arr.shape:
        raise PerturbError(f"inputs must have shape N×d, N×W×C or N×H×W×C; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise PerturbError(f"inputs contain NaN or infinity (first at index {bad})")
    return arr


@dataclass(frozen=True)
class Plan:
    """How a kernel computation is laid out (see :func:`plan`).

    Attributes:
        full: the full pixel-pair kernel ``K(p, p')`` is carried (pooling needs it), else ``K(p, p)``.
        positions: the number of input positions |S|.
        block: inputs per block; ``blocks``: number of blocks; ``pairs``: blocks folded (I <= J).
        block_bytes: size of one block's kernel array at the input layer (float64).
        full_bytes: size of the unblocked N×N array.
    """

    full: bool
    positions: int
    block: int
    blocks: int
    pairs: int
    block_bytes: int
    full_bytes: int
    methods: tuple[str, ...] = field(default=())


def plan(arch: Architecture, X_shape: tuple[int, ...], *, block: int | None = None,
         max_block_bytes: int = MAX_BLOCK_BYTES, dps: int | None = None) -> Plan:
    """The layout of the kernel computation for inputs of shape ``X_shape`` (N first).

    >>> from perturb.arch import serial, conv, act, global_avg_pool, dense
    >>> p = plan(serial(conv([3, 3]), act("relu"), global_avg_pool(), dense()), (100, 8, 8, 3))
    >>> p.full, p.positions, p.full_bytes / 2**20       # MiB for all 100 × 100 × 64 × 64 entries
    (True, 64, 312.5)
    """
    N = int(X_shape[0])
    P = math.prod(X_shape[1:-1]) if len(X_shape) > 2 else 1
    acts = _acts(arch.layers)
    full = arch.needs_full_spatial() or bool(dps) or not all(direct(a.activation) for a in acts)
    per_pair = 8 * (P * P if full else P)
    if dps:
        b = N
    elif block is not None:
        if isinstance(block, bool) or int(block) != block or block < 1:
            raise PerturbError(f"block must be a positive integer number of inputs, got {block!r}")
        b = min(N, int(block))
    else:
        b = max(1, min(N, int(math.isqrt(max(1, max_block_bytes // per_pair)))))
    nb = -(-N // b)
    methods = tuple(dict.fromkeys(_engine(a.activation).method for a in acts))
    return Plan(full=full, positions=P, block=b, blocks=nb, pairs=nb * (nb + 1) // 2,
                block_bytes=b * b * per_pair, full_bytes=N * N * per_pair, methods=methods)


def _acts(layers):
    out = []
    for x in layers:
        if isinstance(x, Act):
            out.append(x)
        elif isinstance(x, Residual):
            out.extend(_acts(x.block))
    return out


class _Ctx:
    """Per-block state: the variances recorded at each activation (diagonal blocks) or used
    there (off-diagonal blocks)."""

    def __init__(self, full, dps, diagonal, vars_I=None, vars_J=None):
        self.full, self.dps, self.diagonal = full, dps, diagonal
        self.vars_I, self.vars_J = vars_I, vars_J
        self.record = [] if diagonal else None
        self.k = 0

    def num(self, v):
        return mpmath.mpf(v) if self.dps else float(v)


def kernels(arch: Architecture, X, *, dps: int | None = None, block: int | None = None,
            max_block_bytes: int = MAX_BLOCK_BYTES, progress: bool | None = None) -> Kernels:
    """NNGP and NTK (NTK parameterisation) of the scalar output of ``arch`` on inputs ``X``.

    Args:
        arch: an :class:`~perturb.arch.Architecture` (or its JSON list of layers).
        X: inputs of shape (N, d), (N, W, C) or (N, H, W, C).
        dps: compute every entry with mpmath at ``dps`` digits (object arrays of ``mpf``).
        block: inputs per block (default: from ``max_block_bytes``).
        progress: print the block progress on stderr (default: when stderr is a terminal and
            there is more than one block).

    Returns:
        :class:`perturb.infinite.Kernels` with ``nngp`` and ``ntk`` of shape (N, N); ``ntk`` is
        ``None`` when an activation's derivative is a Dirac delta (``step``).

    >>> import numpy as np
    >>> from perturb.arch import serial, dense, act
    >>> k = kernels(serial(dense(2.0), act("relu"), dense(2.0)), np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> k.nngp.round(12).tolist(), k.ntk.round(12).tolist()      # |x|²/d·C_W = 1 on the diagonal
    ([[1.0, 0.318309886184], [0.318309886184, 1.0]], [[2.0, 0.318309886184], [0.318309886184, 2.0]])
    """
    if not isinstance(arch, Architecture):
        arch = Architecture.from_spec(arch)
    if dps is not None and (isinstance(dps, bool) or int(dps) != dps or dps < 1):
        raise PerturbError(f"dps must be a positive integer, got {dps!r}")
    X = check_inputs(X)
    arch.check(X.shape[1:])
    pl = plan(arch, X.shape, block=block, max_block_bytes=max_block_bytes, dps=dps)
    want_ntk = not any(_has_delta(a.activation.derivative()) for a in _acts(arch.layers))
    N, b = X.shape[0], pl.block
    starts = list(range(0, N, b))
    show = progress if progress is not None else (sys.stderr.isatty() and pl.pairs > 1)
    if dps:
        with mpmath.workdps(dps + 10):
            Xo = np.vectorize(lambda v: mpmath.mpf(float(v)), otypes=[object])(X)
            K, T, _ = _fold_block(arch, Xo, Xo, _Ctx(pl.full, dps + 10, True), want_ntk)
        with mpmath.workdps(dps):
            rnd = np.vectorize(lambda v: +v, otypes=[object])
            K = rnd(K)
            T = rnd(T) if T is not None else None
        return Kernels(nngp=K, ntk=T, dps=dps, methods=(f"mpmath at {dps} digits",))
    nngp = np.empty((N, N))
    ntk = np.empty((N, N)) if want_ntk else None
    recorded = {}
    done = 0
    for i0 in starts:                                   # diagonal blocks: record the variances
        sl = slice(i0, min(N, i0 + b))
        ctx = _Ctx(pl.full, None, True)
        K, T, _ = _fold_block(arch, X[sl], X[sl], ctx, want_ntk)
        recorded[i0] = ctx.record
        _put(nngp, ntk, sl, sl, K, T)
        done += 1
        _progress(show, done, pl.pairs)
    for ii, i0 in enumerate(starts):
        for j0 in starts[ii + 1:]:
            si, sj = slice(i0, min(N, i0 + b)), slice(j0, min(N, j0 + b))
            ctx = _Ctx(pl.full, None, False, recorded[i0], recorded[j0])
            K, T, _ = _fold_block(arch, X[si], X[sj], ctx, want_ntk)
            _put(nngp, ntk, si, sj, K, T)
            done += 1
            _progress(show, done, pl.pairs)
    if show:
        print(file=sys.stderr)
    return Kernels(nngp=nngp, ntk=ntk, methods=pl.methods)


def _progress(show, done, total):
    if show:
        print(f"\rperturb: kernel blocks {done}/{total}", end="", file=sys.stderr, flush=True)


def _put(nngp, ntk, si, sj, K, T):
    nngp[si, sj] = K
    nngp[sj, si] = K.T
    if ntk is not None:
        ntk[si, sj] = T
        ntk[sj, si] = T.T


def _input_kernel(XI, XJ, full: bool, dps):
    """``K⁰_{αβ}(p, p') = x_α(p)·x_β(p')/C`` with the spatial axes trailing."""
    C = XI.shape[-1]
    d = XI.ndim - 2
    S = XI.shape[1:-1]
    nI, nJ = XI.shape[0], XJ.shape[0]
    A = XI.reshape(nI, -1, C)
    B = XJ.reshape(nJ, -1, C)
    inv = (mpmath.mpf(1) / C) if dps else 1.0 / C
    if full or d == 0:
        G = np.tensordot(A, B, axes=([2], [2]))          # (nI, P, nJ, P): the matrix layout
        G *= inv
        G = G.reshape((nI,) + S + (nJ,) + S) if d else G.reshape(nI, nJ)
    else:
        G = np.einsum("ipc,jpc->ijp", A, B) * inv
        G = G.reshape((nI, nJ) + S)
    return G


def _fold_block(arch, XI, XJ, ctx: _Ctx, want_ntk):
    K = _input_kernel(XI, XJ, ctx.full, ctx.dps)
    if ctx.diagonal and not ctx.dps:                    # exactly symmetric (BLAS need not be)
        K = (K + _swap(K, XI.ndim - 2, ctx.full)) / 2
    T = np.zeros_like(K) if want_ntk else None
    if T is not None and ctx.dps:
        T[...] = mpmath.mpf(0)
    sp_shape = XI.shape[1:-1]
    return _run(arch.layers, K, T, sp_shape, ctx)


def _swap(M, d, full):
    """The mirror image M_{βα}(p', p) of a diagonal block."""
    if d == 0 or not full:
        axes = (1, 0) + tuple(range(2, M.ndim))
    else:
        axes = tuple(range(1 + d, 2 + 2 * d)) + tuple(range(0, 1 + d))
    return M.transpose(axes)


def _run(layers, K, T, sp_shape, ctx: _Ctx):
    for x in layers:
        d = len(sp_shape)
        if isinstance(x, Dense):
            K, T = _affine(K, T, None, x.C_W, x.C_b, ctx)
        elif isinstance(x, Conv):
            K, T = _affine(K, T, (x.filter, x.padding), x.C_W, x.C_b, ctx)
            if x.padding == "VALID":
                sp_shape = tuple(s - k + 1 for k, s in zip(x.filter, sp_shape))
        elif isinstance(x, Act):
            K, T = _act(x, K, T, sp_shape, ctx)
        elif isinstance(x, AvgPool):
            K = pool_window(K, x.window, full=ctx.full)
            T = pool_window(T, x.window, full=ctx.full) if T is not None else None
            sp_shape = tuple(s // w for w, s in zip(x.window, sp_shape))
        elif isinstance(x, GlobalAvgPool):
            K = global_mean(K, d, full=ctx.full)
            T = global_mean(T, d, full=ctx.full) if T is not None else None
            sp_shape = ()
        elif isinstance(x, Flatten):
            K = flatten_mean(K, d, full=ctx.full)
            T = flatten_mean(T, d, full=ctx.full) if T is not None else None
            sp_shape = ()
        elif isinstance(x, Residual):
            Kb, Tb, _ = _run(x.block, K, T, sp_shape, ctx)
            K = K + Kb
            T = T + Tb if T is not None else None
        else:  # pragma: no cover - Architecture validates the layer types
            raise PerturbError(f"unknown layer {x!r}")
    return K, T, sp_shape


def _affine(K, T, conv, C_W, C_b, ctx):
    """dense / conv: K' = C_b + C_W patch(K), Θ' = K' + C_W patch(Θ) (NTK parameterisation)."""
    cw, cb = ctx.num(C_W), ctx.num(C_b)
    if conv is not None:
        K = patch_sum(K, conv[0], conv[1], full=ctx.full)
        T = patch_sum(T, conv[0], conv[1], full=ctx.full) if T is not None else None
        K2 = K
        K2 *= cw
    else:
        K2 = K * cw
    if C_b:
        K2 += cb
    T2 = None
    if T is not None:
        T2 = T if conv is not None else T.copy()
        T2 *= cw
        T2 += K2
    return K2, T2


def _variances(K, d, full):
    """``K_{αα}(p, p)`` of a diagonal block, shape (n, *S)."""
    n = K.shape[0]
    r = np.arange(n)
    if d == 0 or not full:
        return K[r, r].copy()
    S = K.shape[1:1 + d]
    return np.diagonal(K.reshape(n * math.prod(S), -1)).reshape((n,) + S).copy()


def _act(layer: Act, K, T, sp_shape, ctx: _Ctx):
    act = layer.activation
    d = len(sp_shape)
    want = T is not None
    shape = K.shape
    if ctx.dps:                                         # one symmetric matrix over (input, position)
        C = _to_matrix(K, d)
        ss, dd = _mp_two_point(act, mpmath.matrix(C.tolist()), ctx.dps, want)
        K2 = np.asarray(ss).reshape(shape)
        T2 = np.asarray(dd).reshape(shape) * T if want else None
        return K2, T2
    if ctx.diagonal:
        v = _variances(K, d, ctx.full)
        ctx.record.append(v)
        vI = vJ = v
    else:
        vI, vJ = ctx.vars_I[ctx.k], ctx.vars_J[ctx.k]
        ctx.k += 1
    eng = _engine(act)
    if ctx.diagonal and (ctx.full or d == 0):
        # a symmetric Gram matrix over (input, position): perturb.infinite's engines as they are
        # (upper triangle, row blocks on threads; ρ = 1 exactly on the diagonal)
        C = _to_matrix(K, d)
        Tm = _to_matrix(T, d) if want else None
        if eng.relu is not None:
            ss, dd = eng.relu_layer(C, Tm, 1.0, 0.0, 0.0, 0.0)
            return ss.reshape(shape), (dd.reshape(shape) if dd is not None else None)
        ss, dd = eng(C, want_ntk=want)
        if dd is not None:
            dd *= Tm
        return ss.reshape(shape), (dd.reshape(shape) if dd is not None else None)
    if direct(act):
        nI = shape[0]
        if ctx.full:
            nJ = shape[1 + d]
            a = vI.reshape((nI,) + sp_shape + (1,) + (1,) * d)
            b = vJ.reshape((1,) + (1,) * d + (nJ,) + sp_shape)
        else:
            nJ = shape[1]
            a = vI.reshape((nI, 1) + sp_shape)
            b = vJ.reshape((1, nJ) + sp_shape)
        same = None
        if ctx.diagonal:                                # diag layout: the input-diagonal entries
            same = np.eye(nI, dtype=bool).reshape((nI, nI) + (1,) * d)
        ss, dd = act_pair(act, K, a, b, same, want)
        if want and dd is not None:
            dd *= T
        return ss, (dd if want else None)
    C = _to_matrix(K, d)
    ss, dd = act_embedded(act, C, vI.ravel(), vJ.ravel(), want)
    return ss.reshape(shape), (dd.reshape(shape) * T if want and dd is not None else None)


def _to_matrix(K, d):
    """The full layout (nI, *S, nJ, *S) viewed as an (nI·|S|) × (nJ·|S|) matrix (no copy)."""
    if d == 0:
        return K
    nI = K.shape[0]
    return K.reshape(nI * math.prod(K.shape[1:1 + d]), -1)
