"""High-precision Gaussian expectations with mpmath (any number of digits).

Never touches global precision: every evaluation runs inside ``mpmath.workdps(dps)`` (with a
few guard digits) and returns an ``mpf``.  Kinked integrands are split at their kinks (nested
in Cholesky coordinates for several variables), so tanh at 50 digits and ReLU at 50 digits
are equally reliable.

>>> import sympy as sp
>>> from perturb.gaussian import zvars
>>> z1, z2 = zvars(2)
>>> K = [[0.9, 0.4], [0.4, 1.3]]
>>> mpmath.nstr(expect_mpmath(sp.tanh(z1) * sp.tanh(z2), K, dps=20), 16)   # REFERENCE §1
'0.1406385945564758'
"""

from __future__ import annotations

import mpmath
import sympy as sp

from ..activations import Z
from ..compile import compile_expr
from ..errors import PerturbError
from .atom import integration_vars
from .quadrature import kinks_in

__all__ = ["expect_mpmath"]

_GUARD = 8


def _to_mp_matrix(K, m):
    if m == 1:
        return mpmath.matrix([[mpmath.mpmathify(sp.N(K, mpmath.mp.dps + 5) if isinstance(K, sp.Basic) else K)]])
    rows = [[K[i][j] if not isinstance(K, (sp.MatrixBase,)) else K[i, j] for j in range(m)] for i in range(m)]
    return mpmath.matrix([[mpmath.mpmathify(sp.N(v, mpmath.mp.dps + 5) if isinstance(v, sp.Basic) else v)
                           for v in row] for row in rows])


def _cholesky(M):
    m = M.rows
    L = mpmath.zeros(m, m)
    for i in range(m):
        for j in range(i + 1):
            s = M[i, j] - sum(L[i, k] * L[j, k] for k in range(j))
            if i == j:
                if s < -mpmath.mpf(10) ** (-mpmath.mp.dps + 5) * (1 + abs(M[i, i])):
                    raise PerturbError("covariance matrix is not positive semi-definite")
                L[i, i] = mpmath.sqrt(max(s, 0))
            else:
                L[i, j] = s / L[j, j] if L[j, j] != 0 else mpmath.mpf(0)
    return L


def expect_mpmath(f: sp.Expr, K, *, dps: int = 30):
    """<f>_K at ``dps`` digits. ``K``: a number (f in z) or an m×m nested list/matrix (f in z_i)."""
    f = sp.sympify(f)
    if f.atoms(sp.core.function.AppliedUndef):
        raise PerturbError(f"cannot integrate the generic activation numerically: {f}")
    if f.has(sp.DiracDelta):
        raise PerturbError(f"integrand {f} contains a Dirac delta; use the closed form instead")
    scalar = not any(s.name.startswith("z_") for s in f.free_symbols)
    if scalar:
        zs, m = (Z,), 1
    else:
        m = len(K) if not isinstance(K, sp.MatrixBase) else K.shape[0]
        zs = integration_vars(sp.ImmutableMatrix(sp.zeros(m, m)))
    kinks = [kinks_in(f, v) for v in zs]
    mp_fn = compile_expr(f, list(zs)).mp_function
    with mpmath.workdps(dps + _GUARD):
        M = _to_mp_matrix(K, m)
        if m == 1 and M[0, 0] < 0:
            raise PerturbError(f"variance must be >= 0, got {M[0, 0]}")
        L = _cholesky(M)
        inf = mpmath.inf

        def integrate(i, xs):
            offset = sum((L[i, j] * xs[j] for j in range(i)), mpmath.mpf(0))
            pts = [-inf]
            if L[i, i] > 0:
                pts += sorted((c - offset) / L[i, i] for c in kinks[i])
            pts.append(inf)

            def g(x):
                xx = xs + [x]
                if i + 1 < m:
                    return integrate(i + 1, xx) * mpmath.npdf(x)
                u = [sum((L[k, j] * xx[j] for j in range(k + 1)), mpmath.mpf(0)) for k in range(m)]
                return mp_fn(*u) * mpmath.npdf(x)

            return mpmath.quad(g, pts)

        value = integrate(0, [])
        if not mpmath.isfinite(value):
            raise PerturbError(f"<{f}> is not finite at K = {K}")
    return +value
