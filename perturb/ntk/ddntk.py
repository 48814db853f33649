"""The ddNTK at order 1/n, derived (one input): E[O4] and E[{Θ,Θ}] of one output.

Setting (docs/reference.md §5, one input x, one output z, NTK parameterisation): the bracket
{A, B} = Σ_μ λ_μ ∂_μA ∂_μB over all parameters, Θ = {z, z}, O3 = {Θ, z} (the dNTK,
:mod:`perturb.ntk.dntk`), and the two four-point objects that move the NTK at second order:

    O4 = {O3, z}  (dO3/dt = −η O4 ε in gradient flow),     {Θ, Θ} = Σ_μ λ_μ (∂_μΘ)².

One GD step has gᵀ(∇²Θ)g = O4 − ½{Θ, Θ} (because (∇g)g = ½λ∇Θ for g = λ∇z), so these two means
fix the O(η²) term of one step and the order-1/n NTK change over a whole run
(:mod:`perturb.dynamics.ntk_run`).  They are contractions of PDLT's ddNTKs (ch. 11): with
dd₁ = Σ λλλ ∂³z ∂z ∂z ∂z and dd₂ = Σ λλλ ∂²z ∂²z ∂z ∂z (one output, indices contracted along
g), O4 = 2 dd₁ + 4 dd₂ and {Θ, Θ} = 4 dd₂.  Nothing here is typed from there.

**How the layer map is derived** (:func:`derive_ddntk_layer_map`), mechanically in SymPy:

1. *Bracket algebra.*  A neuron a of layer ℓ+1 has z_a = b_a + Σ_p W_ap σ(z_p).  The bracket is a
   symmetric biderivation, fixed by its values on generators: {W_ap, W_bq} = δ_ab δ_pq λ_W/m,
   {b_a, b_b} = δ_ab λ_b, the layer's own parameters bracket nothing below, and for layer-ℓ
   objects {z_p, z_q} = Θ_pq, {Θ_pq, z_s} = O3_{pq,s}, {O3_{pq,s}, z_t} = O4_{pq,s,t},
   {Θ_pq, Θ_rs} = Y_{pq,rs}, {σ⁽ᵏ⁾(z_p), ·} = σ⁽ᵏ⁺¹⁾(z_p){z_p, ·}.  :func:`neuron_bracket` expands
   O4_{ab,c,d} = {{{z_a, z_b}, z_c}, z_d} and Y_{ab,cd} = {{z_a, z_b}, {z_c, z_d}} into sums over
   layer-ℓ labels (every label summed; the algebra refuses a bracket outside this set).
2. *Wick over the new rows.*  The rows W_a are independent of layer ℓ, N(0, C_W/m): every W
   monomial is replaced by its sum over pairings (δ_pq C_W/m).
3. *Index collapse.*  Each label sum is split over all coincidence patterns (set partitions of
   its labels); a pattern with k distinct neurons weighs m^k.  Its summand is evaluated at leading
   order from the laws of layer ℓ, connected cluster by cluster:
   one neuron (z_p ~ N(0, K), Θ_pp → H, E[O3_{pp,p} | z_p] = (P + 2Q) z_p/(m'K), Y_{pp,pp} → Y0/m',
   O4_{pp,p,p} → U0/m') or a pair p ≠ q (E[Θ_pq | z] = F z_p z_q/(m'K²), E[Θ_pq²] = B/m',
   E[O3_{pq,q} | z] = Q z_p/(m'K), E[O3_{pp,q} | z] = P z_q/(m'K), Y_{pp,qq} → Y1/m',
   Y_{pq,pq} → Y2/m', O4_{pp,q,q} → U1/m', O4_{pq,p,q} = O4_{pq,q,p} → U2/m').  Every summand
   whose order is not provably beyond 1/m, and whose law is not in this list, is an error —
   the derivation cannot silently drop a term.
4. *Leading order.*  The O(1/m) coefficient (m = r m', m' → ∞) is the outgoing statistic.

The four-point conditional means carry no z-dependence at this order (the z-dependent parts of
the conditional row laws bring an extra 1/m); the layer map checks this self-consistently — the
same derivation run on the two-neuron objects (a ≠ b) yields the pair laws U1, U2, Y1, Y2 that it
consumes one layer up.  The output: E[O4] = U0/n_L, E[{Θ,Θ}] = Y0/n_L.

>>> rec = derive_ddntk_layer_map()
>>> sorted(rec.exprs)
['U0', 'U1', 'U2', 'Y0', 'Y1', 'Y2']
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from ..activations import SIGMA, Z, get_activation
from ..compile import compile_expr
from ..errors import PerturbError
from ..gaussian import expect
from ..gaussian.atom import E, GaussianExpectation
from ..gaussian.dispatch import substitute_activation
from .chain import _per_layer, closed_atoms, require_finite
from .dntk import DNTKStatistics, dntk_statistics, dntk_statistics_exact

__all__ = ["DDNTK_NAMES", "DDNTKLayerMap", "DDNTKStatistics", "ddntk_statistics", "ddntk_statistics_exact",
           "derive_ddntk_layer_map", "neuron_bracket"]

#: per-layer ddNTK statistics: diagonal and pair patterns of O4 (U) and {Θ,Θ} (Y)
DDNTK_NAMES = ("U0", "U1", "U2", "Y0", "Y1", "Y2")


class NotClosedError(PerturbError):
    """A bracket outside the closed set of layer-ℓ objects was requested."""


# --------------------------------------------------------------------------- generators

_W = sp.Function("W")          # W(neuron, label): a weight of the new layer
_Bias = sp.Function("b")       # b(neuron)
_Sg = sp.Function("Sg")        # Sg(k, label) = σ^(k)(z_label)
_Th = sp.Function("Th")        # Th(p, q) = Θ_pq, symmetric
_O3 = sp.Function("O3")        # O3(p, q, s) = {Θ_pq, z_s}, symmetric in (p, q)
_Y = sp.Function("Y")          # Y(p, q, r, s) = {Θ_pq, Θ_rs}
_O4 = sp.Function("O4")        # O4(p, q, s, t) = {O3_{pq,s}, z_t}

LAM_W = sp.Symbol("lambda_W", nonnegative=True)
LAM_B = sp.Symbol("lambda_b", nonnegative=True)
CW_S = sp.Symbol("C_W", positive=True)
M = sp.Symbol("m", positive=True)


def _key(p):
    return str(p)


def th(p, q):
    return _Th(*sorted((p, q), key=_key))


def o3(p, q, s):
    return _O3(*sorted((p, q), key=_key), s)


def yy(p, q, r, s):
    a, b = sorted([tuple(sorted((p, q), key=_key)), tuple(sorted((r, s), key=_key))], key=lambda t: tuple(map(_key, t)))
    return _Y(*a, *b)


def o4(p, q, s, t):
    return _O4(*sorted((p, q), key=_key), s, t)


def sg(k, p):
    return _Sg(sp.Integer(k), p)


_label_count = itertools.count()


def _fresh():
    return sp.Symbol(f"l{next(_label_count)}")


def _is_label(s) -> bool:
    return isinstance(s, sp.Symbol) and s.name.startswith("l") and s.name[1:].isdigit()


def _labels(expr) -> set:
    return {s for s in expr.free_symbols if _is_label(s)}


def _bracket_z(p, y):
    """{z_p, y} for a layer-ℓ generator y (label p summed elsewhere)."""
    f = y.func
    if f is _Sg:
        k, q = y.args
        return sg(k + 1, q) * th(p, q)
    if f is _Th:
        return o3(*y.args, p)
    if f is _O3:
        return o4(*y.args, p)
    if f in (_W, _Bias):
        return sp.S.Zero
    raise NotClosedError(f"{{z, {y}}} is outside the closed set (z, Θ, O3, O4, Y)")


def _atom_bracket(x, y):
    """{x, y} for generators; returns (value, label substitution or None)."""
    fx, fy = x.func, y.func
    if fx is _W or fy is _W or fx is _Bias or fy is _Bias:
        if fx is _W and fy is _W and x.args[0] == y.args[0]:
            return LAM_W / M, {y.args[1]: x.args[1]}
        if fx is _Bias and fy is _Bias and x.args[0] == y.args[0]:
            return LAM_B, None
        return sp.S.Zero, None
    for u, v in ((x, y), (y, x)):
        if u.func is _Sg:
            k, p = u.args
            return sg(k + 1, p) * _bracket_z(p, v), None
    if fx is _Th and fy is _Th:
        return yy(*x.args, *y.args), None
    raise NotClosedError(f"{{{x}, {y}}} is outside the closed set (z, Θ, O3, O4, Y)")


def _factors(mono):
    """(coefficient, [(generator, power)]) of a monomial."""
    coeff, gens = sp.S.One, []
    for fac in sp.Mul.make_args(mono):
        base, exp = fac.as_base_exp()
        if isinstance(base, sp.Function) and base.func in (_W, _Bias, _Sg, _Th, _O3, _Y, _O4):
            gens.append((base, int(exp)))
        else:
            coeff *= fac
    return coeff, gens


def _rename_apart(mono, taken):
    clash = _labels(mono) & taken
    return mono.xreplace({s: _fresh() for s in clash}) if clash else mono


def bracket(A: sp.Expr, B: sp.Expr) -> sp.Expr:
    """{A, B} of two label-summed polynomials in the generators (Leibniz on every factor pair)."""
    out = []
    for ma in sp.Add.make_args(sp.expand(A)):
        ca, ga = _factors(ma)
        la = _labels(ma)
        for mb in sp.Add.make_args(sp.expand(B)):
            mb = _rename_apart(mb, la)
            cb, gb = _factors(mb)
            for i, (x, ex) in enumerate(ga):
                rest_a = ca * sp.Mul(*[g**e for j, (g, e) in enumerate(ga) if j != i]) * x ** (ex - 1) * ex
                for k, (y, ey) in enumerate(gb):
                    val, sub = _atom_bracket(x, y)
                    if val == 0:
                        continue
                    rest_b = cb * sp.Mul(*[g**e for j, (g, e) in enumerate(gb) if j != k]) * y ** (ey - 1) * ey
                    term = rest_a * rest_b * val
                    if sub:
                        term = _resub(term, sub)
                    out.append(term)
    return sp.Add(*out)


def _resub(term, sub):
    """Identify labels (δ_pq) and re-canonicalise the symmetric generators."""
    term = term.xreplace(sub)
    return term.replace(lambda e: isinstance(e, sp.Function) and e.func in (_Th, _O3, _Y, _O4),
                        lambda e: {_Th: th, _O3: o3, _Y: yy, _O4: o4}[e.func](*e.args))


def z_neuron(a: int) -> sp.Expr:
    """z_a = b_a + Σ_p W_ap σ(z_p) of the new layer (label p summed)."""
    p = _fresh()
    return _Bias(sp.Integer(a)) + _W(sp.Integer(a), p) * sg(0, p)


def neuron_bracket(kind: str, neurons: Sequence[int]) -> sp.Expr:
    """O4_{ab,c,d} (``kind="O4"``) or Y_{ab,cd} (``kind="Y"``) of new-layer neurons, expanded.

    >>> theta = neuron_bracket("Theta", (0, 0))
    >>> sorted(str(f.func) for f in theta.atoms(sp.Function) if f.func.__name__ in ("Th", "b"))
    ['Th']
    """
    zs = [z_neuron(a) for a in neurons]
    if kind == "Theta":
        return sp.expand(bracket(zs[0], zs[1]))
    if kind == "O3":
        return sp.expand(bracket(bracket(zs[0], zs[1]), zs[2]))
    if kind == "O4":
        return sp.expand(bracket(bracket(bracket(zs[0], zs[1]), zs[2]), zs[3]))
    if kind == "Y":
        return sp.expand(bracket(bracket(zs[0], zs[1]), bracket(zs[2], zs[3])))
    raise ValueError(f"kind must be Theta, O3, O4 or Y, got {kind!r}")


# --------------------------------------------------------------------------- Wick over the new rows


def _roots(pairs) -> dict:
    """Union-find: ``{item: representative}`` of the classes generated by the identified pairs."""
    parent: dict = {}

    def find(u):
        while parent.setdefault(u, u) != u:
            u = parent[u]
        return u

    for u, v in pairs:
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[rv] = ru
    return {u: find(u) for u in list(parent)}


def _matchings(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for i in range(len(rest)):
        for m in _matchings(rest[:i] + rest[i + 1:]):
            yield [(first, rest[i]), *m]


def wick_rows(expr: sp.Expr) -> sp.Expr:
    """Average over the new layer's rows W_a ~ N(0, C_W/m) (pairings identify labels)."""
    out = []
    for mono in sp.Add.make_args(sp.expand(expr)):
        coeff, gens = _factors(mono)
        rows: dict = {}
        rest = coeff
        for g, e in gens:
            if g.func is _W:
                rows.setdefault(g.args[0], []).extend([g.args[1]] * e)
            elif g.func is _Bias:
                raise AssertionError("a bias survived the brackets")  # pragma: no cover
            else:
                rest *= g**e
        if any(len(v) % 2 for v in rows.values()):
            continue
        choices = [list(_matchings(v)) for v in rows.values()]
        for combo in itertools.product(*choices):
            pairs = [pr for m in combo for pr in m]
            sub = {u: r for u, r in _roots(pairs).items() if u != r}
            term = rest * (CW_S / M) ** len(pairs)
            out.append(_resub(term, sub) if sub else term)
    return sp.Add(*out)


