"""Fold the derived layer map over depth: NTK statistics of one output at any implemented order.

The input layer is exact: with σ^{(0)} = x and no parameters below it, Σ = K^{(1)} = C_b + C_W|x|²/n_0,
Ω = H^{(1)} = λ_b + λ_W|x|²/n_0 and every other observable (T_a, R_a) and every moment vanish.  Each
application of :func:`~perturb.engine.layermap.derive_layer_map`'s map (with the next layer's
C_W, C_b, λ_W, λ_b and r = n_ℓ/n_{ℓ−1}) moves one layer up.  After the last hidden layer L the
output neuron's statistics come from one more row contraction (``LayerMap.targets``), with
ε = 1/n_L:

    E Θ = Σ_e μ_e n_L^{−e},   Var Θ = Σ_e v_e n_L^{−e},   Cov(z², Θ), Cov(Σ^{(L)}, Θ) likewise.

Evaluation: numpy (atoms by closed forms or quadrature, :func:`perturb.gaussian.expect`) or
mpmath at ``dps`` digits; everything is compiled once per (order, activation) through
:mod:`perturb.compile`.

>>> st = ntk_series("relu", [64, 64], [1.0], C_W=2.0, C_b=0.0, order=1)
>>> [round(float(c), 10) for c in st["mean"]]
[4.0, 0.0]
"""

from __future__ import annotations

import functools

import mpmath
import numpy as np
import sympy as sp

from ..activations import get_activation
from ..compile import compile_expr
from ..errors import PerturbError
from ..gaussian import expect
from ..gaussian.atom import GaussianExpectation
from ..gaussian.dispatch import substitute_activation
from .layermap import derive_layer_map, moment_symbol, ref_symbol

__all__ = ["ntk_series", "output_series"]


def output_series(targets: dict, order: int) -> dict[str, list[sp.Expr]]:
    """Coefficients (of n_L^{−e}, e = 0..order) of E Θ, Var Θ, Cov(z², Θ), Cov(Σ, Θ) from the targets."""
    def c(label, e):
        return targets[label].get(e, sp.S.Zero)

    def conv(a, b, e):
        return sum((c(a, i) * c(b, e - i) for i in range(e + 1)), sp.S.Zero)

    mean = [c("E[Theta]", e) for e in range(order + 1)]
    var = [sp.expand(c("E[Theta^2]", e) - conv("E[Theta]", "E[Theta]", e)) for e in range(order + 1)]
    cov_z2 = [sp.expand(c("E[z^2 Theta]", e) - conv("E[z^2]", "E[Theta]", e)) for e in range(order + 1)]
    # Cov(Σ, Θ) = Cov(Σ, Ω): the moment M[S*O] minus M[S] M[O]
    so = {e: moment_symbol((("S", 1), ("O", 1)), e) for e in range(1, order + 1)}
    s1 = {e: moment_symbol((("S", 1),), e) for e in range(1, order + 1)}
    o1 = {e: moment_symbol((("O", 1),), e) for e in range(1, order + 1)}
    cov_sigma = [sp.S.Zero] + [so[e] - sum((s1[i] * o1[e - i] for i in range(1, e)), sp.S.Zero)
                               for e in range(1, order + 1)]
    return {"mean": mean, "var": var, "cov_z2_ntk": cov_z2, "cov_sigma_ntk": cov_sigma}


def _instantiated(order: int, act):
    """The derived order-``order`` map with σ substituted: (map, {key: expression}, sorted atoms)."""
    lm = derive_layer_map(order)
    exprs = {("ref", w): v for w, v in lm.refs.items()}
    exprs.update({("mom", a, e): v for a, d in lm.moments.items() for e, v in d.items()})
    exprs = {k: substitute_activation(v, act) for k, v in exprs.items()}
    atoms = sorted(set().union(*[e.atoms(GaussianExpectation) for e in exprs.values()]), key=sp.default_sort_key)
    return lm, exprs, atoms


