"""The layer map of the collective observables, derived to order (1/n)^k.

Given layer ℓ (width m), the observables of layer ℓ+1 (:mod:`perturb.engine.observables`,
width n) are sums over neurons.  The engine derives the law of layer ℓ+1 from that of layer ℓ in
three mechanical steps:

1. **Index patterns.**  A product of observables is a sum over neuron indices; it is split by
   which indices coincide (set partitions).  A pattern with ν distinct neurons counts
   n(n−1)…(n−ν+1) times; coinciding indices turn an NTK factor Θ_ik into the diagonal
   Θ_ii = Ω + :W_i M W_i:.  Distinct neurons have independent weight rows given layer ℓ.
2. **Row contraction** (:mod:`perturb.engine.wick`): Gaussian integration by parts over each
   row gives the *exact* conditional expectation as a polynomial in the observables of layer ℓ
   (Σ, Ω, T_a/m^{a−1}, R_a/m^a) with Gaussian-expectation atoms <F h_d>_Σ as coefficients.
3. **Averaging** (as :mod:`perturb.finite.layer` does for Σ alone): every function of Σ is
   Taylor-expanded around the reference value K (derivatives by Price's theorem in its
   Hermite form, :mod:`perturb.gaussian.atom`), every observable X is written X̄ + δX around its
   reference X̄ (its infinite-width mean), and the monomials Π δX^{a_X} are replaced by the
   incoming moments M_a = E Π δX^{a_X} = Σ_{e ≥ ⌈|a|/2⌉} M[a]_e m^{−e}; the result is truncated
   at total order k in 1/n (with m = n/r).

The outgoing moments E Π (X' − X̄')^{b} are derived this way for every multi-index b that the
requested statistics need; their expressions need incoming moments, which are derived in turn
(a work list, closed when no new moment appears).  The references X̄' are the order-0 means.

>>> lm = derive_layer_map(order=1)
>>> sorted(lm.words)
['O', 'R1', 'S', 'T2']
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field

import sympy as sp
from sympy.utilities.iterables import multiset_partitions

from .._diskcache import disk_cached
from ..errors import NotImplementedOrderError, PerturbError
from ..gaussian.atom import E
from .observables import OUT, Summand, word, word_sort_key
from .wick import contract_graph, hermite_weight

__all__ = ["MultiIndex", "StateSymbols", "SYMS", "moment_symbol", "ref_symbol", "word_symbol",
           "conditional_expectation", "conditional_law", "average", "LayerMap", "derive_layer_map", "map_is_cached", "MAX_ORDER"]

#: a moment multi-index: sorted ((word name, power), ...)
MultiIndex = tuple[tuple[str, int], ...]

#: highest order in 1/n offered (cost grows quickly beyond; see docs/ntk.md)
MAX_ORDER = 2


@dataclass(frozen=True)
class StateSymbols:
    S: sp.Symbol        # conditioning value of Σ of layer ℓ
    m: sp.Symbol        # width of layer ℓ
    n: sp.Symbol        # width of layer ℓ+1
    r: sp.Symbol        # n/m
    eps: sp.Symbol      # 1/n


SYMS = StateSymbols(sp.Symbol("S", positive=True), sp.Symbol("m", positive=True), sp.Symbol("n", positive=True),
                    sp.Symbol("r", positive=True), sp.Symbol("epsilon", positive=True))

_REF_NAMES = {"S": ("K", dict(positive=True)), "O": ("H", dict(positive=True)), "T2": ("B", dict(real=True)),
              "R1": ("F", dict(real=True))}


@functools.cache
def word_symbol(name: str) -> sp.Symbol:
    """The conditioning value of observable ``name`` of layer ℓ (Σ is :data:`SYMS.S`)."""
    if name == "S":
        return SYMS.S
    if name == "O":
        return sp.Symbol("Omega", real=True)
    return sp.Symbol(f"{name[0]}_{name[1:]}", real=True)


@functools.cache
def ref_symbol(name: str) -> sp.Symbol:
    """The reference (infinite-width mean) of observable ``name``: K, H, B, F, or X̄."""
    nm, assumptions = _REF_NAMES.get(name, (f"{name[0]}bar_{name[1:]}", dict(real=True)))
    return sp.Symbol(nm, **assumptions)


@functools.cache
def _out_ref_symbol(name: str) -> sp.Symbol:
    return sp.Symbol(f"{ref_symbol(name).name}_out", real=True)


def mi_label(a: MultiIndex) -> str:
    return "*".join(w if p == 1 else f"{w}^{p}" for w, p in a)


@functools.cache
def moment_symbol(a: MultiIndex, e: int) -> sp.Symbol:
    """The order-e coefficient (in 1/width) of the moment E Π δX^{a_X} (about the references)."""
    return sp.Symbol(f"M[{mi_label(a)}]_{e}", real=True)


def normalize_mi(counts: dict) -> MultiIndex:
    return tuple(sorted(((w, p) for w, p in counts.items() if p), key=lambda t: word_sort_key(t[0])))


def degree(a: MultiIndex) -> int:
    return sum(p for _, p in a)


# ----------------------------------------------------------------------------- steps 1 and 2


@functools.cache
def _atom(F: sp.Expr, d: int) -> sp.Expr:
    return E(sp.expand(F * hermite_weight(d, SYMS.S)), SYMS.S)


def _falling(n, k: int):
    return sp.Mul(*[n - j for j in range(k)])


@functools.cache
def _rows_expectation(F: tuple, diag: tuple, off: tuple) -> sp.Expr:
    """E[Π_r F_r(z_r) Π_diag Θ_rr Π_off Θ_ab | layer ℓ] for distinct rows r (exact).

    Each diagonal factor is Ω or the normal-ordered edge; the edges are contracted row by row.
    """
    m = SYMS.m
    Om = word_symbol("O")
    nu = len(F)
    total = sp.S.Zero
    for k in range(len(diag) + 1):
        for chosen in itertools.combinations(range(len(diag)), k):
            edges = tuple(list(off) + [(diag[j][0], diag[j][1], True) for j in chosen])
            term = sp.S.Zero
            for (ds, cycles, chains), mult in contract_graph(nu, edges).items():
                t = sp.Integer(mult)
                for r in range(nu):
                    t *= _atom(F[r], ds[r])
                    if t == 0:
                        break
                if t == 0:
                    continue
                for a in cycles:
                    t *= word_symbol(f"T{a}") / m ** (a - 1)
                for a in chains:
                    t *= word_symbol(f"R{a}") / m**a
                term += t
            total += Om ** (len(diag) - k) * term
    return total


def conditional_law(funcs: tuple, thetas: tuple) -> sp.Expr:
    """E[Π_r F_r(z_r) Π_{(a,b)} Θ_ab | layer ℓ] for distinct neurons r of layer ℓ+1, derived.

    >>> from perturb.activations import Z
    >>> conditional_law((Z**2,), ((0, 0),))      # E[z² Θ | ℓ] = ΣΩ + 2R_1/m
    Omega*S + 2*R_1/m
    """
    return sp.expand(_rows_expectation(tuple(funcs), tuple((a, b) for a, b in thetas if a == b),
                                       tuple((a, b, False) for a, b in thetas if a != b)))


@functools.cache
def _pattern_sum(summands: tuple[Summand, ...]) -> sp.Expr:
    """E[Π_s (Σ_indices summand_s) | layer ℓ] / n^{#summands}, exactly."""
    offsets, funcs, thetas = [], [], []
    coef = sp.S.One
    for s in summands:
        off = len(funcs)
        offsets.append(off)
        funcs.extend(s.funcs)
        thetas.extend((a + off, b + off) for a, b in s.thetas)
        coef *= s.coef
    N = len(funcs)
    n = SYMS.n
    total = sp.S.Zero
    for part in multiset_partitions(list(range(N))):
        row_of = {i: r for r, block in enumerate(part) for i in block}
        nu = len(part)
        F = [sp.Mul(*[funcs[i] for i in block]) for block in part]
        diag = [(row_of[a], row_of[b]) for a, b in thetas if row_of[a] == row_of[b]]
        off = [(row_of[a], row_of[b], False) for a, b in thetas if row_of[a] != row_of[b]]
        count = _falling(n, nu) / n ** len(summands)
        total += count * _rows_expectation(tuple(F), tuple(diag), tuple(off))
    return sp.expand(coef * total)


def conditional_expectation(names: tuple[str, ...], shifts: tuple | None = None) -> sp.Expr:
    """E[Π_t (X'_t − shift_t) | layer ℓ] for observables of layer ℓ+1, exactly.

    >>> from perturb.engine.observables import OUT
    >>> ce = conditional_expectation(("O",))
    >>> ce.has(OUT.lam_b), ce.has(word_symbol("R1"))
    (True, True)
    """
    shifts = shifts or (sp.S.Zero,) * len(names)
    choices = []
    for nm, sh in zip(names, shifts):
        w = word(nm)
        opts = []
        if w.const - sh != 0:
            opts.append((w.const - sh, None))
        opts.extend((sp.S.One, s) for s in w.summands)
        choices.append(opts)
    total = sp.S.Zero
    for combo in itertools.product(*choices):
        c = sp.Mul(*[x for x, _ in combo])
        sums = tuple(s for _, s in combo if s is not None)
        total += c * (_pattern_sum(sums) if sums else 1)
    return total


# ----------------------------------------------------------------------------- step 3


@functools.cache
def _atom_series(atom: sp.Expr, D: int) -> tuple[sp.Expr, ...]:
    """Taylor coefficients ∂_S^j atom / j! at S = K, j = 0..D (Price's rule, Hermite form)."""
    if D == 0:
        return (atom.xreplace({SYMS.S: ref_symbol("S")}),)
    prev = _atom_series(atom, D - 1)
    dj = _derivative(atom, D)
    return prev + (sp.expand(dj.xreplace({SYMS.S: ref_symbol("S")}) / math.factorial(D)),)


@functools.cache
def _derivative(atom: sp.Expr, j: int) -> sp.Expr:
    return atom if j == 0 else sp.expand(sp.diff(_derivative(atom, j - 1), SYMS.S))


def _factor_series(f: sp.Expr, D: int) -> list[sp.Expr]:
    """Series in δS = S − K (degree ≤ D) of one factor of a term (an atom power or a power of S)."""
    base, p = f.as_base_exp()
    K = ref_symbol("S")
    if base == SYMS.S:
        return [sp.binomial(p, j) * K ** (p - j) for j in range(D + 1)]
    s = list(_atom_series(base, D))
    out = s
    for _ in range(int(p) - 1):
        out = _mul_series(out, s, D)
    return out


def _mul_series(a: list, b: list, D: int) -> list:
    out = [sp.S.Zero] * (D + 1)
    for i, x in enumerate(a):
        if x == 0:
            continue
        for j, y in enumerate(b[: D + 1 - i]):
            if y != 0:
                out[i + j] += x * y
    return [sp.expand(v) for v in out]


def average(expr: sp.Expr, order: int, expand: bool = True) -> tuple[dict[int, sp.Expr], dict, set]:
    """Average a conditional expectation over layer ℓ and truncate at order ``order`` in 1/n.

    ``expr`` is a polynomial in the observables of layer ℓ (and n, m) with atoms at Σ = S.
    Returns ``({e: coefficient of n^{−e}}, {incoming moment used: highest order of it used},
    observables whose reference is used)``.  Each term is expanded separately: atoms (and powers of S) as truncated series
    in δS, the other observables shifted binomially around their references.
    """
    eps, r = SYMS.eps, SYMS.r
    x = sp.expand(expr.xreplace({SYMS.n: 1 / eps, SYMS.m: 1 / (r * eps)}))
    wsyms = {word_symbol(w): w for w in ("O",)}
    out: dict[int, list] = {}
    used_moments: dict = {}
    used_refs: set = set()
    for term in sp.Add.make_args(x):
        e0 = 0
        words: dict[str, int] = {}
        sfac: list = []
        const = sp.S.One
        for f in sp.Mul.make_args(term):
            base, p = f.as_base_exp()
            if base == eps:
                e0 += int(p)
            elif base == SYMS.S or isinstance(base, E):
                sfac.append(f)
            elif isinstance(base, sp.Symbol) and (base in wsyms or base.name[:2] in ("T_", "R_")):
                nm = wsyms.get(base) or base.name[0] + base.name[2:]
                words[nm] = words.get(nm, 0) + int(p)
            elif f.has(SYMS.S):  # pragma: no cover - the contraction produces only these forms
                raise AssertionError(f"unexpected factor {f}")
            else:
                const *= f
        if e0 > order:
            continue
        D = 2 * (order - e0)
        series = [sp.S.One] + [sp.S.Zero] * D
        for f in sfac:
            series = _mul_series(series, _factor_series(f, D), D)
        names = sorted(words, key=word_sort_key)
        powers = [words[w] for w in names]
        for js in itertools.product(*[range(p + 1) for p in powers]):
            dj = sum(js)
            if e0 + (dj + 1) // 2 > order:
                continue
            base = const
            for w, p, j in zip(names, powers, js):
                base *= math.comb(p, j) * ref_symbol(w) ** (p - j)
            for jS, coef in enumerate(series):
                if coef == 0 or e0 + (dj + jS + 1) // 2 > order:
                    continue
                used_refs.update(w for w, p, j in zip(names, powers, js) if p - j)
                counts = {w: j for w, j in zip(names, js)}
                if jS:
                    counts["S"] = jS
                a = normalize_mi(counts)
                if not a:
                    out.setdefault(e0, []).append(base * coef)
                    continue
                for e2 in range((degree(a) + 1) // 2, order - e0 + 1):
                    used_moments[a] = max(used_moments.get(a, 0), e2)
                    out.setdefault(e0 + e2, []).append(base * coef * r**e2 * moment_symbol(a, e2))
    used_refs.add("S")
    total = {e: sp.Add(*v) for e, v in sorted(out.items())}
    return ({e: sp.expand(v) for e, v in total.items()} if expand else total), used_moments, used_refs


# ----------------------------------------------------------------------------- the closure


@dataclass
class LayerMap:
    """The derived layer map at order k.

    Attributes:
        order: k.
        words: observables followed (their references are mapped).
        refs: ``{name: X̄' expression}`` in the incoming references and atoms at K.
        moments: ``{multi-index: {e: expression}}``: the outgoing moment coefficients M'[a]_e.
        targets: requested output statistics ``{label: {e: expression}}`` (see
            :func:`derive_layer_map`).
    """

    order: int
    words: set = field(default_factory=set)
    refs: dict = field(default_factory=dict)
    moments: dict = field(default_factory=dict)
    targets: dict = field(default_factory=dict)

    def args(self) -> list[sp.Symbol]:
        """Incoming symbols in a fixed order: references, moment coefficients, C's, λ's, r."""
        refs = [ref_symbol(w) for w in sorted(self.words, key=word_sort_key)]
        moms = [moment_symbol(a, e) for a in self.moment_keys() for e in sorted(self.moments[a])]
        return refs + moms + [OUT.C_W, OUT.C_b, OUT.lam_W, OUT.lam_b, SYMS.r]

    def moment_keys(self) -> list[MultiIndex]:
        return sorted(self.moments, key=lambda a: (degree(a), [(word_sort_key(w), p) for w, p in a]))


def _reference(name: str) -> tuple[sp.Expr, set, set]:
    vals, used_m, used_r = average(conditional_expectation((name,)), 0)
    if used_m:  # pragma: no cover - a derivation error
        raise AssertionError(f"reference of {name} uses moments {used_m}")
    return vals.get(0, sp.S.Zero), used_m, used_r


def _moment(a: MultiIndex, order: int, refs: dict) -> tuple[dict, set, set]:
    names = tuple(w for w, p in a for _ in range(p))
    shifts = tuple(_out_ref_symbol(w) for w in names)
    vals, used_m, used_r = average(conditional_expectation(names, shifts), order, expand=False)
    sub = {_out_ref_symbol(w): refs[w] for w in set(names)}
    out = {}
    for e, v in vals.items():
        v = sp.expand(v.xreplace(sub))
        if v == 0:
            continue
        if e < (degree(a) + 1) // 2:
            from ..gaussian.atom import atom_canonical

            if atom_canonical(v) != 0:  # pragma: no cover - a derivation error
                raise AssertionError(f"moment {mi_label(a)} has a non-vanishing order-{e} part")
            continue
        out[e] = v
    return out, used_m, used_r


def _output_targets(order: int) -> dict[str, sp.Expr]:
    """Statistics of one output neuron z, Θ = Θ_ii of the last layer, conditional on the layer below."""
    from ..activations import Z

    Om = word_symbol("O")
    m = SYMS.m
    # one row, Θ_ii = Ω + :W M W:, F(z) a polynomial: the same contraction as in _pattern_sum
    def one_row(F, k):
        total = sp.S.Zero
        for j in range(k + 1):
            edges = tuple((0, 0, True) for _ in range(j))
            term = sp.S.Zero
            for (ds, cycles, chains), mult in contract_graph(1, edges).items():
                t = mult * _atom(F, ds[0])
                for c in cycles:
                    t *= word_symbol(f"T{c}") / m ** (c - 1)
                for c in chains:
                    t *= word_symbol(f"R{c}") / m**c
                term += t
            total += math.comb(k, j) * Om ** (k - j) * term
        return sp.expand(total)

    return {"E[Theta]": one_row(sp.S.One, 1), "E[Theta^2]": one_row(sp.S.One, 2),
            "E[z^2]": one_row(Z**2, 0), "E[z^2 Theta]": one_row(Z**2, 1)}


def _derive_layer_map(order: int, progress=None) -> LayerMap:
    lm = LayerMap(order=order)
    need: dict = {}            # moment multi-index -> highest order needed
    todo_w: set = {"S", "O"}
    for label, expr in _output_targets(order).items():
        # the output's own width is irrelevant: express in the incoming width m (r = 1, ε = 1/m)
        vals, used_m, used_r = average(expr.xreplace({SYMS.m: SYMS.n}), order)
        lm.targets[label] = {e: v.xreplace({SYMS.r: 1}) for e, v in vals.items()}
        for a, e in used_m.items():
            need[a] = max(need.get(a, 0), e)
        todo_w |= used_r
    done: dict = {}
    while True:
        for w in sorted(todo_w - lm.words, key=word_sort_key):
            lm.refs[w], _, used_r = _reference(w)
            lm.words.add(w)
            todo_w |= used_r
        if todo_w - lm.words:
            continue
        pending = [a for a, e in need.items() if done.get(a, -1) < e]
        if not pending:
            break
        a = min(pending, key=lambda b: (degree(b), b))
        todo_w.update(w for w, _ in a)
        missing = todo_w - lm.words
        if missing:
            continue
        lm.moments[a], used_m, used_r = _moment(a, need[a], lm.refs)
        done[a] = need[a]
        if progress is not None:
            progress(a, need[a])
        for b, e in used_m.items():
            need[b] = max(need.get(b, 0), e)
        todo_w |= used_r
    return lm


def map_is_cached(order: int) -> bool:
    """Whether the order-``order`` map is already in memory or in the disk cache (no derivation)."""
    from .. import _diskcache

    try:
        path = _diskcache._path(f"{__name__}.derive_layer_map", (order,))
    except OSError:  # pragma: no cover
        return False
    return path is not None and path.is_file()


@functools.lru_cache(maxsize=4)
@disk_cached
def derive_layer_map(order: int = 1) -> LayerMap:
    """The derived layer map of the NTK hierarchy at one input to order (1/n)^``order``.

    >>> lm = derive_layer_map(1)
    >>> lm.refs["S"]
    C_W*E(sigma(z)**2, K) + C_b
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise PerturbError(f"order must be a non-negative integer, got {order!r}")
    if order > MAX_ORDER:
        raise NotImplementedOrderError(f"order {order} is beyond the implemented limit (order <= {MAX_ORDER})")
    return _derive_layer_map(order)