# --------------------------------------------------------------------------- leading-order laws

K, H, F, B, P, Q = (sp.Symbol(n, real=True) for n in ("K", "H", "F", "B", "P", "Q"))
MP = sp.Symbol("m_prev", positive=True)
STATS_IN = {n: sp.Symbol(f"{n}_in", real=True) for n in DDNTK_NAMES}


def _set_partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _set_partitions(rest):
        yield [[first], *part]
        for i in range(len(part)):
            yield part[:i] + [[first, *part[i]]] + part[i + 1:]


def _z_of(label):
    return sp.Symbol(f"z_{label}", real=True)


class _Unknown(Exception):
    pass


def _object_labels(g):
    return [a for a in g.args if _is_label(a)] if g.func is not _Sg else [g.args[1]]


def _cluster_law(objs):
    """Leading-order (value, order in 1/m') of a product of layer-ℓ objects (Sg excluded),
    conditional on the z's of its labels (independent N(0, K) at leading order)."""
    value, order = sp.S.One, 0
    pair_objs = []
    for g, e in objs:
        labs = set(_object_labels(g))
        if len(labs) == 1:
            (p,) = labs
            z = _z_of(p)
            if g.func is _Th:
                value *= H**e
            elif g.func is _O3:
                value *= ((P + 2 * Q) * z / (MP * K)) ** e
                order += e
            elif g.func is _Y:
                value *= (STATS_IN["Y0"] / MP) ** e
                order += e
            elif g.func is _O4:
                value *= (STATS_IN["U0"] / MP) ** e
                order += e
        else:
            pair_objs.append((g, e))
    if not pair_objs:
        return value, order
    labs = set().union(*[_object_labels(g) for g, _ in pair_objs])
    if len(labs) != 2:
        raise _Unknown(pair_objs)
    if len(pair_objs) > 1 or pair_objs[0][1] > 2:
        # products of two pair objects: Θ_pq is O(m'^{-1/2}) in size, the others O(1/m')
        size = sum(e * (sp.Rational(1, 2) if g.func is _Th else 1) for g, e in pair_objs)
        if size <= 1:
            raise _Unknown(pair_objs)
        return sp.S.Zero, order + size
    (g, e), = pair_objs
    p, q = sorted(labs, key=_key)
    zp, zq = _z_of(p), _z_of(q)
    if g.func is _Th:
        law = F * zp * zq / (MP * K**2) if e == 1 else B / MP
    elif e != 1:
        raise _Unknown(pair_objs)
    elif g.func is _O3:
        u, v, s = g.args
        if u == v:                    # O3_{pp,q}
            law = P * _z_of(s) / (MP * K)
        else:                         # O3_{pq,q} or O3_{pq,p}
            other = u if s == v else v
            law = Q * _z_of(other) / (MP * K)
    elif g.func is _Y:
        u, v, s, t = g.args
        if u == v and s == t:
            law = STATS_IN["Y1"] / MP
        elif u != v and s != t:
            law = STATS_IN["Y2"] / MP
        else:
            raise _Unknown(pair_objs)         # odd pattern Y_{pp,pq}
    elif g.func is _O4:
        u, v, s, t = g.args
        if u == v and s == t and s != u:
            law = STATS_IN["U1"] / MP
        elif u != v and s != t:
            law = STATS_IN["U2"] / MP
        else:
            raise _Unknown(pair_objs)         # odd patterns
    else:  # pragma: no cover
        raise _Unknown(pair_objs)
    return value * law, order + 1


