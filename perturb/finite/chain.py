"""The finite-width chain: fold the derived layer map over depth, symbolically or numerically.

:class:`FiniteWidth` is the engine's user-facing object.  It holds one derived
:class:`~perturb.finite.layer.LayerMap` (generic σ, n inputs, order k), plans which moments of
which layer a target needs (walking the map's dependencies backwards from the output), and

* builds the expression graph of exactly those quantities (:meth:`FiniteWidth.graph`), each
  node an expression in its parents' symbols — what LaTeX derivations walk;
* evaluates them numerically, vectorised over any grid of C_W, C_b, widths and input norms
  (:meth:`FiniteWidth.evaluate`): the layer map is compiled once per (moment, order) and the
  Gaussian-expectation atoms are computed once per layer (closed form where registered,
  quadrature otherwise) — or at any precision with ``dps`` (mpmath);
* folds it exactly in SymPy when every atom has a closed form (:meth:`FiniteWidth.symbolic`).

Conventions (docs/conventions.md, docs/reference.md §3): Σ^{(0)} = K^{(1)} is deterministic; Σ^{(ℓ)}, ℓ = 1..L, is the
collective observable of hidden layer ℓ (width n_ℓ, next-layer C_W^{(ℓ+1)}, C_b^{(ℓ+1)}); the
output z = z^{(L+1)} is N(0, Σ^{(L)}) given Σ^{(L)}, so κ_{2j}(z) = (2j−1)!! κ_j(Σ^{(L)}).

>>> fw = FiniteWidth("relu", depth=3, order=2)
>>> stats = fw.evaluate(K1=1.0, widths=[10, 10, 10], C_W=2.0)
>>> round(float(stats.total_moment(4)), 10)        # 3 K² (1 + 15/n + 75/n²) for ReLU at C_W = 2
9.75
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from .._compiled_cache import payload, restore
from .._diskcache import disk_memo
from ..activations import get_activation
from ..compile import compile_expr
from ..errors import PerturbError
from ..gaussian import closed_form, expect
from ..gaussian.atom import GaussianExpectation
from ..gaussian.dispatch import substitute_activation
from . import series as S
from .layer import LayerMap, MultiIndex, layer_map, moment_symbol

__all__ = ["FiniteWidth", "OneInputStatistics", "MultiInputStatistics", "Node"]

Node = tuple  # ("M", layer, a, e) | ("K", layer, pair)


def _ceil_half(x: int) -> int:
    return (x + 1) // 2


def _per_layer(value, n: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise PerturbError(f"{name} has {len(value)} entries; expected {n} (one per layer 1..L+1)")
        return list(value)
    return [value] * n


def _check_positive(name, v, strict=True):
    arr = np.asarray(v, dtype=float) if not isinstance(v, (sp.Basic, mpmath.mpf)) else None
    if arr is not None:
        if not np.all(np.isfinite(arr)):
            raise PerturbError(f"{name} must be finite, got {v!r}")
        if strict and np.any(arr <= 0) or (not strict and np.any(arr < 0)):
            raise PerturbError(f"{name} must be {'> 0' if strict else '>= 0'}, got {v!r}")


@dataclass(frozen=True)
class OneInputStatistics:
    """Output statistics at one input, each a series {order e: value} in 1/n.

    ``moments[m]`` is E z^m and ``cumulants[m]`` is κ_m(z) (m = 2, 4, 6, 8), truncated at ``order``;
    ``K`` is the infinite-width variance K^{(L+1)}.
    """

    K: object
    order: int
    moments: dict = field(default_factory=dict)
    cumulants: dict = field(default_factory=dict)

    def total_moment(self, m: int):
        return S.total(self.moments[m])

    def total_cumulant(self, m: int):
        return S.total(self.cumulants[m])

    def series(self, kind: str, m: int) -> list:
        """[c_0, c_1, ..., c_k]: the contribution of each order."""
        src = self.moments if kind == "moments" else self.cumulants
        return [src[m].get(e, 0 * self.K) for e in range(self.order + 1)]


@dataclass(frozen=True)
class MultiInputStatistics:
    """Two-point and connected four-point statistics over several inputs, as series in 1/n.

    ``mean[(α, β)]`` = E[z_α z_β] (one output neuron) = K + G1/n + …;
    ``cov[(p, q)]`` = Cov(Σ_p, Σ_q) at the last hidden layer, so that the connected four-point
    function of one output neuron is κ(z_α1, z_α2, z_α3, z_α4) = cov[(α1α2),(α3α4)] + 2 perms.
    """

    K: dict
    order: int
    mean: dict
    cov: dict

    def kappa4(self, a1, a2, a3, a4):
        def c(p, q):
            return S.total(self.cov[(tuple(sorted(p)), tuple(sorted(q)))]) if \
                (tuple(sorted(p)), tuple(sorted(q))) in self.cov else \
                S.total(self.cov[(tuple(sorted(q)), tuple(sorted(p)))])
        return c((a1, a2), (a3, a4)) + c((a1, a3), (a2, a4)) + c((a1, a4), (a2, a3))


class FiniteWidth:
    """The 1/n expansion of a deep fully connected network, derived by the engine.

    Args:
        activation: activation spec (``"generic"`` keeps σ symbolic).
        depth: number of hidden layers L.
        order: truncation order k in 1/n.
        n_inputs: number of inputs (1: any order up to 6; 2 to 4 inputs: order 1).
        max_moment: one input: the highest moment of Σ^{(L)} tracked (4 gives z⁸).
    """

    def __init__(self, activation="generic", *, depth: int, order: int = 1, n_inputs: int = 1,
                 max_moment: int = 4):
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
            raise PerturbError(f"depth (number of hidden layers) must be a positive integer, got {depth!r}")
        self.activation = get_activation(activation)
        self.depth = int(depth)
        self.order = order
        self.n_inputs = n_inputs
        self.lm: LayerMap = layer_map(n_inputs, order)
        self.max_moment = max_moment
        self._compiled: dict = {}
        self._loaded = False

    # ------------------------------------------------------------------ planning

    def output_targets(self) -> set[tuple[MultiIndex, int]]:
        """The moments (a, e) of Σ^{(L)} the output statistics need."""
        degree = self.max_moment if self.n_inputs == 1 else 2
        return {(a, e) for a in self.lm.multi_indices(degree)
                for e in self.lm.moment(a) if e >= _ceil_half(sum(a))}

    @functools.cached_property
    def plan(self) -> dict[int, set[tuple[MultiIndex, int]]]:
        """{layer ℓ: the moments (a, e) of Σ^{(ℓ)} needed}, built backwards from the output."""
        need = {self.depth: self.output_targets()}
        for ell in range(self.depth, 1, -1):
            below = set()
            for a, e in need[ell]:
                for sym in self.lm.moment(a).get(e, sp.S.Zero).free_symbols:
                    key = _parse_moment_symbol(sym)
                    if key is not None:
                        below.add(key)
            need[ell - 1] = below
        return need

    # ------------------------------------------------------------------ symbols of the graph

    def K_symbol(self, ell: int, pair=(0, 0)):
        if self.n_inputs == 1:
            return sp.Symbol(f"K_{ell}", positive=True)
        return sp.Symbol(f"K^{{({ell})}}_{{{pair[0] + 1}{pair[1] + 1}}}", real=True)

    @staticmethod
    def width_symbol(ell: int):
        return sp.Symbol(f"n_{ell}", positive=True)

    @staticmethod
    def moment_node_symbol(ell: int, a: MultiIndex, e: int):
        return sp.Symbol(f"M^{{({ell})}}_{{{','.join(map(str, a))}|{e}}}", real=True)

    def layer_substitution(self, ell: int, C_W=None, C_b=None) -> dict:
        """Symbols of the generic layer map -> those of layer ℓ (Σ^{(ℓ)} from Σ^{(ℓ−1)})."""
        lm = self.lm
        sub = {lm.syms.n: self.width_symbol(ell),
               lm.syms.C_W: C_W if C_W is not None else sp.Symbol("C_W", positive=True),
               lm.syms.C_b: C_b if C_b is not None else sp.Symbol("C_b", nonnegative=True)}
        for pr, s in lm.K.items():
            sub[s] = self.K_symbol(ell, pr)
        for a in lm.multi_indices():
            for e in range(self.order + 1):
                sub[moment_symbol(a, e)] = (self.moment_node_symbol(ell - 1, a, e) if ell > 1 else sp.S.Zero)
        return sub

    def node_expression(self, node: Node, *, closed: bool = False) -> sp.Expr:
        """The defining expression of a graph node in its parents' symbols."""
        kind = node[0]
        if kind == "M":
            _, ell, a, e = node
            expr = self.lm.moment(a).get(e, sp.S.Zero).xreplace(self.layer_substitution(ell))
        elif kind == "K":
            _, ell, pr = node
            if ell == 1:
                return self.K_symbol(1, pr)
            p = self.lm.pairs.index(pr)
            expr = self.lm.kernel()[pr].xreplace(self.layer_substitution(ell - 1))
            _ = p
        else:
            raise PerturbError(f"unknown node kind {kind!r}")
        expr = substitute_activation(expr, self.activation)
        if closed:
            expr = _closed_atoms(expr)
        return expr

    def graph(self, *, closed: bool = False):
        """The expression graph (networkx.DiGraph) of everything the output needs.

        Nodes: ``("M", ℓ, a, e)`` — the order-e coefficient of E[Π (Σ^{(ℓ)} − K^{(ℓ+1)})^a];
        ``("K", ℓ, pair)`` — the infinite-width kernel K^{(ℓ)}.  Attributes: ``symbol``, ``expr``,
        ``layer``, ``order``, ``kind``.  Edges point from a dependency to its dependent.
        """
        import networkx as nx

        g = nx.DiGraph()
        by_symbol = {}
        for ell in range(1, self.depth + 2):
            for pr in self.lm.pairs:
                node = ("K", ell, pr)
                by_symbol[self.K_symbol(ell, pr)] = node
        for ell, items in self.plan.items():
            for a, e in items:
                by_symbol[self.moment_node_symbol(ell, a, e)] = ("M", ell, a, e)
        todo = [("M", self.depth, a, e) for a, e in self.output_targets()]
        todo += [("K", self.depth + 1, pr) for pr in self.lm.pairs]
        while todo:
            node = todo.pop()
            if node in g and "expr" in g.nodes[node]:
                continue
            expr = self.node_expression(node, closed=closed)
            sym = (self.moment_node_symbol(*node[1:]) if node[0] == "M" else self.K_symbol(node[1], node[2]))
            g.add_node(node, symbol=sym, expr=expr, kind=node[0], layer=node[1],
                       order=node[3] if node[0] == "M" else 0)
            deps = set()
            for s in expr.free_symbols:
                if s in by_symbol:
                    deps.add(by_symbol[s])
            for atom in expr.atoms(GaussianExpectation):
                for s in atom.free_symbols:
                    if s in by_symbol:
                        deps.add(by_symbol[s])
            for d in sorted(deps, key=repr):  # a set: sorted so the graph (and derivation pages) do not depend on PYTHONHASHSEED
                if d != node:
                    g.add_edge(d, node)
                    if "expr" not in g.nodes[d]:
                        todo.append(d)
        return g

    # ------------------------------------------------------------------ LaTeX

    def latex(self) -> str:
        """The derived layer map as LaTeX: each outgoing moment of Σ^{(ℓ)} by order in 1/n.

        Notation: M_a^{[e]} is the (1/n)^e coefficient of E[(Σ^{(ℓ−1)} − K)^a] (primed: layer ℓ),
        K the infinite-width kernel of layer ℓ, n = n_ℓ, C_W, C_b those of layer ℓ+1.
        """
        lm = self.lm
        rename = {}
        for a in lm.multi_indices():
            for e in range(self.order + 1):
                idx = ",".join(map(str, a))
                rename[moment_symbol(a, e)] = sp.Symbol(f"M_{{{idx}}}^{{[{e}]}}")
        lines = [r"\begin{align*}"]
        kern = substitute_activation(lm.kernel()[lm.pairs[0]], self.activation)
        lines.append(rf"K' &= {sp.latex(kern)} \\")
        for a, e in sorted({(a, e) for items in self.plan.values() for a, e in items}):
            expr = substitute_activation(lm.moment(a).get(e, sp.S.Zero), self.activation)
            idx = ",".join(map(str, a))
            lines.append(rf"M'^{{[{e}]}}_{{{idx}}} &= {sp.latex(expr.xreplace(rename))} \\")
        lines[-1] = lines[-1].rstrip("\\ ")
        lines.append(r"\end{align*}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ numeric evaluation

    def _compiled_moment(self, a: MultiIndex, e: int):
        return self._compiled_expr((a, e), lambda: self.lm.moment(a).get(e, sp.S.Zero))

    def _compiled_kernel(self, pr):
        return self._compiled_expr(("K", pr), lambda: self.lm.kernel()[pr])

    def _load_compiled(self) -> None:
        """The plan and every compiled layer-map expression of this chain, from the on-disk cache
        (:func:`perturb._diskcache.disk_memo`, keyed by activation, inputs, order, depth and
        perturb's source) or computed once and stored there: a new process skips the
        derivation, the activation substitution and ``lambdify`` (most of a warm
        ``perturb cumulants`` run).  The cached functions are lambdify's own generated source,
        executed again in lambdify's namespace; an entry that cannot be restored is recomputed."""
        if self._loaded:
            return
        self._loaded = True
        key = (sp.srepr(self.activation.expr), self.n_inputs, self.order, self.max_moment, self.depth)
        bundle = disk_memo("perturb.finite.chain.FiniteWidth.compiled", key, self._compiled_bundle)
        if not bundle:
            return
        try:
            restored = {k: (restore(data), atoms, ins) for k, (data, atoms, ins) in bundle["exprs"].items()}
        except Exception:  # noqa: BLE001 - a damaged entry: compile as usual
            return
        self.__dict__.setdefault("plan", bundle["plan"])
        for k, v in restored.items():
            self._compiled.setdefault(k, v)

    def _compiled_bundle(self) -> dict | None:
        """Everything :meth:`evaluate` compiles, in picklable form (None if a source is missing)."""
        for ell in range(1, self.depth + 1):
            for a, e in self.plan.get(ell, ()):
                self._compiled_moment(a, e)
            for pr in self.lm.pairs:
                self._compiled_kernel(pr)
        try:
            exprs = {k: (payload(fn), atoms, ins) for k, (fn, atoms, ins) in self._compiled.items()}
        except (OSError, TypeError):
            return None
        return {"plan": self.plan, "exprs": exprs}

    def _compiled_expr(self, key, build):
        """Compile a layer-map expression once: fn(K entries, C_W, C_b, n, atoms..., moments...)."""
        if key not in self._compiled:
            expr = substitute_activation(build(), self.activation)
            atoms = sorted(expr.atoms(GaussianExpectation), key=sp.default_sort_key)
            leaves = [sp.Dummy(f"a{i}") for i in range(len(atoms))]
            lm = self.lm
            ins = sorted({s for s in expr.free_symbols if _parse_moment_symbol(s)}, key=str)
            Ks = [lm.K[pr] for pr in lm.pairs]
            args = Ks + [lm.syms.C_W, lm.syms.C_b, lm.syms.n] + leaves + ins
            fn = compile_expr(expr.xreplace(dict(zip(atoms, leaves))), args)
            self._compiled[key] = (fn, atoms, [_parse_moment_symbol(s) for s in ins])
        return self._compiled[key]

    def _atom_value(self, atom, Kvals: dict, method: str, dps):
        f, cov = atom.args
        lm = self.lm
        inv = {s: pr for pr, s in lm.K.items()}
        if isinstance(cov, sp.MatrixBase):
            m = cov.shape[0]
            if dps:
                num = [[Kvals[inv[cov[i, j]]] for j in range(m)] for i in range(m)]
            else:
                entries = [[np.asarray(Kvals[inv[cov[i, j]]], dtype=float) for j in range(m)] for i in range(m)]
                b = np.broadcast_arrays(*[x for row in entries for x in row])
                num = np.stack(b, axis=-1).reshape(b[0].shape + (m, m))
        else:
            num = Kvals[inv[cov]]
        if dps:
            return expect(f, num, method="mpmath", dps=dps)
        return expect(f, num, method=method)

    def evaluate(self, *, K1, widths: Sequence, C_W=1.0, C_b=0.0, dps: int | None = None,
                 method: str = "auto"):
        """Numbers for the output statistics (vectorised: any argument may be a numpy array).

        Args:
            K1: the first-layer kernel K^{(1)} (one input: a number/array; several inputs: an
                N×N matrix, or array of shape G+(N, N)).
            widths: hidden widths n_1..n_L (numbers or arrays broadcasting with the rest).
            C_W, C_b: scalars or one per layer 1..L+1 (layer 1 only enters through K1).
            dps: evaluate at this many digits with mpmath (scalars only).
        """
        L = self.depth
        if len(widths) != L:
            raise PerturbError(f"expected {L} hidden widths, got {len(widths)}")
        for w in widths:
            _check_positive("width", w)
            if not isinstance(w, (sp.Basic, mpmath.mpf)) and np.any(np.asarray(w, dtype=float) < 1):
                raise PerturbError(f"widths must be >= 1 for the 1/n expansion to mean anything, got {w!r}")
        cws = _per_layer(C_W, L + 1, "C_W")
        cbs = _per_layer(C_b, L + 1, "C_b")
        for v in cws:
            _check_positive("C_W", v)
        for v in cbs:
            _check_positive("C_b", v, strict=False)
        conv = (lambda x: mpmath.mpmathify(x)) if dps else (lambda x: np.asarray(x, dtype=float))
        Kvals = self._initial_kernel(K1, conv)
        self._load_compiled()
        M: dict = {}
        ctx = mpmath.workdps(dps + 10) if dps else _NullCtx()
        with ctx:
            for ell in range(1, L + 1):
                cw, cb, n = conv(cws[ell]), conv(cbs[ell]), conv(widths[ell - 1])
                atom_cache: dict = {}

                def atom(a, Kv=Kvals, cache=atom_cache):
                    if a not in cache:
                        cache[a] = self._atom_value(a, Kv, method, dps)
                    return cache[a]

                newM = {}
                for a, e in self.plan.get(ell, ()):
                    fn, atoms, ins = self._compiled_moment(a, e)
                    args = [Kvals[pr] for pr in self.lm.pairs] + [cw, cb, n]
                    args += [atom(x) for x in atoms] + [M.get(k, 0) for k in ins]
                    newM[(a, e)] = fn.mp_function(*args) if dps else fn(*args)
                newK = {}
                for pr in self.lm.pairs:
                    fn, atoms, _ = self._compiled_kernel(pr)
                    args = [Kvals[q] for q in self.lm.pairs] + [cw, cb, n] + [atom(x) for x in atoms]
                    newK[pr] = fn.mp_function(*args) if dps else fn(*args)
                Kvals, M = newK, newM
            return self._statistics(Kvals, M)

    def _initial_kernel(self, K1, conv) -> dict:
        if self.n_inputs == 1:
            K = conv(K1)
            if np.any(np.asarray(K, dtype=float) <= 0):
                raise PerturbError(f"the first-layer kernel K1 must be > 0, got {K1!r} "
                                   "(a zero input with C_b = 0 makes every layer vanish)")
            return {(0, 0): K}
        arr = K1 if isinstance(K1, (list, tuple)) else np.asarray(K1)
        N = self.n_inputs
        try:
            vals = {(a, b): conv(arr[a][b] if isinstance(arr, (list, tuple)) else arr[..., a, b])
                    for a, b in self.lm.pairs}
        except (IndexError, TypeError):
            raise PerturbError(f"K1 must be an {N}x{N} matrix for {N} inputs") from None
        return vals

    def _statistics(self, Kvals: dict, M: dict):
        k = self.order
        zero = 0 * Kvals[self.lm.pairs[0]]

        def m(a):
            return {e: v for (b, e), v in M.items() if b == a} or {0: zero}

        if self.n_inputs == 1:
            K = Kvals[(0, 0)]
            mt = [m((t,)) for t in range(1, self.max_moment + 1)]
            raw = []  # E Σ^j
            for j in range(1, self.max_moment + 1):
                s = {0: K**j}
                for t in range(1, j + 1):
                    s = S.add(s, S.scale(mt[t - 1], math.comb(j, t) * K ** (j - t)))
                raw.append(s)
            kap = S.moments_to_cumulants(mt, k)
            kap[0] = S.add(kap[0], {0: K})
            # κ_j(Σ) = O(n^{-(j-1)}) [H22]: lower orders cancel identically (symbolically they are
            # 0); drop them so floating-point cancellation does not print as a tiny nonzero.
            kap = [kj if j == 0 else {e: v for e, v in kj.items() if e >= j} for j, kj in enumerate(kap)]
            moments, cumulants = {}, {}
            for j in range(1, self.max_moment + 1):
                dfac = math.prod(range(2 * j - 1, 0, -2))
                moments[2 * j] = {e: dfac * v for e, v in raw[j - 1].items()}
                cumulants[2 * j] = {e: dfac * v for e, v in kap[j - 1].items()}
            return OneInputStatistics(K=K, order=k, moments=moments, cumulants=cumulants)
        mean, cov = {}, {}
        for p, pr in enumerate(self.lm.pairs):
            mean[pr] = S.add({0: Kvals[pr]}, m(self.lm.unit(p)))
        for p, pr in enumerate(self.lm.pairs):
            for q, qr in enumerate(self.lm.pairs):
                if q < p:
                    continue
                a = tuple(x + y for x, y in zip(self.lm.unit(p), self.lm.unit(q)))
                c = S.add(m(a), S.scale(S.mul(m(self.lm.unit(p)), m(self.lm.unit(q)), k), -1))
                cov[(pr, qr)] = c
        return MultiInputStatistics(K=Kvals, order=k, mean=mean, cov=cov)

    # ------------------------------------------------------------------ exact symbolic fold

    def symbolic(self, *, K1=None, widths=None, C_W=None, C_b=None):
        """Fold the chain in SymPy with every atom replaced by its closed form.

        Unspecified arguments stay symbolic (K_1, n_ℓ, C_W, C_b).  Raises if an atom has no
        closed form (use :meth:`evaluate` for numbers instead).
        """
        L = self.depth
        widths = list(widths) if widths is not None else [self.width_symbol(i) for i in range(1, L + 1)]
        cws = _per_layer(sp.Symbol("C_W", positive=True) if C_W is None else C_W, L + 1, "C_W")
        cbs = _per_layer(sp.Symbol("C_b", nonnegative=True) if C_b is None else C_b, L + 1, "C_b")
        if self.n_inputs == 1:
            Kvals = {(0, 0): sp.Symbol("K_1", positive=True) if K1 is None else sp.sympify(K1, strict=True)}
        else:
            Kvals = {pr: (self.K_symbol(1, pr) if K1 is None else sp.sympify(K1[pr[0]][pr[1]], strict=True))
                     for pr in self.lm.pairs}
        M: dict = {}
        lm = self.lm
        for ell in range(1, L + 1):
            sub = {lm.K[pr]: Kvals[pr] for pr in lm.pairs}
            sub.update({lm.syms.C_W: sp.sympify(cws[ell], strict=True), lm.syms.C_b: sp.sympify(cbs[ell], strict=True),
                        lm.syms.n: sp.sympify(widths[ell - 1], strict=True)})
            newM = {}
            for a, e in self.plan.get(ell, ()):
                expr = _closed_atoms(substitute_activation(lm.moment(a).get(e, sp.S.Zero), self.activation))
                rep = dict(sub)
                for s in expr.free_symbols:
                    key = _parse_moment_symbol(s)
                    if key is not None:
                        rep[s] = M.get(key, sp.S.Zero)
                newM[(a, e)] = sp.expand(expr.xreplace(rep))
            Kvals = {pr: sp.expand(_closed_atoms(substitute_activation(lm.kernel()[pr], self.activation))
                                   .xreplace(sub)) for pr in lm.pairs}
            M = newM
        return self._statistics(Kvals, M)


class _NullCtx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@functools.cache
def _parse_moment_symbol(sym) -> tuple[MultiIndex, int] | None:
    name = getattr(sym, "name", "")
    if not name.startswith("M["):
        return None
    idx, _, e = name[2:].partition("]_")
    return tuple(int(x) for x in idx.split(",")), int(e)


def _closed_atoms(expr: sp.Expr) -> sp.Expr:
    """Replace every atom by its closed form (error if one has none)."""
    rep = {}
    for atom in expr.atoms(GaussianExpectation):
        cf = closed_form(*atom.args)
        if cf is None:
            raise PerturbError(f"no closed form for {atom}; evaluate numerically instead")
        rep[atom] = cf
    return expr.xreplace(rep)


