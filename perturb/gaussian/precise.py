"""High-precision Gaussian expectations with mpmath (any number of digits).

Never touches global precision: every evaluation runs inside ``mpmath.workdps(dps)`` (with a
few guard digits) and returns an ``mpf``.

Rule (``method="panels"``, the default for one and two variables): in Cholesky coordinates
``u = L x`` each variable is integrated over ``[-T, T]`` (T such that the Gaussian mass beyond is
below ``10^-(dps+guard)``) with composite Gauss–Legendre panels of half-width at most
``1/max(1, max_k |L_ki|)``, split also at the kinks of the integrand (whose positions depend on
the outer variables) — the scheme of the float64 quadrature, at mpmath precision.  Nodes are
computed once per (node count, precision) by Newton's method and cached.  Each panel gets as many
nodes as the digits it must deliver: a panel where the Gaussian weight (times the outer
variables' weight) is ``10^-k`` needs ``k`` fewer digits, so the tails cost little.  The result
is computed with two node counts (a coarse rule with ~70% of the nodes); if they disagree by
more than ``10^-dps`` times ``E|f|``, or the outermost panels carry more than that, the rule is
retried with twice the nodes and then falls back to nested ``mpmath.quad`` (``method="quad"``,
minutes for two variables).  Kinked integrands are split at their kinks in both schemes, so tanh
at 50 digits and ReLU at 50 digits are equally reliable.

>>> import sympy as sp
>>> from perturb.gaussian import zvars
>>> z1, z2 = zvars(2)
>>> K = [[0.9, 0.4], [0.4, 1.3]]
>>> mpmath.nstr(expect_mpmath(sp.tanh(z1) * sp.tanh(z2), K, dps=20), 16)   # REFERENCE §1
'0.1406385945564758'
"""

from __future__ import annotations

import functools
import math

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


_METHODS = ("auto", "panels", "quad")
#: node counts of the cached Gauss–Legendre rules (a panel takes the smallest one large enough)
_NODE_TABLE = (4, 6, 8, 10, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192)
_LN10 = math.log(10.0)