def _gaussian(f_by_label):
    """Π_labels E[f_label(z)] over independent z ~ N(0, K)."""
    out = sp.S.One
    for f in f_by_label.values():
        out *= E(f, K)
    return out


def expect_collapsed(expr: sp.Expr, target_order: int = 1) -> sp.Expr:
    """Σ over labels of the leading-order expectation: the coefficient of m^{-target_order}.

    Every monomial is split over the coincidence patterns of its labels; patterns below the
    target order must vanish identically (checked), patterns at it are evaluated by the laws,
    and patterns with unknown laws raise unless provably beyond the target order.
    """
    s = SIGMA(Z)
    total = sp.S.Zero
    for mono in sp.Add.make_args(sp.expand(expr)):
        coeff, gens = _factors(mono)
        m_pow = sp.Poly(coeff, 1 / M).degree() if coeff.has(M) else 0
        coeff_nom = coeff.subs(M, 1)
        labels = sorted(_labels(mono), key=_key)
        for part in _set_partitions(labels):
            sub = {lab: blk[0] for blk in part for lab in blk}
            gens_p = {}
            for g, e in gens:
                g2 = _resub(g, sub)
                gens_p[g2] = gens_p.get(g2, 0) + e
            weight_order = m_pow - len(part)        # m^{#blocks} · m^{-m_pow}
            # clusters: connect blocks joined by an object
            reps = [blk[0] for blk in part]
            links = [(r, r) for r in reps]
            for g in gens_p:
                labs = _object_labels(g)
                links += [(labs[0], u) for u in labs[1:]]
            roots = _roots(links)
            clusters = {}
            for r in reps:
                clusters.setdefault(roots[r], []).append(r)
            value, order = coeff_nom * M ** (-weight_order), weight_order
            fz = {r: sp.S.One for r in reps}
            try:
                for cl in clusters.values():
                    objs = [(g, e) for g, e in gens_p.items() if g.func is not _Sg and set(_object_labels(g)) <= set(cl)]
                    if len(cl) > 2:
                        raise _Unknown(objs)
                    v, o = _cluster_law(objs)
                    if o == 0 and len(clusters) > 1 and weight_order <= 0:
                        raise _Unknown(objs)
                    value *= v
                    order += o
            except _Unknown as exc:
                if order + _min_extra(exc.args[0]) > target_order:
                    continue
                raise AssertionError(f"no law for {exc.args[0]} at order {order} in {mono}") from None
            if order > target_order:
                continue
            for g, e in gens_p.items():
                if g.func is _Sg:
                    k, lab = g.args
                    fz[lab] *= sp.diff(s, Z, int(k)) ** e if k else s**e
            # the z's introduced by the laws
            value = sp.expand(value)
            for t in sp.Add.make_args(value):
                c, fz_t = t, dict(fz)
                for r in reps:
                    zr = _z_of(r)
                    if t.has(zr):
                        pw = sp.degree(t, zr)
                        c = c / zr**pw
                        fz_t[r] = fz_t[r] * Z**pw
                fz_t = {r: f.subs({_z_of(r): Z}) for r, f in fz_t.items()}
                contrib = sp.expand(c) * _gaussian(fz_t)
                if order < target_order and contrib != 0:
                    raise AssertionError(f"a term of order m^-{order} survives: {mono}, pattern {part}")
                if order == target_order:
                    total += contrib
    return total


