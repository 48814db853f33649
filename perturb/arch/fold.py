"""The infinite-width NNGP and NTK of an architecture: the fold of its layer maps, in blocks.

Every layer map of :mod:`.maps` acts on each pair of inputs (α, β) separately, except that the
activation needs the variances ``K_{αα}(p, p)`` and ``K_{ββ}(p', p')`` of both entries.  So the
N×N problem is cut into blocks of inputs I, J: the diagonal blocks (I, I) are folded first and
record, at every activation, the variances of their inputs; each off-diagonal block (I, J),
I < J, is then folded with those variances, and the result is mirrored.  A block's pixel-pair
kernel, laid out positions first ``(*S, *S, |I|, |J|)``, has ``|I| |J| |S|²`` entries (``|S|`` positions), or ``|I| |J| |S|`` when no pooling
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
from ..gaussian.blocks import run_blocks
from ..infinite import Kernels, _engine, _has_delta, _mp_two_point
from .maps import act_embedded, act_pair, direct, flatten_mean, global_mean, patch_sum, pool_window
from .spec import Act, Architecture, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Residual

__all__ = ["kernels", "check_inputs", "plan", "Plan", "ntk_defined", "MAX_BLOCK_BYTES"]

#: default ceiling on one block's pixel-pair kernel array (bytes): small blocks keep the whole fold
#: of a block near the caches (100 images of 8×8: blocks of 27 inputs, ~2.5× faster than one block)
MAX_BLOCK_BYTES = 24 * 2**20
#: entries per piece of the activation map (a few hundred kB of float64: cache-sized temporaries)
ACT_CHUNK = 32768


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
    want_ntk = ntk_defined(arch)
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


def ntk_defined(arch: Architecture) -> bool:
    """False when an activation's derivative is a Dirac delta (``step``): the NTK is undefined."""
    return not any(_has_delta(a.activation.derivative()) for a in _acts(arch.layers))


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
    """``K⁰_{αβ}(p, p') = x_α(p)·x_β(p')/C``, positions leading: (*S, *S, nI, nJ) or (*S, nI, nJ)."""
    C = XI.shape[-1]
    d = XI.ndim - 2
    S = XI.shape[1:-1]
    nI, nJ = XI.shape[0], XJ.shape[0]
    A = XI.reshape(nI, -1, C)
    B = XJ.reshape(nJ, -1, C)
    inv = (mpmath.mpf(1) / C) if dps else 1.0 / C
    if d == 0:
        return (A[:, 0] @ B[:, 0].T) * inv
    if full:
        G = np.ascontiguousarray(np.tensordot(A, B, axes=([2], [2])).transpose(1, 3, 0, 2)) * inv
        return G.reshape(S + S + (nI, nJ))
    G = np.einsum("ipc,jpc->pij", A, B) * inv
    return G.reshape(S + (nI, nJ))


def _fold_block(arch, XI, XJ, ctx: _Ctx, want_ntk):
    K = _input_kernel(XI, XJ, ctx.full, ctx.dps)
    if ctx.diagonal and not ctx.dps:                    # exactly symmetric (BLAS need not be)
        K = (K + _swap(K, XI.ndim - 2, ctx.full)) / 2
    T = _ZERO if want_ntk else None                    # Θ⁰ = 0: the input has no parameters
    sp_shape = XI.shape[1:-1]
    return _run(arch.layers, K, T, sp_shape, ctx)