@functools.lru_cache(maxsize=128)
def _gauss_legendre(n: int, dps: int) -> tuple[tuple, tuple]:
    """Nodes and weights of the n-point Gauss–Legendre rule on [-1, 1] at ``dps`` digits.

    Newton's method on P_n from the asymptotic starting points; P_n by the three-term recurrence.
    """
    with mpmath.workdps(dps + 10):
        eps = mpmath.mpf(10) ** (-(dps + 5))
        xs, ws = [], []
        for k in range(1, n // 2 + 1):
            x = mpmath.mpf(math.cos(math.pi * (k - 0.25) / (n + 0.5)))
            for _ in range(100):
                p0, p1 = mpmath.mpf(1), x
                for j in range(2, n + 1):
                    p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
                dp = n * (x * p1 - p0) / (x * x - 1)
                dx = p1 / dp
                x -= dx
                if abs(dx) < eps:
                    break
            p0, p1 = mpmath.mpf(1), x
            for j in range(2, n + 1):
                p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
            dp = n * (x * p1 - p0) / (x * x - 1)
            w = 2 / ((1 - x * x) * dp * dp)
            xs += [x, -x]
            ws += [w, w]
        if n % 2:
            p0, p1 = mpmath.mpf(1), mpmath.mpf(0)
            for j in range(2, n + 1):
                p0, p1 = p1, ((2 * j - 1) * 0 * p1 - (j - 1) * p0) / j
            # P_n'(0) = n P_{n-1}(0)
            dp = n * p0
            xs.append(mpmath.mpf(0))
            ws.append(2 / (dp * dp))
    with mpmath.workdps(dps):
        return tuple(+x for x in xs), tuple(+w for w in ws)


def _nodes_for(digits: float, factor: float) -> int:
    need = factor * max(digits, 1.0) + 2
    for n in _NODE_TABLE:
        if n >= need:
            return n
    return _NODE_TABLE[-1]


def _panels(mp_fn, L, kinks, m: int, wd: int, target: int, factor: float):
    """Composite Gauss–Legendre over x ~ N(0, I_m), u = L x, at ``wd`` working digits.

    Panels whose Gaussian weight (times the outer variables' weight at the current outer node)
    is below ``10^-target`` are skipped, so two variables are integrated over a disc, not a square.
    Returns (integral, integral of |f|, |contribution| of the outermost computed panels).
    """
    T = math.sqrt(2 * (target + 2) * _LN10) + 0.5
    half_w = []
    for i in range(m):
        s = max(abs(float(L[k, i])) for k in range(i, m))
        half_w.append(1.0 / max(1.0, s))
    inv = 1 / mpmath.sqrt(2 * mpmath.pi)
    Lf = [[L[i, j] for j in range(m)] for i in range(m)]
    cache: dict = {}

    def rule(lo, hi, n, cacheable):
        key = (lo, hi, n)
        if cacheable and key in cache:
            return cache[key]
        ts, ws = _gauss_legendre(n, wd)
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        xs = [mid + half * t for t in ts]
        out = (xs, [half * inv * w * mpmath.exp(-x * x / 2) for x, w in zip(xs, ws)])
        if cacheable:
            cache[key] = out
        return out

    def integrate(i, xs, log10_outer):
        h = half_w[i]
        n_base = max(1, int(math.ceil(T / (2 * h))))
        step = mpmath.mpf(T) / n_base
        edges = [step * k for k in range(-n_base, n_base + 1)]
        cacheable = True
        if kinks[i] and Lf[i][i] != 0:
            offset = sum((Lf[i][j] * xs[j] for j in range(i)), mpmath.mpf(0))
            cacheable = i == 0
            for c in kinks[i]:
                b = (c - offset) / Lf[i][i]
                if -T < b < T:
                    edges.append(b)
            edges.sort()
        if i + 1 == m:
            base = [sum((Lf[k][j] * xs[j] for j in range(i)), mpmath.mpf(0)) for k in range(m)]
            lcol = [Lf[k][i] for k in range(m)]
        total, total_abs, tail = mpmath.mpf(0), mpmath.mpf(0), mpmath.mpf(0)
        edge_lo = edge_hi = None                # (x, |f|) at the outermost nodes computed
        for p in range(len(edges) - 1):
            lo, hi = edges[p], edges[p + 1]
            if hi - lo <= 0:
                continue
            flo, fhi = float(lo), float(hi)
            dmin = 0.0 if flo <= 0.0 <= fhi else min(abs(flo), abs(fhi))
            digits = target + log10_outer - dmin * dmin / (2 * _LN10)
            if digits <= 0:
                continue                     # weight below 10^-target: skipped (checked below)
            nodes, weights = rule(lo, hi, _nodes_for(digits, factor), cacheable)
            s, s_abs = mpmath.mpf(0), mpmath.mpf(0)
            for x, wx in zip(nodes, weights):
                if i + 1 < m:
                    fx = float(x)
                    v, v_abs, v_tail = integrate(i + 1, xs + [x], log10_outer - fx * fx / (2 * _LN10))
                    tail += wx * v_tail
                else:
                    v = mp_fn(*[base[k] + lcol[k] * x for k in range(m)])
                    v_abs = abs(v)
                s += wx * v
                s_abs += wx * v_abs
                if edge_lo is None or x < edge_lo[0]:
                    edge_lo = (x, v_abs)
                if edge_hi is None or x > edge_hi[0]:
                    edge_hi = (x, v_abs)
            total += s
            total_abs += s_abs
        # mass beyond the outermost nodes, |f| taken as there: Mills' bound φ(x)/|x|
        for edge in (edge_lo, edge_hi):
            if edge is not None:
                x, v_abs = edge
                tail += v_abs * inv * mpmath.exp(-x * x / 2) / max(abs(x), 1)
        return total, total_abs, tail

    return integrate(0, [], 0.0)


def _checked_panels(mp_fn, L, kinks, m, dps, *, strict: bool, f):
    """The panel rule with its error check: the value, or None (caller falls back) / raise."""
    wd, target = dps + _GUARD, dps + 3
    tol = mpmath.mpf(10) ** (-dps)
    for factor in (0.75, 1.5):
        coarse = _panels(mp_fn, L, kinks, m, wd, target, 0.7 * factor)
        fine = _panels(mp_fn, L, kinks, m, wd, target, factor)
        scale = fine[1] if fine[1] > 0 else mpmath.mpf(1)
        if not all(mpmath.isfinite(v) for v in fine + coarse):
            break
        if abs(fine[0] - coarse[0]) <= tol * scale and fine[2] <= tol * scale:
            return fine[0]
    if strict:
        raise PerturbError(f"Gauss–Legendre panels did not reach {dps} digits for <{f}> "
                           f"(coarse/fine differ by {mpmath.nstr(abs(fine[0] - coarse[0]), 3)}); "
                           "use method='quad'")
    return None


def expect_mpmath(f: sp.Expr, K, *, dps: int = 30, method: str = "auto"):
    """<f>_K at ``dps`` digits. ``K``: a number (f in z) or an m×m nested list/matrix (f in z_i).

    ``method``: ``"panels"`` (composite Gauss–Legendre with an error check, raising if the
    check fails), ``"quad"`` (nested ``mpmath.quad``; slow for two variables) or ``"auto"``
    (panels for up to two variables, falling back to quad when their check fails).

    >>> import sympy as sp
    >>> mpmath.nstr(expect_mpmath(sp.tanh(Z) ** 2, 1.0, dps=30), 25)
    '0.3942944903978411744164598'
    """
    if method not in _METHODS:
        raise PerturbError(f"unknown method {method!r}; valid: {', '.join(_METHODS)}")
    if not isinstance(dps, int) or dps < 1:
        raise PerturbError(f"dps must be a positive integer, got {dps!r}")
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
        if method != "quad" and m <= 2:
            value = _checked_panels(mp_fn, L, kinks, m, dps, strict=(method == "panels"), f=f)
            if value is not None:
                if not mpmath.isfinite(value):
                    raise PerturbError(f"<{f}> is not finite at K = {K}")
                return +value
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
        # returned at the working precision (dps + guard digits), whatever the global precision
        return +value