def _min_extra(objs) -> sp.Rational:
    """A lower bound on the order (in 1/m') of a product of layer-ℓ objects whose law is unknown."""
    size = sp.S.Zero
    for g, e in objs:
        labs = set(_object_labels(g))
        if g.func is _Th:
            size += 0 if len(labs) == 1 else sp.Rational(e, 2)
        elif g.func in (_O3, _Y, _O4):
            size += e
    return size


# --------------------------------------------------------------------------- the layer map


@dataclass(frozen=True)
class DDNTKLayerMap:
    """Derived leading-order layer map of the ddNTK statistics (one input).

    ``exprs[name]`` (name in :data:`DDNTK_NAMES`) is the outgoing statistic (E[O4_{aa,a,a}] =
    U0/m etc., m the width of the layer feeding the new neurons) in the incoming K, H, B, F, P, Q,
    the incoming ``<name>_in``, C_W, λ_W, r = m/m' and the Gaussian atoms of the generic σ.
    """

    exprs: dict

    def __getitem__(self, name: str) -> sp.Expr:
        return self.exprs[name]


_PATTERNS = {
    "U0": ("O4", (0, 0, 0, 0)),
    "U1": ("O4", (0, 0, 1, 1)),
    "U2": ("O4", (0, 1, 0, 1)),
    "Y0": ("Y", (0, 0, 0, 0)),
    "Y1": ("Y", (0, 0, 1, 1)),
    "Y2": ("Y", (0, 1, 0, 1)),
}

