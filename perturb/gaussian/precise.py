"""High-precision Gaussian expectations with mpmath (any number of digits).

Never touches global precision: every evaluation runs inside ``mpmath.workdps(dps)`` (with a
few guard digits) and returns an ``mpf``.  Three rules, each with a measured error:

* ``method="lattice"`` (the default for smooth integrands of one or two variables): the
  trapezoid rule on a lattice in Cholesky coordinates ``u = √a x, v = αx + s y``.  For an analytic
  integrand times the Gaussian weight it converges geometrically (error ~ exp(-2πd/h), d the
  distance of the nearest complex singularity).  The lattice is chosen so that every v lies on
  one grid of step δ (``hx = pδ/|α|``, ``hy = qδ/s``): for ``g(z_1) h(z_2)`` the activation is
  evaluated ~T/δ times, not once per lattice point, and the sums over the lattice are done in
  fixed-point integer arithmetic.  Pairs with |ρ| ≤ 1/4 use Mehler's series (Hermite moments from
  one-dimensional trapezoid rules; the series tail is bounded by |ρ|^(n+1)√(<g²><h²>)).  Steps
  shrink by 1/√2 (never aliasing the previous rule) until two successive rules agree to
  ``10^-(dps+2)`` times ``E|f|`` and the integrand's mass beyond the truncation disc is below that;
  the finer value is returned.  ~0.1–0.4 s per two-point entry at 30 digits, ~1–2 s at 50.
* ``method="panels"`` (kinked integrands): in Cholesky coordinates each variable is integrated
  over ``[-T, T]`` with composite Gauss–Legendre panels of half-width at most
  ``1/max(1, max_k |L_ki|)``, split also at the kinks of the integrand (whose positions depend on
  the outer variables).  Nodes are computed once per (node count, precision) by Newton's method
  and cached.  Each panel gets as many nodes as the digits it must deliver: a panel where the
  Gaussian weight (times the outer variables' weight) is ``10^-k`` needs ``k`` fewer digits.  The
  result is computed with two node counts (a coarse rule with ~70% of the nodes); if they
  disagree by more than ``10^-dps`` times ``E|f|``, or the outermost panels carry more than that,
  the rule is retried with twice the nodes.  ~20 s for a smooth two-point entry at 30 digits.
* ``method="quad"``: nested ``mpmath.quad`` split at the kinks — the independent reference
  (minutes for two variables); ``"auto"`` falls back to it when the other rules' checks fail.

>>> import sympy as sp
>>> from perturb.gaussian import zvars
>>> z1, z2 = zvars(2)
>>> K = [[0.9, 0.4], [0.4, 1.3]]
>>> mpmath.nstr(expect_mpmath(sp.tanh(z1) * sp.tanh(z2), K, dps=20), 16)   # docs/reference.md §1
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


_METHODS = ("auto", "lattice", "panels", "quad")
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



# ---------------------------------------------------------------- smooth integrands: lattice rule
#: ratio of successive lattice steps (irrational, so two rules never alias the same frequency)
_RATIO = 1 / math.sqrt(2)
_MAX_LEVELS = 14
#: at most this many separable terms g_t(z_1) h_t(z_2); beyond, f is evaluated point by point
_MAX_TERMS = 6
#: below this |ρ| pairs go through Mehler's series (the lattice would need ~1/|ρ| points)
_MEHLER_RHO = 0.25


def _factor_lists(e: sp.Expr, zs) -> list[list[sp.Expr]] | None:
    """e as a sum of products, each a list of factors depending on at most one of ``zs``."""
    inside = [v for v in zs if v in e.free_symbols]
    if len(inside) < 2:
        return [[e]]
    if isinstance(e, sp.Add):
        out = []
        for arg in e.args:
            part = _factor_lists(arg, zs)
            if part is None:
                return None
            out += part
        return out
    if isinstance(e, sp.Mul):
        out = [[]]
        for arg in e.args:
            part = _factor_lists(arg, zs)
            if part is None or len(out) * len(part) > _MAX_TERMS:
                return None
            out = [a + b for a in out for b in part]
        return out
    if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0:
        return _factor_lists(sp.expand(e), zs) if sp.expand(e) != e else None
    if isinstance(e, sp.exp):                  # exp(Σ terms) = Π exp(terms grouped per variable)
        groups: dict = {}
        for term in sp.Add.make_args(sp.expand(e.args[0])):
            key = tuple(v for v in zs if v in term.free_symbols)
            if len(key) > 1:
                return None
            groups[key] = groups.get(key, sp.S.Zero) + term
        return [[sp.exp(arg) for arg in groups.values()]]
    return None


def _separate(f: sp.Expr, zs) -> list[tuple[sp.Expr, ...]] | None:
    """f = Σ_t c_t g_t(z_1) h_t(z_2) as [(c_t, g_t, h_t)] (g_t, h_t in Z), or None."""
    lists = _factor_lists(f, zs)
    if lists is None or len(lists) > _MAX_TERMS:
        return None
    terms = []
    for factors in lists:
        parts = [sp.S.One] * (len(zs) + 1)
        for factor in factors:
            inside = [i for i, v in enumerate(zs) if v in factor.free_symbols]
            parts[inside[0] + 1 if inside else 0] *= factor
        terms.append((parts[0],) + tuple(p.subs(v, Z) for p, v in zip(parts[1:], zs)))
    return terms


def _fix(x, P: int) -> int:
    """x · 2^P rounded towards zero, as a Python int (x a finite real mpf)."""
    sign, man, exp, _ = x._mpf_
    sh = exp + P
    v = man << sh if sh >= 0 else man >> -sh
    return -v if sign else v


class _NotSmooth(Exception):
    """A value on the lattice is not a finite real number: leave it to the panel rule."""


def _real(v):
    v = mpmath.mpmathify(v)
    if not isinstance(v, mpmath.mpf) or not mpmath.isfinite(v):
        raise _NotSmooth
    return v


def _gauss_weights(h, n: int, P: int) -> list[int]:
    """h φ(k h) for k = -n..n as fixed-point integers (P fractional bits).

    exp(-(k h)²/2) by the recurrence e_(k+1) = e_k r_k, r_(k+1) = r_k q² (q = exp(-h²/2)): two
    multiplications per node instead of an exponential; the rounding error grows like k ulp,
    within the guard digits.
    """
    q = mpmath.exp(-h * h / 2)
    q2, e, r = q * q, h / mpmath.sqrt(2 * mpmath.pi), q
    half = [_fix(e, P)]
    for _ in range(n):
        e *= r
        r *= q2
        half.append(_fix(e, P))
    return half[:0:-1] + half


def _lattice_sum(geom, fns, joint, P, with_abs=True):
    """One lattice rule: (∫, ∫|f|, |f| mass in the outer shell) as mpf, or raise _NotSmooth.

    ``geom``: the lattice (see :func:`_geometry`); ``fns``: [(c, g, h)] mpmath callables of one
    variable (None for 1); ``joint``: a callable of (u, v) used instead when f does not separate.
    Rows are summed as Python integers (fixed point with P fractional bits): exact, and ~5x
    faster than mpf arithmetic.
    """
    ra, alpha, s, T, hx, hy, mode, delta, p, q, sg, n_gh = geom
    Kx = int(T / hx)
    inner = T - 1
    if mode == "hermite":                     # Gauss–Hermite in y (h varies slowly in y)
        ys, wys = _hermite_rule(n_gh, mpmath.mp.dps)
        wy, Jmax = [_fix(w, P) for w in wys], 0
    else:
        Jmax = int(T / hy) if s != 0 else 0
        wy = _gauss_weights(hy, Jmax, P) if s != 0 else [1 << P]
    rows = []
    for k in range(-Kx, Kx + 1):
        x = k * hx
        r2, ri2 = T * T - float(x) ** 2, inner * inner - float(x) ** 2
        if mode == "hermite":
            J, Ji = 0, 0 if ri2 >= 0 else -1
        else:
            J = min(Jmax, int(math.sqrt(r2) / float(hy))) if s != 0 else 0
            Ji = -1 if ri2 < 0 else (min(J, int(math.sqrt(ri2) / float(hy))) if s != 0 else 0)
        rows.append((k, x, J, Ji))
    # values on the v-grid (aligned mode) or per point (direct, hermite)
    hvals = []
    if mode == "aligned" and joint is None:
        m_hi = max(p * abs(k) + q * J for k, _, J, _ in rows)
        vs = [delta * m for m in range(-m_hi, m_hi + 1)]
        for _, _, h in fns:
            vals = [_fix(_real(h(v)), P) for v in vs] if h is not None else [1 << P] * len(vs)
            hvals.append((vals, [abs(v) for v in vals]))
    total = tot_abs = shell = 0
    wx = _gauss_weights(hx, Kx, P)
    for k, x, J, Ji in rows:
        w = wx[k + Kx]
        u = ra * x
        if mode == "hermite":
            wrow, yrow, inside = wy, ys, (0, len(wy)) if Ji >= 0 else (0, 0)
        else:
            wrow, inside = wy[Jmax - J: Jmax + J + 1], (J - Ji, J + Ji + 1) if Ji >= 0 else (0, 0)
            yrow = [j * hy for j in range(-J, J + 1)] if mode != "aligned" or joint is not None else ()
        for t, (c, g, h) in enumerate(fns if joint is None else [(1, None, None)]):
            if joint is not None:
                row = [_fix(_real(joint(u, alpha * x + s * y)), P) for y in yrow]
                arow = [abs(v) for v in row]
            elif mode == "aligned":
                start = sg * p * k - q * J + len(hvals[t][0]) // 2
                row = hvals[t][0][start: start + 2 * q * J + 1: max(q, 1)]
                arow = hvals[t][1][start: start + 2 * q * J + 1: max(q, 1)]
            else:
                row = [_fix(_real(h(alpha * x + s * y)), P) for y in yrow] if h is not None \
                    else [1 << P] * len(yrow)
                arow = [abs(v) for v in row]
            gk = (w * _fix(_real(g(u)), P) >> P) if g is not None else w
            cf = _fix(_real(c), P) if joint is None else 1 << P
            gk = gk * cf >> P
            total += gk * sum(map(int.__mul__, wrow, row))
            if not with_abs:
                continue
            sa = sum(map(int.__mul__, wrow, arow))
            tot_abs += abs(gk) * sa
            lo, hi = inside
            if hi - lo < len(wrow):     # |f| mass of the points with radius in (T - 1, T]
                shell += abs(gk) * (sa - sum(map(int.__mul__, wrow[lo:hi], arow[lo:hi])))
    scale = -3 * P
    return tuple(mpmath.ldexp(mpmath.mpf(v), scale) for v in (total, tot_abs, shell))


def _mehler_sum(fns, a, b, rho, T, hx, n_terms, P, tail_tol):
    """Σ_n ρ^n/n! <g H_n><h H_n> (Hermite moments by the 1-D trapezoid rule of step hx).

    Returns (value, sqrt(<g²><h²>) summed over terms): E[g(u)h(v)] = Σ_n ρ^n G_n H_n / n! with
    G_n = E[g(√a x) He_n(x)], and the tail beyond n is at most |ρ|^(n+1) √(<g²><h²>).
    """
    K = int(T / hx)
    xs = [k * hx for k in range(-K, K + 1)]
    X = [_fix(x, P) for x in xs]
    W = _gauss_weights(hx, K, P)
    one = 1 << P

    def moments(fn, var):
        if fn is None:
            vals, Pv = [one] * len(xs), P
        else:
            r = mpmath.sqrt(var)
            mp_vals = [_real(fn(r * x)) for x in xs]
            big = max(abs(v) for v in mp_vals)
            Pv = P + max(0, -int(mpmath.mag(big))) if big else P      # small values keep their digits
            vals = [_fix(v, Pv) for v in mp_vals]
        wv = [w * v >> P for w, v in zip(W, vals)]
        out, h0, h1 = [], [one] * len(xs), X
        out.append(sum(wv))
        out.append(sum(map(int.__mul__, wv, h1)) >> P)
        for n in range(1, n_terms):
            h0, h1 = h1, [(x * y >> P) - n * z for x, y, z in zip(X, h1, h0)]
            out.append(sum(map(int.__mul__, wv, h1)) >> P)
        second = sum(map(int.__mul__, wv, vals)) >> Pv
        # |g| mass in the outer unit shell, times the Gaussian tail beyond it relative to the shell
        shell = sum(abs(v) for x, v in zip(xs, wv) if abs(x) > T - 1) / (math.exp(T - 1) - 1)
        if shell > tail_tol * sum(abs(v) for v in wv):
            raise _NotSmooth                 # not negligible at the edge: use the lattice rule
        return [mpmath.ldexp(mpmath.mpf(v), -Pv) for v in out], mpmath.ldexp(mpmath.mpf(second), -Pv)

    total, scale = mpmath.mpf(0), mpmath.mpf(0)
    for c, g, h in fns:
        G, g2 = moments(g, a)
        H, h2 = moments(h, b)
        s, term = mpmath.mpf(0), mpmath.mpf(1)
        for n in range(n_terms + 1):
            s += term * G[n] * H[n]
            term *= rho / (n + 1)
        total += c * s
        scale += abs(c) * mpmath.sqrt(abs(g2 * h2))
    return total, scale


@functools.lru_cache(maxsize=64)
def _hermite_rule(n: int, dps: int) -> tuple[tuple, tuple]:
    """n-point Gauss–Hermite nodes and weights for the standard normal, at ``dps`` digits."""
    with mpmath.workdps(dps + 10):
        X, W = mpmath.mp.gauss_quadrature(n, "hermite")
        r2, rpi = mpmath.sqrt(2), mpmath.sqrt(mpmath.pi)
        ys, ws = [r2 * x for x in X], [w / rpi for w in W]
    with mpmath.workdps(dps):
        return tuple(+y for y in ys), tuple(+w for w in ws)


def _hermite_nodes(s: float, digits: int) -> int:
    """Nodes for E_y[h(t + s y)] to ``digits`` when h's singularities lie ≳ 1 from the axis.

    The n-point rule is exact for polynomials of degree 2n - 1; the Taylor term of degree 2n
    of E_y[h(t + s y)] is ~ s^(2n) (2n - 1)!! for such h.
    """
    log_term, n = 0.0, 0
    while n < 200:
        n += 1
        log_term += 2 * math.log10(s) + math.log10(2 * n - 1)
        if log_term < -digits:
            return n
    return n


def _geometry(a, b, c, eta, hG, T, level=0, digits=30, joint=False):
    """Lattice of the rule with step ``eta`` (in x, y and in the native units of g(u), h(v)).

    Cholesky coordinates u = √a x, v = αx + s y (x, y independent standard normal) on the
    lattice x = k·hx, y = j·hy.  "aligned": hx = pδ/|α|, hy = qδ/s, so every v = δ(±pk + qj) lies
    on one grid of step δ and h is evaluated once per grid point (~T/δ values, not one per
    lattice point); "direct" (|ρ| close to 0, or f not separable): f is evaluated at each lattice
    point; "hermite" (s < 0.05, |ρ| -> 1: h(αx + s y) varies slowly in y): Gauss–Hermite nodes
    in y, their number growing by two per level.
    """
    ra = mpmath.sqrt(a)
    if b is None:                                         # one variable
        hx = eta * min(1, 1 / ra)
        return (ra, 0, 0, T, mpmath.mpf(hx), 0, "direct", 0, 0, 0, 1, 0)
    alpha = c / ra
    s = mpmath.sqrt(max(b - alpha * alpha, 0))
    # hx shrinks with eta (eta <= hG) on every level, so two levels are never one rule; hy stays
    # at the Gaussian step hG when h(αx + s y) varies slowly in y (s < eta/hG: |rho| -> 1), where
    # its error is below that of h at the native step eta, which the refinement in x measures
    hx = eta * min(1, 1 / ra, 1 / abs(alpha)) if alpha != 0 else eta * min(1, 1 / ra)
    hy = min(hG, eta / s) if s != 0 else mpmath.mpf(1)
    hx, hy = mpmath.mpf(hx), mpmath.mpf(hy)
    sg = 1 if alpha >= 0 else -1
    n_gh = _hermite_nodes(float(s), digits) + 2 * level if 0 < s < 0.05 else 0
    if n_gh and n_gh < 0.4 * 2 * T / float(hy):
        return (ra, alpha, s, T, hx, hy, "hermite", 0, 0, 0, sg, n_gh)
    if joint:                                   # f(u, v) evaluated at every lattice point
        return (ra, alpha, s, T, hx, hy, "direct", 0, 0, 0, sg, 0)
    if s == 0:
        mode, delta, p, q = "aligned", abs(alpha) * hx, 1, 0
    elif alpha == 0:
        mode, delta, p, q = "aligned", s * hy, 0, 1
    else:
        # hx stays the target (so it shrinks strictly level by level); hy = qδ/s in (hy/2, hy]
        r = abs(alpha) * hx / (s * hy)
        p = max(1, int(mpmath.ceil(r)))
        delta = abs(alpha) * hx / p
        q = max(1, int(p / r))
        hy = q * delta / s
        n_grid = 2 * (p * T / hx + q * T / hy)          # evaluations of h: grid vs lattice
        n_lattice = math.pi * T * T / float(hx * hy)
        mode = "aligned" if n_grid < n_lattice else "direct"
    return (ra, alpha, s, T, hx, hy, mode, delta, p, q, sg, 0)


def _lattice(f: sp.Expr, zs, M, dps: int):
    """<f> for smooth f by the lattice (trapezoid) rule with a measured error, or None.

    The trapezoid rule on the Gaussian-weighted integrand converges geometrically, at a rate set
    by the distance of f's complex singularities from the real axis.  Rules with steps
    η₀·(1/√2)^ℓ are computed until two successive ones agree to ``10^-(dps+2)`` times ``E|f|`` and
    the integrand's |f| mass beyond the disc of radius T (estimated from its outermost unit
    shell) is below that too; the finer one is returned.  None (the caller falls back to the
    panel rule) when that does not happen within a few levels or a value is not finite.
    """
    m = len(zs)
    if m == 1:
        a, b, c = M[0, 0], None, None
    else:
        a, b, c = M[0, 0], M[1, 1], M[0, 1]
        if b <= 0:
            return None
    if a <= 0:
        return None
    if m == 1:
        fns, joint = [(1, compile_expr(f.subs(zs[0], Z), [Z]).mp_function, None)], None
    else:
        parts = _separate(f, zs)
        if parts is None:
            fns, joint = None, compile_expr(f, list(zs)).mp_function
        else:
            fns = []
            for cf, g, h in parts:
                const = cf * (g if not g.free_symbols else 1) * (h if not h.free_symbols else 1)
                if const.free_symbols:
                    return None
                fns.append((mpmath.mpf(sp.N(const, mpmath.mp.dps + 5)),
                            compile_expr(g, [Z]).mp_function if g.free_symbols else None,
                            compile_expr(h, [Z]).mp_function if h.free_symbols else None))
            joint = None
    digits = dps + 6
    T = math.sqrt(2 * _LN10 * digits) + 1.0
    hG = math.pi * math.sqrt(2.0) / math.sqrt(_LN10 * digits + math.log(2.0))
    tol = mpmath.mpf(10) ** (-(dps + 2))
    P = mpmath.mp.prec + 24
    if m == 2 and joint is None and abs(c) <= _MEHLER_RHO * mpmath.sqrt(a * b):
        value = _mehler(fns, a, b, c / mpmath.sqrt(a * b), T, hG, tol, P)
        if value is not None:
            return value
    prev = None
    eta = hG
    widened = abs_levels = 0
    for level in range(_MAX_LEVELS):
        geom = _geometry(a, b, c, eta, hG, T, level, digits, joint is not None)
        # E|f| and the shell mass need ~1 digit: measured on the first two levels (after any
        # change of T or P), then kept — the finer levels compute only the value
        try:
            val, val_abs_l, shell_l = _lattice_sum(geom, fns, joint, P, with_abs=abs_levels < 2)
        except _NotSmooth:
            return None
        if abs_levels < 2:
            val_abs, shell = val_abs_l, shell_l
            abs_levels += 1
        scale = val_abs if val_abs > 0 else mpmath.mpf(1)
        tail = shell / (mpmath.exp(T - 1) - 1)
        if tail > tol * scale:
            if widened >= 2:
                return None
            T, widened, prev = T + 3.0, widened + 1, None      # the integrand is not yet negligible
            abs_levels = 0
            continue
        if val_abs > 0 and mpmath.log(val_abs, 2) + P < mpmath.mp.prec + 16:
            P += int(mpmath.mp.prec + 16 - mpmath.log(val_abs, 2) - P) + 8   # tiny values: more bits
            prev, abs_levels = None, 0
            continue
        if prev is not None and abs(val - prev) <= tol * scale:
            return val
        prev = val
        eta *= _RATIO
    return None


def _mehler(fns, a, b, rho, T, hG, tol, P):
    """Weakly correlated pairs (|ρ| ≤ 1/4): Mehler's series, with a bound on its tail.

    The number of terms makes the tail bound |ρ|^(n+1) √(<g²><h²>) ≤ tol/100 of that scale;
    the Hermite moments come from 1-D trapezoid rules with steps shrinking by 1/√2 until two
    successive sums agree to ``tol`` times √(<g²><h²>) (≥ E|gh|, Cauchy–Schwarz).
    """
    n_terms = 1 if rho == 0 else int(math.ceil(math.log(float(tol) / 100) / math.log(abs(float(rho))))) + 1
    # He_n(x) φ(x) oscillates on a scale ~ 1/√n: the steps resolve that and g, h
    eta = min(hG, 1.5 / math.sqrt(n_terms + 1))
    prev = None
    for _ in range(_MAX_LEVELS):
        hx = mpmath.mpf(min(eta / math.sqrt(float(max(a, b))), eta))
        try:
            val, scale = _mehler_sum(fns, a, b, rho, T, hx, n_terms, P, tol)
        except _NotSmooth:
            return None
        if prev is not None and abs(val - prev) <= tol * (scale if scale > 0 else 1):
            return val
        prev = val
        eta *= _RATIO
    return None


def expect_mpmath(f: sp.Expr, K, *, dps: int = 30, method: str = "auto"):
    """<f>_K at ``dps`` digits. ``K``: a number (f in z) or an m×m nested list/matrix (f in z_i).

    ``method``: ``"lattice"`` (trapezoid lattice / Mehler series for smooth integrands, raising if
    its check fails), ``"panels"`` (composite Gauss–Legendre split at kinks, raising if its check
    fails), ``"quad"`` (nested ``mpmath.quad``; slow for two variables) or ``"auto"`` (for up to two
    variables: lattice when the integrand has no kinks, else or on failure panels, then quad).

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
        if method in ("auto", "lattice") and m <= 2:
            value = None if any(kinks) else _lattice(f, zs, M, dps)
            if value is None and method == "lattice":
                raise PerturbError(f"the lattice rule did not reach {dps} digits for <{f}> "
                                   "(kinked or not smooth enough); use method='panels' or 'quad'")
            if value is not None:
                return +value
        if method in ("auto", "panels") and m <= 2:
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