def _swap(M, d, full):
    """The mirror image M_{βα}(p', p) of a diagonal block."""
    n = M.ndim
    if full and d:
        axes = tuple(range(d, 2 * d)) + tuple(range(d)) + (n - 1, n - 2)
    else:
        axes = tuple(range(n - 2)) + (n - 1, n - 2)
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
            T = pool_window(T, x.window, full=ctx.full) if _live(T) else T
            sp_shape = tuple(s // w for w, s in zip(x.window, sp_shape))
        elif isinstance(x, GlobalAvgPool):
            K = global_mean(K, d, full=ctx.full)
            T = global_mean(T, d, full=ctx.full) if _live(T) else T
            sp_shape = ()
        elif isinstance(x, Flatten):
            K = flatten_mean(K, d, full=ctx.full)
            T = flatten_mean(T, d, full=ctx.full) if _live(T) else T
            sp_shape = ()
        elif isinstance(x, Residual):
            Kb, Tb, _ = _run(x.block, K, T, sp_shape, ctx)
            K = K + Kb
            T = (T + Tb if _live(T) else Tb) if T is not None else None
        else:  # pragma: no cover - Architecture validates the layer types
            raise PerturbError(f"unknown layer {x!r}")
    return K, T, sp_shape


def _affine(K, T, conv, C_W, C_b, ctx):
    """dense / conv: K' = C_b + C_W patch(K), Θ' = K' + C_W patch(Θ) (NTK parameterisation)."""
    cw, cb = ctx.num(C_W), ctx.num(C_b)
    if conv is not None:                                # patch sums, unnormalised: C_W/|F| below
        area = math.prod(conv[0])
        cw = ctx.num(C_W) / area if not ctx.dps else mpmath.mpf(C_W) / area
        K2 = patch_sum(K, conv[0], conv[1], full=ctx.full, normalise=False)
        T = patch_sum(T, conv[0], conv[1], full=ctx.full, normalise=False) if _live(T) else T
        K2 *= cw
    else:
        K2 = K * cw
    if C_b:
        K2 += cb
    T2 = None
    if T is _ZERO:
        T2 = K2.copy()
    elif T is not None:
        T2 = T if conv is not None else T.copy()
        T2 *= cw
        T2 += K2
    return K2, T2


class _Zero:
    """Θ⁰ = 0 (not materialised: the first dense/conv layer makes Θ¹ = K¹)."""


_ZERO = _Zero()


def _live(T) -> bool:
    return T is not None and T is not _ZERO


def _variances(K, d, full):
    """``K_{αα}(p, p)`` of a diagonal block, shape (*S, n) (``(n,)`` for vectors)."""
    n = K.shape[-1]
    r = np.arange(n)
    if d == 0:
        return K[r, r].copy()
    S = K.shape[:d]
    P = math.prod(S)
    if full:
        K4 = K.reshape(P, P, n, n)
        q = np.arange(P)
        return K4[q, q][:, r, r].reshape(S + (n,))
    return K.reshape(P, n, n)[:, r, r].reshape(S + (n,))


def _act(layer: Act, K, T, sp_shape, ctx: _Ctx):
    act = layer.activation
    d = len(sp_shape)
    want = T is not None
    if ctx.dps or (not direct(act) and ctx.diagonal):
        # one symmetric matrix over (input, position): mpmath, or perturb.infinite's Gram engine
        C = _to_matrix(K, d, ctx.full)
        if ctx.dps:
            ss, dd = _mp_two_point(act, mpmath.matrix(C.tolist()), ctx.dps, want)
        else:
            ss, dd = _engine(act)(C, want_ntk=want)
        if ctx.diagonal and not ctx.dps:
            ctx.record.append(_variances(K, d, ctx.full))
        K2 = _from_matrix(np.asarray(ss), K.shape, d, ctx.full)
        T2 = _from_matrix(np.asarray(dd), K.shape, d, ctx.full) * T if want and dd is not None else None
        return K2, T2
    if ctx.diagonal:
        vI = vJ = _variances(K, d, ctx.full)
        ctx.record.append(vI)
    else:
        vI, vJ = ctx.vars_I[ctx.k], ctx.vars_J[ctx.k]
        ctx.k += 1
    if not direct(act):                                 # off-diagonal block, no closed form
        C = _to_matrix(K, d, ctx.full)
        ss, dd = act_embedded(act, C, _flat_vars(vI, d), _flat_vars(vJ, d), want)
        K2 = _from_matrix(ss, K.shape, d, ctx.full)
        return K2, (_from_matrix(dd, K.shape, d, ctx.full) * T if want and dd is not None else None)
    nI, nJ = K.shape[-2], K.shape[-1]
    eye = np.eye(nI, dtype=bool) if ctx.diagonal else None
    if d == 0:
        return _finish(act_pair(act, K, vI[:, None], vJ[None, :], eye, want), T)
    if not ctx.full:                                    # (*S, nI, nJ): entry (p, i, j)
        a = vI.reshape(sp_shape + (nI, 1))
        b = vJ.reshape(sp_shape + (1, nJ))
        return _finish(act_pair(act, K, a, b, eye, want), T)
    # full: row p of the position pairs at a time; a diagonal block is symmetric under
    # (p, i) <-> (q, j), so only q >= p is computed and the rest mirrored
    P = math.prod(sp_shape)
    K3 = K.reshape(P, P, nI, nJ)
    T3 = T.reshape(P, P, nI, nJ) if want else None
    vI2, vJ2 = vI.reshape(P, nI), vJ.reshape(P, nJ)
    K2 = np.empty_like(K3)
    T2 = np.empty_like(K3) if want else None
    chunk = max(1, ACT_CHUNK // (nI * nJ))            # positions per piece: stays in cache

    def row(p):
        q0 = p if ctx.diagonal else 0
        for c0 in range(q0, P, chunk):
            c1 = min(P, c0 + chunk)
            same = None
            if ctx.diagonal and c0 == p:
                same = np.zeros((c1 - c0, nI, nJ), dtype=bool)
                same[0] = eye
            ss, dd = act_pair(act, K3[p, c0:c1], vI2[p][None, :, None], vJ2[c0:c1][:, None, :], same, want)
            K2[p, c0:c1] = ss
            if want:
                if dd is not None:
                    dd *= T3[p, c0:c1]
                T2[p, c0:c1] = dd
        if ctx.diagonal and p + 1 < P:                 # mirror: disjoint from every other row's writes
            K2[p + 1:, p] = K2[p, p + 1:].transpose(0, 2, 1)
            if want:
                T2[p + 1:, p] = T2[p, p + 1:].transpose(0, 2, 1)

    run_blocks(row, range(P))
    return K2.reshape(K.shape), (T2.reshape(K.shape) if want else None)


def _finish(pair, T):
    ss, dd = pair
    if T is None or dd is None:
        return ss, None
    dd *= T
    return ss, dd


def _flat_vars(v, d):
    """(*S, n) -> the variances in matrix order (input-major, then position)."""
    if d == 0:
        return v
    return np.moveaxis(v, -1, 0).ravel()


def _to_matrix(K, d, full):
    """(*S, *S, nI, nJ) -> the (nI·|S|) × (nJ·|S|) matrix (input-major); vectors as they are."""
    if d == 0:
        return K
    if not full:  # pragma: no cover - the plan carries the full kernel for matrix-engine activations
        raise PerturbError("internal: the matrix engine needs the full pixel-pair kernel")
    P = math.prod(K.shape[:d])
    nI, nJ = K.shape[-2:]
    return np.ascontiguousarray(K.reshape(P, P, nI, nJ).transpose(2, 0, 3, 1)).reshape(nI * P, nJ * P)


def _from_matrix(M, shape, d, full):
    if d == 0:
        return np.asarray(M).reshape(shape)
    P = math.prod(shape[:d])
    nI, nJ = shape[-2:]
    return np.ascontiguousarray(np.asarray(M).reshape(nI, P, nJ, P).transpose(1, 3, 0, 2)).reshape(shape)