R_SYM = sp.Symbol("r", positive=True)


@functools.lru_cache(maxsize=1)
def derive_ddntk_layer_map() -> DDNTKLayerMap:
    """Derive the layer map of (U0, U1, U2, Y0, Y1, Y2) for the generic σ (cached)."""
    exprs = {}
    for name, (kind, neurons) in _PATTERNS.items():
        avg = wick_rows(neuron_bracket(kind, neurons))
        lead = expect_collapsed(avg, target_order=1)
        # m · (coefficient of 1/m); the laws carry 1/m' = r/m
        exprs[name] = sp.expand(lead.subs(MP, M / R_SYM) * M)
        if exprs[name].has(M):
            raise AssertionError(f"{name}: width left over")  # pragma: no cover
    return DDNTKLayerMap(exprs)


# --------------------------------------------------------------------------- folds

def _args() -> list:
    """Argument order of the compiled layer map (before the atoms)."""
    return [K, H, B, F, P, Q, *[STATS_IN[n] for n in DDNTK_NAMES], CW_S, LAM_W, R_SYM]


@dataclass(frozen=True)
class DDNTKStatistics:
    """Per-layer ddNTK statistics on top of the dNTK and NTK statistics (one input).

    Attributes:
        dntk: the :class:`~perturb.ntk.dntk.DNTKStatistics` (K, H, B, F, ... and P, Q).
        layers: ``layers[name]`` over ℓ = 1..L+1 for name in :data:`DDNTK_NAMES` (PDLT
            normalisation: E[O4] of a layer-ℓ neuron is U0/n_{ℓ−1}).
    """

    dntk: DNTKStatistics
    layers: dict

    @property
    def widths(self):
        return self.dntk.widths

    @property
    def o4(self):
        """E[O4] = E[{{Θ, z}, z}] of the output at order 1/n: U0/n_L."""
        return self.layers["U0"][-1] / self.widths[-1]

    @property
    def tt(self):
        """E[{Θ, Θ}] = E[Σ_μ λ_μ (∂_μΘ)²] of the output at order 1/n: Y0/n_L."""
        return self.layers["Y0"][-1] / self.widths[-1]

    @property
    def curvature(self):
        """E[gᵀ(∇²Θ)g] = E[O4] − ½E[{Θ, Θ}] at order 1/n (the one-step η² kernel)."""
        return self.o4 - self.tt / 2