@functools.lru_cache(maxsize=32)
def _compiled(order: int, activation_name: str):
    act = get_activation(activation_name)
    lm, exprs, atoms = _instantiated(order, act)
    args = lm.args()
    K = ref_symbol("S")
    for a in atoms:
        if a.args[1] != K:  # pragma: no cover - the derivation only produces atoms at K
            raise AssertionError(f"unexpected covariance in {a}")
    leaves = [sp.Dummy(f"e{i}") for i in range(len(atoms))]
    rep = dict(zip(atoms, leaves, strict=True))
    fns = {k: compile_expr(e.xreplace(rep), args + leaves) for k, e in exprs.items()}
    out = output_series(lm.targets, order)
    missing = set().union(*[x.free_symbols for xs in out.values() for x in xs]) - set(args)
    if missing:  # pragma: no cover
        raise AssertionError(f"output statistics need {missing}")
    outs = {k: [compile_expr(x, args) for x in xs] for k, xs in out.items()}
    return lm, args, [a.args[0] for a in atoms], fns, outs


def ntk_series(activation, widths, x, *, C_W=1.0, C_b=0.0, lambda_W=None, lambda_b=None, order: int = 2,
               dps: int | None = None, method: str = "auto", layers: bool = False) -> dict:
    """Statistics of one output's NTK at one input, order by order in 1/n_L.

    Returns ``{"mean": [c_0..c_k], "var": [...], "cov_z2_ntk": [...], "cov_sigma_ntk": [...]}``: the
    contribution of each order (c_e already divided by n_L^e; the totals are the sums).  With
    ``layers=True`` also ``"state"``: the per-layer state values (references and moments).

    >>> s = ntk_series("tanh", [32, 32], [1.0], C_W=1.2, C_b=0.1, order=2)
    >>> len(s["var"]), bool(s["var"][1] > 0)
    (3, True)
    """
    from ..ntk.chain import (
        _check_widths,
        _check_x,
        _layer_params,
        require_finite,
        require_ntk_defined,
    )

    ws = _check_widths(widths)
    xs = _check_x(x)
    cw, cb, lw, lb = _layer_params(len(ws) + 1, C_W, C_b, lambda_W, lambda_b)
    act = get_activation(activation)
    if act.is_generic:
        raise PerturbError("ntk statistics need a concrete activation (relu, tanh, gelu, ...)")
    require_ntk_defined(act)
    lm, args, integrands, fns, outs = _compiled(order, act.name)
    if dps:
        with mpmath.workdps(dps + 10):
            norm2 = mpmath.fsum(mpmath.mpf(v) ** 2 for v in xs) / len(xs)
            cw, cb, lw, lb = ([mpmath.mpf(v) for v in seq] for seq in (cw, cb, lw, lb))
            zero = mpmath.mpf(0)
            K, H = cb[0] + cw[0] * norm2, lb[0] + lw[0] * norm2
    else:
        norm2 = sum(float(v) ** 2 for v in xs) / len(xs)
        cw, cb, lw, lb = ([np.asarray(v, dtype=float) for v in seq] for seq in (cw, cb, lw, lb))
        K, H = cb[0] + cw[0] * norm2, lb[0] + lw[0] * norm2
        zero = 0 * K
    state = {s: zero for s in args[:-5]}
    state[ref_symbol("S")], state[ref_symbol("O")] = K, H
    history = [dict(state)]
    for ell in range(1, len(ws) + 1):
        Kv = state[ref_symbol("S")]
        if np.any(np.asarray(Kv, dtype=float) <= 0) if not dps else Kv <= 0:
            raise PerturbError(f"K^({ell}) = 0: the NTK statistics need a non-zero input signal")
        if dps:
            with mpmath.workdps(dps + 10):
                r = mpmath.mpf(ws[ell - 1]) / ws[ell - 2] if ell > 1 else mpmath.mpf(1)
            vals = [expect(f, Kv, method="mpmath", dps=dps + 5) for f in integrands]
            argv = [state[s] for s in args[:-5]] + [cw[ell], cb[ell], lw[ell], lb[ell], r] + vals
            state = {k: fns[k].mpmath(*argv, dps=dps + 10) for k in fns}
        else:
            r = ws[ell - 1] / ws[ell - 2] if ell > 1 else 1.0
            vals = [expect(f, Kv, method=method) for f in integrands]
            argv = [state[s] for s in args[:-5]] + [cw[ell], cb[ell], lw[ell], lb[ell], r] + vals
            state = {k: np.asarray(fns[k](*argv), dtype=float) for k in fns}
        state = {(ref_symbol(k[1]) if k[0] == "ref" else moment_symbol(k[1], k[2])): v for k, v in state.items()}
        if not dps:
            require_finite({s.name: v for s, v in state.items()}, ell + 1)
        history.append(dict(state))
    nL = ws[-1]
    argv = [state[s] for s in args[:-5]] + [cw[-1], cb[-1], lw[-1], lb[-1], 1]
    out = {}
    for key, fs in outs.items():
        if dps:
            with mpmath.workdps(dps + 10):
                vals = [f.mpmath(*argv, dps=dps + 10) / mpmath.mpf(nL) ** e for e, f in enumerate(fs)]
            with mpmath.workdps(dps):
                out[key] = [+v for v in vals]
        else:
            out[key] = [np.asarray(f(*argv), dtype=float)[()] / float(nL) ** e for e, f in enumerate(fs)]
    if layers:
        out["state"] = history
    return out


