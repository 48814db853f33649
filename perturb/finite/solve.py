"""Closed-form solutions of the derived recursions, where they exist.

At a fixed point of the kernel recursion (K^{(ℓ)} = K* for all ℓ) with equal widths n and
atoms that have closed forms — ReLU-class activations at criticality, deep linear networks —
the derived layer map is a *linear recursion with constant coefficients* in the layer index
for the moment coefficients M^{(ℓ)}_{t|e}.  It is triangular (a coefficient depends on itself
and on lower (t, e)), so each unknown is solved in turn: by summation when its own
coefficient is 1 (the critical case: polynomial growth in ℓ), by :func:`sympy.rsolve`
otherwise.

>>> sol = solve_fixed_point_chain("relu", C_W=2, order=1)
>>> sp.factor(sol.variance(1))          # V^{(ℓ+1)}/n = Var Σ^{(ℓ)} at order 1: 5 ℓ K²/n
5*K**2*l/n
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..activations import get_activation
from ..errors import PerturbError
from ..gaussian.dispatch import substitute_activation
from .chain import _closed_atoms, _parse_moment_symbol
from .layer import layer_map

__all__ = ["FixedPointSolution", "solve_fixed_point_chain"]

ELL = sp.Symbol("l", integer=True, positive=True)
N = sp.Symbol("n", positive=True)
K = sp.Symbol("K", positive=True)


@dataclass(frozen=True)
class FixedPointSolution:
    """M^{(ℓ)}_{t|e} as closed-form functions of the layer index ℓ (symbol ``l``), width n, K."""

    activation: str
    order: int
    moments: dict  # (t, e) -> expression in l, n, K

    def moment(self, t: int, e: int) -> sp.Expr:
        return self.moments.get((t, e), sp.S.Zero)

    def variance(self, e: int = 1) -> sp.Expr:
        """The (1/n)^e part of Var Σ^{(ℓ)} = M_2 − M_1²."""
        m1 = {f: self.moment(1, f) for f in range(self.order + 1)}
        sq = sum(m1[f] * m1[e - f] for f in range(e + 1))
        return sp.simplify(self.moment(2, e) - sq)

    def cumulant4_over_K2(self, depth) -> sp.Expr:
        """κ4(z^{(L+1)})/K² = 3 Var Σ^{(L)}/K² to the solution's order, at L = depth."""
        total = sum(self.variance(e) for e in range(1, self.order + 1))
        return sp.simplify(3 * total.subs(ELL, depth) / K**2)


def solve_fixed_point_chain(activation="relu", *, C_W, C_b=0, order: int = 1,
                            max_moment: int | None = None) -> FixedPointSolution:
    """Solve the derived chain in closed form at a kernel fixed point with equal widths.

    Raises PerturbError when K is not at a fixed point (K' ≠ K for a symbolic K) or an atom
    has no closed form.
    """
    act = get_activation(activation)
    lm = layer_map(1, order)
    sub = {lm.K[(0, 0)]: K, lm.syms.C_W: sp.sympify(C_W, strict=True), lm.syms.C_b: sp.sympify(C_b, strict=True), lm.syms.n: N}
    kernel = sp.simplify(_closed_atoms(substitute_activation(lm.kernel()[(0, 0)], act)).xreplace(sub))
    if sp.simplify(kernel - K) != 0:
        raise PerturbError(
            f"K is not a fixed point of the kernel map for {act.name} at C_W={C_W}, C_b={C_b} "
            f"(K -> {kernel}); closed-form solutions need K^(l) constant in depth")
    T = max_moment or 2 * order
    items = [((t,), e) for t in range(1, T + 1) for e in range(1, order + 1) if e >= (t + 1) // 2]
    maps = {}
    for a, e in items:
        expr = _closed_atoms(substitute_activation(lm.moment(a).get(e, sp.S.Zero), act)).xreplace(sub)
        if expr.has(sp.Float):  # e.g. leaky_relu:0.2 — exact rationals keep cancellations exact
            expr = sp.nsimplify(expr, rational=True)
        maps[(a[0], e)] = sp.expand(expr)
    solved: dict = {}
    for t, e in _dependency_order(maps):
        expr = maps[(t, e)]
        own = sp.Symbol(f"M[{t}]_{e}", real=True)
        coeff = sp.expand(expr).coeff(own)
        rest = sp.expand(expr - coeff * own)
        # substitute solved lower sequences at layer l-1
        rep = {}
        for s in rest.free_symbols:
            key = _parse_moment_symbol(s)
            if key is not None:
                if (key[0][0], key[1]) not in solved:
                    raise PerturbError(f"unsolved dependency {s} for M[{t}]_{e}")
                rep[s] = solved[(key[0][0], key[1])].subs(ELL, ELL - 1)
        forcing = sp.expand(rest.xreplace(rep))
        # y(l) = coeff * y(l-1) + forcing(l), y(0) = 0 (Σ^{(0)} = K^{(1)} is deterministic)
        if coeff == 1:
            j = sp.Symbol("j", integer=True, positive=True)
            sol = sp.summation(forcing.subs(ELL, j), (j, 1, ELL))
        else:
            y = sp.Function("y")
            sol = sp.rsolve(y(ELL) - coeff * y(ELL - 1) - forcing, y(ELL), {y(0): 0})
            if sol is None:
                raise PerturbError(f"sympy.rsolve could not solve the recursion for M[{t}]_{e}")
        solved[(t, e)] = sp.factor(sp.simplify(sol))
    return FixedPointSolution(activation=act.name, order=order, moments=solved)


def _dependency_order(maps: dict) -> list:
    """(t, e) keys ordered so that each comes after the sequences it depends on (not itself)."""
    deps = {}
    for key, expr in maps.items():
        deps[key] = set()
        for s in expr.free_symbols:
            parsed = _parse_moment_symbol(s)
            if parsed is not None and (parsed[0][0], parsed[1]) != key:
                deps[key].add((parsed[0][0], parsed[1]))
    order, done = [], set()
    while len(order) < len(maps):
        ready = sorted(k for k in maps if k not in done and deps[k] <= done)
        if not ready:
            raise PerturbError("the derived recursions are not triangular; cannot solve them one by one")
        order.extend(ready)
        done.update(ready)
    return order