def _almost_everywhere(expr: sp.Expr) -> sp.Expr:
    """Kinked σ: σ^(k≥2) at its almost-everywhere value (DiracDelta and its derivatives → 0)."""
    return expr.replace(sp.DiracDelta, lambda *a: sp.S.Zero) if expr.has(sp.DiracDelta) else expr


def _activation_exprs(activation):
    act = get_activation(activation)
    if act.is_generic:
        raise PerturbError("the ddNTK statistics need a concrete activation (relu, tanh, gelu, ...)")
    rec = derive_ddntk_layer_map()
    exprs = {}
    for k in DDNTK_NAMES:
        e = substitute_activation(rec.exprs[k], act)
        exprs[k] = e.replace(lambda a: isinstance(a, GaussianExpectation),
                             lambda a: E(_almost_everywhere(a.args[0]), a.args[1]))
    atoms = sorted(set().union(*[e.atoms(GaussianExpectation) for e in exprs.values()]), key=sp.default_sort_key)
    return rec, exprs, atoms


@functools.lru_cache(maxsize=32)
def _compiled(activation_name: str):
    rec, exprs, atoms = _activation_exprs(activation_name)
    leaves = [sp.Dummy(f"e{i}") for i in range(len(atoms))]
    fns = {k: compile_expr(e.xreplace(dict(zip(atoms, leaves, strict=True))), _args() + leaves)
           for k, e in exprs.items()}
    return [a.args[0] for a in atoms], fns