def ntk_series_exact(activation, widths, x, *, C_W=1, C_b=0, lambda_W=None, lambda_b=None, order: int = 2) -> dict:
    """The same fold in exact SymPy arithmetic (every atom needs a closed form; widths may be symbols).

    >>> n = sp.Symbol("n", positive=True)
    >>> s = ntk_series_exact("linear", [n, n], [1], order=2)
    >>> [sp.factor(v) for v in s["var"]]
    [0, 20/n, 16/n**2]
    """
    from ..ntk.chain import _check_x, _per_layer, closed_atoms

    if isinstance(widths, (str, bytes)) or not len(widths):
        raise PerturbError(f"widths must be a non-empty list, got {widths!r}")
    ws = tuple(sp.sympify(w, strict=True) for w in widths)
    xs = [sp.nsimplify(v) for v in _check_x(x)]
    L1 = len(ws) + 1

    def conv(seq, name):
        return [sp.nsimplify(v) for v in _per_layer(seq, L1, name)]

    cw, cb = conv(C_W, "C_W"), conv(C_b, "C_b")
    lw = cw if lambda_W is None else conv(lambda_W, "lambda_W")
    lb = cb if lambda_b is None else conv(lambda_b, "lambda_b")
    act = get_activation(activation)
    lm, exprs, atoms = _instantiated(order, act)
    args = lm.args()
    closed = closed_atoms(atoms, ref_symbol("S"), "ntk_series")
    exprs = {k: e.xreplace(closed) for k, e in exprs.items()}
    norm2 = sum(v**2 for v in xs) / len(xs)
    state = {s: sp.S.Zero for s in args[:-5]}
    state[ref_symbol("S")], state[ref_symbol("O")] = cb[0] + cw[0] * norm2, lb[0] + lw[0] * norm2
    for ell in range(1, len(ws) + 1):
        r = ws[ell - 1] / ws[ell - 2] if ell > 1 else sp.S.One
        sub = dict(state)
        sub.update(dict(zip(args[-5:], [cw[ell], cb[ell], lw[ell], lb[ell], r], strict=True)))
        new = {k: sp.simplify(e.xreplace(sub)) for k, e in exprs.items()}
        state = {(ref_symbol(k[1]) if k[0] == "ref" else moment_symbol(k[1], k[2])): v for k, v in new.items()}
    sub = dict(state)
    sub.update(dict(zip(args[-5:], [cw[-1], cb[-1], lw[-1], lb[-1], 1], strict=True)))
    nL = ws[-1]
    return {key: [sp.simplify(f.xreplace(sub) / nL**e) for e, f in enumerate(fs)]
            for key, fs in output_series(lm.targets, order).items()}
