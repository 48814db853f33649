"""Many Gaussian expectations at once: one quadrature per covariance, all integrands together.

A layer of a finite-width fold needs many atoms ``<f_i>_{K_i}`` (the NTK statistics at two
inputs: ~130 per layer), where the covariances ``K_i`` are a handful of sub-matrices of one
kernel and the integrands ``f_i`` are products of σ, σ', σ'' at the same integration variables.
Evaluated one by one, each atom builds its own Gauss–Legendre product grid (panels, Cholesky
map, weights) and evaluates σ and its derivatives on it again.  :func:`expect_batch` groups the
atoms by (number of variables, covariance), builds the node set once per group — exactly the
nodes :func:`perturb.gaussian.quadrature.expect_numeric` would use, with the panel breaks at the
union of the integrands' kinks — and evaluates every integrand of the group in one compiled
function, whose common subexpressions (σ(u₁), σ'(u₂), ...) are computed once per node.

Closed forms (registry) are used where they exist, as :func:`perturb.gaussian.expect` does;
the divergence check is the same.  The result for an atom differs from the one-at-a-time value
only by the rounding of the shared subexpressions (and, for kinked integrands, by extra panel
breaks, which only refine the rule); tests compare both, and mpmath.

>>> import sympy as sp
>>> from perturb.gaussian import zvars
>>> z1, z2 = zvars(2)
>>> K = [[1.0, 0.3], [0.3, 2.0]]
>>> vals = expect_batch([(sp.tanh(z1) * sp.tanh(z2), K), (sp.tanh(z1) ** 2, K), (z1 * z2, K)])
>>> round(float(vals[2]), 12)
0.3
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import sympy as sp

from ..activations import Z
from ..compile import compile_expr
from ..errors import PerturbError
from .atom import integration_vars
from .dispatch import _check_convergence, _heaviside_powers, closed_form_of, expect
from .quadrature import _as_array, _cholesky_psd, _nested, kinks_in

__all__ = ["expect_batch"]


@functools.lru_cache(maxsize=256)
def _compiled_many(fs: tuple, zs: tuple):
    return compile_expr(sp.Tuple(*fs), list(zs))


class _Many:
    """Adapter: the compiled tuple of integrands, called on the nodes, as one stacked array."""

    def __init__(self, compiled, count: int):
        self.compiled, self.count = compiled, count

    def __call__(self, *u):
        out = self.compiled(*u)
        shape = np.broadcast(*u).shape
        return np.stack([np.broadcast_to(np.asarray(v, dtype=float), shape) for v in out])


def expect_batch(items: Sequence[tuple[sp.Expr, object]], *, method: str = "auto",
                 n_hermite: int = 32, n_legendre: int = 16) -> np.ndarray:
    """``[<f>_K for f, K in items]`` as floats: ``K`` a variance or one (m, m) covariance
    (nested lists or an array), ``f`` in ``z`` or ``z_1..z_m``.

    ``method`` as in :func:`perturb.gaussian.expect`: ``"auto"`` (closed forms where registered,
    quadrature otherwise), ``"closed"`` or ``"quad"``; ``"mpmath"`` evaluates one by one.
    """
    out = np.empty(len(items))
    groups: dict = {}
    for i, (f, K) in enumerate(items):
        f = _heaviside_powers(sp.sympify(f))
        scalar = not any(s.name.startswith("z_") for s in f.free_symbols)
        arr = _as_array(K)
        if method == "mpmath" or (not scalar and arr.ndim != 2) or (scalar and arr.ndim != 0):
            out[i] = float(expect(f, K, method=method))
            continue
        m = 1 if scalar else arr.shape[-1]
        if m > 2 and method == "closed":
            raise PerturbError(f"no closed form is registered for <{f}>; use method='quad' or 'mpmath'")
        cf = closed_form_of(f, m) if m <= 2 and method in ("auto", "closed") else None
        if cf is not None or method == "closed":
            out[i] = float(expect(f, K, method=method))
            continue
        zs = (Z,) if scalar else integration_vars(sp.ImmutableMatrix(sp.zeros(m, m)))
        key = (m, zs if scalar else None, arr.tobytes())
        groups.setdefault(key, (arr, zs, []))[2].append((i, f))
    for (m, _, _), (arr, zs, members) in groups.items():
        fs = tuple(f for _, f in members)
        variances = [arr] if m == 1 else [arr[i, i] for i in range(m)]
        for f in fs:
            extra = f.free_symbols - set(zs)
            if extra:
                raise PerturbError(f"integrand has free symbols {', '.join(sorted(map(str, extra)))} besides "
                                   f"the integration variables {', '.join(map(str, zs))}")
            _check_convergence(f, zs, variances)
            if f.atoms(sp.core.function.AppliedUndef):
                raise PerturbError(f"cannot integrate the generic activation numerically: {f}")
        if any(f.has(sp.DiracDelta) for f in fs):               # the one-at-a-time path explains it
            for i, f in members:
                out[i] = float(expect(f, arr, method=method))
            continue
        if m == 1:
            if arr < 0:
                raise PerturbError(f"variance must be >= 0, got {float(arr)}")
            L = np.sqrt(arr).reshape(1, 1, 1)
        else:
            L = _cholesky_psd(arr[None])
        kinks = [tuple(sorted(set().union(*[kinks_in(f, v) for f in fs]))) for v in zs]
        vals = _nested(_Many(_compiled_many(fs, zs), len(fs)), L, kinks, n_hermite, n_legendre)[:, 0]
        for (i, f), v in zip(members, vals):
            out[i] = v if np.isfinite(v) else float(expect(f, arr, method=method))   # overflow: the careful path
    return out