def ddntk_statistics(activation, widths: Sequence[int], x, *, C_W=1.0, C_b=0.0, lambda_W=None,
                     lambda_b=None, dps: int | None = None) -> DDNTKStatistics:
    """E[O4] and E[{Θ, Θ}] of one output at order 1/n, by folding the derived map over depth.

    Same arguments as :func:`~perturb.ntk.chain.ntk_statistics` (λ = C by default).  For kinked
    σ (ReLU) the derivatives of order ≥ 2 are the almost-everywhere ones (zero): the
    distributional ddNTK has δ(z)² atoms, and what gradient descent feels at a kink is the
    O(η/√n) crossing effect documented in docs/dynamics.md, not a 1/n term.

    >>> st = ddntk_statistics("linear", [100, 100], [1.0], C_W=1.0, C_b=0.0)
    >>> round(float(st.o4 * 100), 10)      # = 3 E[z O3]·100 (Stein: z is degree 1 in 3 matrices)
    48.0
    """
    dn = dntk_statistics(activation, widths, x, C_W=C_W, C_b=C_b, lambda_W=lambda_W, lambda_b=lambda_b, dps=dps)
    ntk = dn.ntk
    L1 = len(ntk.widths) + 1
    cw = _per_layer(C_W, L1, "C_W", strict=True)
    lw = cw if lambda_W is None else _per_layer(lambda_W, L1, "lambda_W")
    act = get_activation(activation)
    integrands, fns = _compiled(act.name)
    ws = ntk.widths
    zero = 0 * ntk.layers["K"][0]
    state = dict.fromkeys(DDNTK_NAMES, zero)
    layers = {k: [zero] for k in DDNTK_NAMES}
    for ell in range(1, L1):
        incoming = [ntk.layers[n][ell - 1] for n in ("K", "H", "B", "F")] + [dn.layers[n][ell - 1] for n in ("P", "Q")]
        K_ = incoming[0]
        r = (ws[ell - 1] / ws[ell - 2]) if ell > 1 else 1.0
        if dps:
            with mpmath.workdps(dps + 10):
                atoms = [expect(f, K_, method="mpmath", dps=dps + 5) for f in integrands]
                args = [*incoming, *[state[k] for k in DDNTK_NAMES], mpmath.mpf(cw[ell]), mpmath.mpf(lw[ell]),
                        mpmath.mpf(ws[ell - 1]) / ws[ell - 2] if ell > 1 else mpmath.mpf(1), *atoms]
            state = {k: fns[k].mpmath(*args, dps=dps + 10) for k in DDNTK_NAMES}
        else:
            atoms = [expect(f, K_) for f in integrands]
            args = [*incoming, *[state[k] for k in DDNTK_NAMES], np.asarray(cw[ell], float),
                    np.asarray(lw[ell], float), r, *atoms]
            state = {k: np.asarray(fns[k](*args), dtype=float)[()] for k in DDNTK_NAMES}
            require_finite(state, ell + 1)
        for k in DDNTK_NAMES:
            layers[k].append(state[k])
    return DDNTKStatistics(dn, layers)


def ddntk_statistics_exact(activation, widths: Sequence, x, *, C_W=1, C_b=0, lambda_W=None,
                           lambda_b=None) -> DDNTKStatistics:
    """The same fold in exact SymPy arithmetic (every atom needs a closed form).

    >>> st = ddntk_statistics_exact("relu", [10, 10], [1], C_W=2, C_b=0)
    >>> st.o4 * 10
    384
    """
    dn = dntk_statistics_exact(activation, widths, x, C_W=C_W, C_b=C_b, lambda_W=lambda_W, lambda_b=lambda_b)
    ntk = dn.ntk
    L1 = len(ntk.widths) + 1
    cw = [sp.nsimplify(v) for v in _per_layer(C_W, L1, "C_W")]
    lw = cw if lambda_W is None else [sp.nsimplify(v) for v in _per_layer(lambda_W, L1, "lambda_W")]
    rec, exprs, atoms = _activation_exprs(activation)
    closed = closed_atoms(atoms, K, "ddntk_statistics")
    exprs = {k: e.xreplace(closed) for k, e in exprs.items()}
    ws = ntk.widths
    state = dict.fromkeys(DDNTK_NAMES, sp.S.Zero)
    layers = {k: [sp.S.Zero] for k in DDNTK_NAMES}
    for ell in range(1, L1):
        r = ws[ell - 1] / ws[ell - 2] if ell > 1 else sp.S.One
        sub = {K: ntk.layers["K"][ell - 1], H: ntk.layers["H"][ell - 1], B: ntk.layers["B"][ell - 1],
               F: ntk.layers["F"][ell - 1], P: dn.layers["P"][ell - 1], Q: dn.layers["Q"][ell - 1],
               CW_S: cw[ell], LAM_W: lw[ell], R_SYM: r}
        sub.update({STATS_IN[k]: state[k] for k in DDNTK_NAMES})
        state = {k: sp.simplify(exprs[k].xreplace(sub)) for k in DDNTK_NAMES}
        for k in DDNTK_NAMES:
            layers[k].append(state[k])
    return DDNTKStatistics(dn, layers)
