"""Exact finite-width NTK moments at one input for linear, |z| and ReLU networks (zero biases).

Not perturbative: every moment is exact at any widths (integers, or SymPy symbols), any depth.

**Decomposition.** For one output z of z^{(ℓ)} = W^{(ℓ)} h^{(ℓ−1)}, h^{(ℓ)} = σ(z^{(ℓ)}),
h^{(0)} = x, W^{(ℓ)}_ij ~ N(0, C_W^{(ℓ)}/n_{ℓ−1}), the per-parameter sum factorises
(∂z/∂W^{(ℓ)}_ij = g^{(ℓ)}_i h^{(ℓ−1)}_j with g^{(ℓ)} = ∂z/∂z^{(ℓ)}):

    Θ = Σ_{ℓ=1}^{L+1} G_ℓ [ λ_b^{(ℓ)} + (λ_W^{(ℓ)}/n_{ℓ−1}) ρ_{ℓ−1} ],   ρ_ℓ = |h^{(ℓ)}|²,  G_ℓ = |g^{(ℓ)}|².

**Forward chain** (matrix model, lecture 5 Prop. 5.2 of arXiv 2309.01592): with u = h^{(ℓ−1)}/|h^{(ℓ−1)}|,
W^{(ℓ)}u ~ N(0, c_ℓ I), c_ℓ = C_W^{(ℓ)}/n_{ℓ−1}, independently of the past, so
ρ_ℓ = c_ℓ ρ_{ℓ−1} X_ℓ with X_ℓ = |σ(ξ)|², ξ ~ N(0, I_{n_ℓ}): X_ℓ ~ χ²_{n_ℓ} for σ(z) = z or |z|,
X_ℓ ~ χ²_{B_ℓ}, B_ℓ ~ Bin(n_ℓ, ½) (active neurons) for ReLU; the output is z² = c_{L+1} ρ_L X_{L+1},
X_{L+1} ~ χ²_1.

**Backward chain, conditioning on W u.** Split W^{(ℓ+1)} = (W u) uᵀ + W P^⊥ (u = h^{(ℓ)}/|h^{(ℓ)}|).
The forward pass above layer ℓ sees W^{(ℓ+1)} only through W u, so W P^⊥ is a Gaussian matrix
independent of everything else.  Then g^{(ℓ)} = D_ℓ W^{(ℓ+1)ᵀ} g^{(ℓ+1)} (D_ℓ = diag σ'(z^{(ℓ)}))
= D_ℓ [u a + ξ] with ξ = P^⊥ Wᵀ g^{(ℓ+1)} ~ N(0, c_{ℓ+1} G_{ℓ+1} P^⊥) given the rest, and, by
Euler's identity for the degree-1 homogeneous network above layer ℓ, a = (W u)·g^{(ℓ+1)} =
z^{(ℓ+1)}·g^{(ℓ+1)}/|h^{(ℓ)}| = z/|h^{(ℓ)}|.  When D_ℓ² is the projector onto a subspace
containing u (ReLU: D_ℓ u = u; linear and |z|: D_ℓ² = I) the cross term vanishes and

    G_ℓ = z²/ρ_ℓ + c_{ℓ+1} G_{ℓ+1} Y_ℓ,    G_{L+1} = 1,

with Y_ℓ = |D_ℓ ξ|²/(c_{ℓ+1} G_{ℓ+1}) ~ χ²_{N_ℓ − 1} independent of everything except through the
number of active neurons N_ℓ (n_ℓ for linear and |z|, B_ℓ for ReLU).  Unrolling, with
z²/ρ_k = Π_{m>k} c_m X_m,

    ρ_{ℓ−1} G_ℓ = ρ_0 Π_{m≠ℓ} c_m · Σ_{k=ℓ}^{L+1} [Π_{m<ℓ} X_m][Π_{ℓ≤m<k} Y_m][Π_{m>k} X_m],

a sum of products of **independent per-layer factors** (X_m, Y_m share only B_m).  So
E Θ^p is a sum over p-tuples of terms of products of per-layer moments
M_m(a, b) = E[X_m^a Y_m^b; N_m ≥ 1] with E[χ²_k^a] = k(k+2)⋯(k+2a−2).  The sum is done by a
transfer matrix over layers: each copy of Θ is in one of four phases (before ℓ, weight or bias
term; between ℓ and k; after k), so the cost is O(L · 4^p · 3^p), any depth.

With ReLU, a layer with no active neuron (probability 2^{−n_ℓ}) makes z, every ρ above it and (with
σ'(0) = 0) every G_ℓ with ℓ ≤ L vanish: Θ = λ_b^{(L+1)} on that event; the formula above holds on
its complement, which is why the per-layer moments carry the indicator N_m ≥ 1.

For leaky ReLU D_ℓ² is not a projector containing u: the cross term 2a u·D²ξ survives and the
layer factors become ratios X⁺/(X⁺ + α²X⁻) of the active/inactive chi-squares, so the
moments are no longer finite sums of chi-square moments: :mod:`perturb.ntk_exact_leaky`.

>>> import sympy as sp
>>> n = sp.Symbol("n", positive=True)
>>> sp.factor(ntk_moments("linear", [n, n], C_W=1)["var"])
4*(5*n + 4)/n**2
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache

import numpy as np
import sympy as sp

from .errors import NotImplementedOrderError, PerturbError

__all__ = ["KINDS", "ntk_moment", "ntk_moments", "ntk_series", "relu_ntk_moments", "layer_moment",
           "transfer_growth", "sample_theta"]

#: activations whose one-input NTK has the exact chain (σ(z) = z, |z|, max(z, 0))
KINDS = ("linear", "abs", "relu")

#: largest moment order p of Θ offered (the transfer matrix has 4^p states)
MAX_P = 6

# phases of one copy of Θ while the layers are read from 1 to L+1
_PRE_W, _PRE_B, _MID, _POST = range(4)


# ---------------------------------------------------------------------------------------------
# input checking
# ---------------------------------------------------------------------------------------------


def _num(v, name: str, *, positive: bool = False, allow_zero: bool = True, signed: bool = False) -> sp.Expr:
    """A number or SymPy expression; floats are read as their shortest decimal (0.3 -> 3/10)."""
    if isinstance(v, bool):
        raise PerturbError(f"{name} must be a number, got {v!r}")
    if isinstance(v, sp.Basic):
        e = v
    elif isinstance(v, Fraction):
        e = sp.Rational(v.numerator, v.denominator)
    elif isinstance(v, int | np.integer):
        e = sp.Integer(int(v))
    elif isinstance(v, float | np.floating):
        if not math.isfinite(v):
            raise PerturbError(f"{name} must be finite, got {v!r}")
        e = sp.Rational(repr(float(v)))
    elif isinstance(v, str):
        try:
            f = Fraction(v.strip())
        except (ValueError, ZeroDivisionError):
            raise PerturbError(f"{name} must be a number, got {v!r}") from None
        e = sp.Rational(f.numerator, f.denominator)
    else:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise PerturbError(f"{name} must be a number, got {v!r}") from None
        return _num(f, name, positive=positive, allow_zero=allow_zero, signed=signed)
    if e.is_number:
        if not e.is_real or not e.is_finite:
            raise PerturbError(f"{name} must be a finite real number, got {v!r}")
        if positive and not e > 0:
            raise PerturbError(f"{name} must be > 0, got {v!r}")
        if not signed and not e >= 0:
            raise PerturbError(f"{name} must be >= 0, got {v!r}")
        if not allow_zero and e == 0:
            raise PerturbError(f"{name} must be != 0, got {v!r}")
    return e


def _per_layer(v, n: int, name: str, *, positive: bool = False) -> list[sp.Expr]:
    if isinstance(v, Sequence) and not isinstance(v, str):
        vals = list(v)
        if len(vals) != n:
            raise PerturbError(f"{name} has {len(vals)} entries; expected a scalar or one per layer "
                               f"({n}: layers 1..L+1)")
    else:
        vals = [v] * n
    return [_num(x, name, positive=positive) for x in vals]


def _widths(widths) -> list[sp.Expr]:
    if isinstance(widths, int | sp.Basic) and not isinstance(widths, bool):
        widths = [widths]
    try:
        ws = list(widths)
    except TypeError:
        raise PerturbError(f"widths must be a list of positive integers or symbols, got {widths!r}") from None
    if not ws:
        raise PerturbError("widths is empty: give the hidden widths n_1..n_L (at least one layer)")
    out = []
    for w in ws:
        if isinstance(w, bool):
            raise PerturbError(f"widths must be positive integers or symbols, got {w!r}")
        if isinstance(w, sp.Basic) and not w.is_number:
            out.append(w)
            continue
        try:
            ok = float(w) == int(w)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise PerturbError(f"widths must be positive integers or SymPy symbols, got {w!r}")
        if int(w) < 1:
            raise PerturbError(f"widths must be >= 1, got {int(w)}")
        out.append(sp.Integer(int(w)))
    return out


def _kind(kind: str) -> str:
    if kind not in KINDS:
        extra = ("; leaky ReLU: perturb.ntk_exact_leaky.leaky_ntk_moments"
                 if isinstance(kind, str) and kind.startswith("leaky") else "")
        raise PerturbError(f"activation {kind!r} has no exact NTK chain; valid: {', '.join(KINDS)}{extra}")
    return kind


# ---------------------------------------------------------------------------------------------
# one layer
# ---------------------------------------------------------------------------------------------


def _rising2(k, a: int):
    """E[(χ²_k)^a] = k(k+2)⋯(k+2a−2) (also as a polynomial in a symbolic k)."""
    out = sp.Integer(1) if isinstance(k, sp.Basic) else 1
    for j in range(a):
        out = out * (k + 2 * j)
    return out


@lru_cache(maxsize=4096)
def _relu_layer_int(n: int, a: int, b: int) -> sp.Rational:
    tot = 0
    for B in range(1, n + 1):
        tot += math.comb(n, B) * _rising2(B, a) * _rising2(B - 1, b)
    return sp.Rational(tot, 2 ** n)


@lru_cache(maxsize=1024)
def _relu_layer_sym(n: sp.Expr, a: int, b: int) -> sp.Expr:
    """Σ_{B≥1} C(n,B) 2^{−n} f(B) = E f(B) − 2^{−n} f(0), E f(B) from the factorial moments n^{(j)}/2^j."""
    B = sp.Dummy("B")
    poly = sp.Poly(sp.expand(_rising2(B, a) * _rising2(B - 1, b)), B)
    full = sp.Integer(0)
    for (m,), coeff in poly.terms():
        for j in range(m + 1):
            full += coeff * sp.functions.combinatorial.numbers.stirling(m, j) * sp.ff(n, j) / 2 ** j
    f0 = poly.eval(0)
    return sp.expand(full) - f0 * sp.Pow(2, -n)


def layer_moment(kind: str, n, a: int, b: int) -> sp.Expr:
    """M(a, b) = E[X^a Y^b; N ≥ 1] for one hidden layer of width ``n`` (exact, n may be a symbol).

    X = |σ(ξ)|² (χ²_N), Y ~ χ²_{N−1} independent given N; N = n (linear, abs) or Bin(n, ½) (ReLU).
    For symbolic n the ReLU value contains the exponentially small 2^{−n}.

    >>> layer_moment("relu", 4, 1, 0), layer_moment("linear", 4, 1, 1)
    (2, 12)
    """
    kind = _kind(kind)
    a, b = int(a), int(b)
    if kind in ("linear", "abs"):
        return sp.expand(_rising2(sp.sympify(n, strict=True), a) * _rising2(sp.sympify(n, strict=True) - 1, b))
    n = sp.sympify(n, strict=True)
    if n.is_Integer:
        return _relu_layer_int(int(n), a, b)
    return _relu_layer_sym(n, a, b)


# ---------------------------------------------------------------------------------------------
# the transfer matrix
# ---------------------------------------------------------------------------------------------


def _copy_steps(phase: int, m: int, L1: int, cw, lw, lb, nprev) -> list[tuple[str, int, sp.Expr]]:
    """(code, new phase, factor) for one copy of Θ reading layer m (1..L+1).

    code: "X" (the forward factor X_m), "Y" (the backward factor Y_m), "1" (neither).
    """
    c = cw[m - 1] / nprev
    last = m == L1
    out = []
    if phase in (_PRE_W, _PRE_B):
        if not last:                                           # layer m is before ℓ: keep going
            out.append(("X", phase, c) if phase == _PRE_W else ("1", phase, sp.Integer(1)))
        f = lw[m - 1] / nprev if phase == _PRE_W else lb[m - 1]    # ℓ = m
        out.append(("1", _POST, f))                            # ... and k = m
        if not last:
            out.append(("Y", _MID, f))                         # ... and k > m
    elif phase == _MID:
        out.append(("1", _POST, c))                            # k = m
        if not last:
            out.append(("Y", _MID, c))
    else:                                                      # after k
        out.append(("X", _POST, c))
    return out


def _moment_raw(kind: str, ws: list, p: int, q, cw, lw, lb, *, exact_numbers: bool) -> sp.Expr:
    L1 = len(ws) + 1
    # state: sorted tuple of the p phases (copies are exchangeable) -> accumulated weight
    states: dict[tuple[int, ...], sp.Expr] = {}
    for combo in itertools.product((_PRE_W, _PRE_B), repeat=p):
        key = tuple(sorted(combo))
        w = q ** combo.count(_PRE_W)
        states[key] = states.get(key, 0) + w
    for m in range(1, L1 + 1):
        nprev = sp.Integer(1) if m == 1 else ws[m - 2]
        new: dict[tuple[int, ...], sp.Expr] = {}
        for key, val in states.items():
            if val == 0:
                continue
            options = [_copy_steps(ph, m, L1, cw, lw, lb, nprev) for ph in key]
            for choice in itertools.product(*options):
                nx = sum(1 for c in choice if c[0] == "X")
                ny = sum(1 for c in choice if c[0] == "Y")
                if m == L1:
                    mom = sp.Integer(math.prod(range(1, 2 * nx, 2)))   # E (χ²_1)^a = (2a−1)!!
                else:
                    mom = layer_moment(kind, ws[m - 1], nx, ny)
                f = val * mom
                for c in choice:
                    f = f * c[2]
                nk = tuple(sorted(c[1] for c in choice))
                new[nk] = new.get(nk, 0) + f
        if not exact_numbers:
            new = {k: sp.expand(v) for k, v in new.items()}
        states = new
    final = tuple([_POST] * p)
    out = states.get(final, sp.Integer(0))
    if kind == "relu":
        # a layer entirely off: Θ = λ_b^{(L+1)} (the output bias only)
        alive = sp.Integer(1)
        for n in ws:
            alive *= 1 - sp.Pow(2, -n)
        out = out + lb[L1 - 1] ** p * (1 - alive)
    return out


def _setup(kind, widths, x_norm2_over_n0, C_W, lambda_W, lambda_b):
    kind = _kind(kind)
    ws = _widths(widths)
    L1 = len(ws) + 1
    q = _num(x_norm2_over_n0, "x_norm2_over_n0", positive=True)
    cw = _per_layer(C_W, L1, "C_W", positive=True)
    lw = cw if lambda_W is None else _per_layer(lambda_W, L1, "lambda_W")
    lb = _per_layer(lambda_b, L1, "lambda_b")
    return kind, ws, q, cw, lw, lb


def _simplify(e: sp.Expr) -> sp.Expr:
    """Factor a rational function of the widths; with ReLU's 2^{−n} terms, collect on them."""
    e = sp.expand(e)
    pows = sorted({a for a in e.atoms(sp.Pow) if a.base == 2 and not a.exp.is_number}, key=sp.default_sort_key)
    if pows:
        return sp.collect(e, pows, func=lambda c: sp.factor(sp.cancel(c)))
    return sp.factor(sp.cancel(e))


def ntk_moment(kind: str, widths, p: int = 2, x_norm2_over_n0=1, C_W=1, lambda_W=None,
               lambda_b=0) -> sp.Expr:
    """E Θ^p of one output's NTK at one input, exactly (zero biases, any widths and depth).

    Args:
        kind: ``"linear"``, ``"abs"`` or ``"relu"``.
        widths: hidden widths n_1..n_L: positive integers or SymPy symbols.
        p: the moment order (1..6).
        x_norm2_over_n0: |x|²/n_0.
        C_W: weight variance, a scalar or one per layer 1..L+1.
        lambda_W, lambda_b: learning-rate factors λ_W^{(ℓ)}/n_{ℓ−1}, λ_b^{(ℓ)} (default λ_W = C_W,
            the NTK parameterisation, and λ_b = 0).

    Returns:
        a SymPy Rational for numeric widths, else an expression in the symbols (ReLU keeps the
        exponentially small 2^{−n} terms).

    >>> ntk_moment("relu", [8], 2, C_W=2)     # n = 8, L = 1: E Θ = 4, so Var Θ/(E Θ)² = 3/8
    22
    """
    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        raise PerturbError(f"p (moment order of Θ) must be a positive integer, got {p!r}")
    if p > MAX_P:
        raise NotImplementedOrderError(f"p = {p} is above the largest moment order offered ({MAX_P}; "
                                       f"the transfer matrix has 4^p states)")
    kind, ws, q, cw, lw, lb = _setup(kind, widths, x_norm2_over_n0, C_W, lambda_W, lambda_b)
    numeric = all(w.is_number for w in ws) and all(v.is_number for v in (q, *cw, *lw, *lb))
    out = _moment_raw(kind, ws, p, q, cw, lw, lb, exact_numbers=numeric)
    return sp.nsimplify(out) if numeric else _simplify(out)


def ntk_moments(kind: str, widths, x_norm2_over_n0=1, C_W=1, lambda_W=None, lambda_b=0) -> dict:
    """{"mean": E Θ, "second": E Θ², "var": Var Θ} exactly (see :func:`ntk_moment`).

    >>> n = sp.Symbol("n", positive=True)
    >>> sp.factor(ntk_moments("abs", [n], C_W=1)["var"])
    4/n
    """
    mean = ntk_moment(kind, widths, 1, x_norm2_over_n0, C_W, lambda_W, lambda_b)
    second = ntk_moment(kind, widths, 2, x_norm2_over_n0, C_W, lambda_W, lambda_b)
    var = second - mean ** 2
    var = var if var.is_number else _simplify(var)
    return {"mean": mean, "second": second, "var": var}


def ntk_series(kind: str, L: int, order: int, x_norm2_over_n0=1, C_W=1, lambda_W=None, lambda_b=0) -> dict:
    """The exact E Θ and Var Θ at L equal widths n, expanded in 1/n: coefficients of n^0..n^{−order}.

    ReLU's exponentially small 2^{−n} terms have no 1/n expansion and are dropped.  Returns
    ``{"mean": [c0, c1, ...], "var": [v0, v1, ...]}`` (SymPy), the shape of ``ntk-stats --series``.

    >>> ntk_series("linear", 2, 2)
    {'mean': [3, 0, 0], 'var': [0, 20, 16]}
    """
    if isinstance(L, bool) or not isinstance(L, int) or L < 1:
        raise PerturbError(f"L must be a positive integer, got {L!r}")
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 8:
        raise PerturbError(f"order must be an integer in 0..8, got {order!r}")
    n = sp.Symbol("n", positive=True)
    eps = sp.Symbol("epsilon", positive=True)
    m = ntk_moments(kind, [n] * L, x_norm2_over_n0, C_W, lambda_W, lambda_b)
    out = {}
    for key in ("mean", "var"):
        e = sp.expand(m[key]).subs(sp.Pow(2, -n), 0)
        ser = sp.series(sp.cancel(e.subs(n, 1 / eps)), eps, 0, order + 1).removeO()
        out[key] = [sp.nsimplify(ser.coeff(eps, k)) for k in range(order + 1)]
    return out


def transfer_growth(kind: str, n) -> sp.Expr:
    """The per-layer growth factor of E Θ² at equal width n and criticality: M(2, 0)/M(1, 0)².

    The transfer matrix of E Θ² is triangular in the phases; its largest diagonal entry, with
    the mean's growth divided out, is E X²/(E X)² (both copies in an X phase), so at fixed n
    E Θ²/(E Θ)² grows like (E X²/(E X)²)^L = e^{β}: ReLU 1 + 5/n, linear 1 + 2/n.  The prefactor
    tends to 1/3 as L → ∞ (each copy's backward window weighs 1/3 against a forward layer, the
    output layer gives E(χ²_1)² = 3; docs/relu_exact.md).

    >>> transfer_growth("relu", sp.Symbol("n", positive=True))
    (n + 5)/n
    """
    kind = _kind(kind)
    n = sp.sympify(n, strict=True)
    r = layer_moment(kind, n, 2, 0) / layer_moment(kind, n, 1, 0) ** 2
    if kind == "relu" and not n.is_number:
        r = r.subs(sp.Pow(2, -n), 0)
    return sp.factor(sp.cancel(r))


def _x_norm2_over_n0(x) -> sp.Rational:
    if isinstance(x, str) or not isinstance(x, Sequence | np.ndarray):
        x = [x]
    xs = [_num(v, "x", signed=True) for v in x]
    if not xs:
        raise PerturbError("x is empty: give the input vector")
    q = sum(v * v for v in xs) / len(xs)
    if q == 0:
        raise PerturbError("x = 0: the NTK at a zero input degenerates; give a non-zero input")
    return q


def relu_ntk_moments(widths, x, C_W=2, lambda_W=None, lambda_b=0, C_b=0, p_max: int = 2) -> dict:
    """Exact E Θ^p (p ≤ ``p_max``), mean and variance of a ReLU network's NTK at one input x.

    Zero biases (C_b = 0; the bias learning rates λ_b may be non-zero), any widths and depth,
    per-layer C_W and λ's (λ_W defaults to C_W: the NTK parameterisation).  Derivation in the
    module docstring; σ'(0) = 0 (a layer with no active neuron leaves only the output bias).

    Returns:
        {"mean", "second", "var", "moments": {p: E Θ^p}} as SymPy Rationals (or expressions in
        symbolic widths).

    >>> m = relu_ntk_moments([8, 8], [1, 0])
    >>> m["mean"], m["var"] / m["mean"] ** 2
    (3, 577/576)
    """
    vals = list(C_b) if isinstance(C_b, Sequence) and not isinstance(C_b, str) else [C_b]
    for v in vals:
        if _num(v, "C_b") != 0:
            raise PerturbError(f"C_b must be 0 for the exact ReLU NTK (with biases the network above a "
                               f"layer is not homogeneous and the matrix model fails), got {v!r}")
    if isinstance(p_max, bool) or not isinstance(p_max, int) or not 2 <= p_max <= MAX_P:
        raise PerturbError(f"p_max must be an integer in 2..{MAX_P}, got {p_max!r}")
    q = _x_norm2_over_n0(x)
    moms = {p: ntk_moment("relu", widths, p, q, C_W, lambda_W, lambda_b) for p in range(1, p_max + 1)}
    var = moms[2] - moms[1] ** 2
    return {"mean": moms[1], "second": moms[2], "var": var if var.is_number else _simplify(var),
            "moments": moms}


def sample_theta(kind: str, widths: Sequence[int], n_samples: int, seed: int, x_norm2_over_n0=1.0,
                 C_W=1.0, lambda_W=None, lambda_b=0.0) -> np.ndarray:
    """Exact samples of Θ from the scalar chain (2L + 1 chi-squares per sample, no network).

    The law is the one derived in the module docstring, so histograms, quantiles and
    log-moments of Θ at any depth cost O(L) per sample (the tests compare it with real networks
    by a two-sample Kolmogorov–Smirnov test).

    >>> th = sample_theta("relu", [8, 8], 4, seed=0, C_W=2.0)
    >>> th.shape
    (4,)
    """
    kind = _kind(kind)
    ws = _widths(widths)
    if not all(w.is_Integer for w in ws):
        raise PerturbError(f"widths must be positive integers for sampling, got {widths!r}")
    ws = [int(w) for w in ws]
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 1:
        raise PerturbError(f"n_samples must be a positive integer, got {n_samples!r}")
    L1 = len(ws) + 1
    q = float(_num(x_norm2_over_n0, "x_norm2_over_n0", positive=True))
    cw = [float(v) for v in _per_layer(C_W, L1, "C_W", positive=True)]
    lw = cw if lambda_W is None else [float(v) for v in _per_layer(lambda_W, L1, "lambda_W")]
    lb = [float(v) for v in _per_layer(lambda_b, L1, "lambda_b")]
    rng = np.random.default_rng(seed)
    N = int(n_samples)
    act = [rng.binomial(n, 0.5, N) if kind == "relu" else np.full(N, n) for n in ws]   # N_ℓ
    X = [rng.gamma(b / 2, 2.0) for b in act]                              # χ²_{N_ℓ} (0 if N_ℓ = 0)
    Y = [rng.gamma(np.maximum(b - 1, 0) / 2, 2.0) for b in act]           # χ²_{N_ℓ−1}
    X.append(rng.chisquare(1, N))                                          # output layer: χ²_1
    nprev = [1, *ws]                                                       # n_0 enters through q
    c = [cw[m] / nprev[m] for m in range(L1)]                              # c_1..c_{L+1}
    # forward: r[ℓ] = ρ_ℓ/n_ℓ (ℓ = 0..L), ρ_0/n_0 = q, ρ_ℓ = c_ℓ ρ_{ℓ−1} X_ℓ
    r = [np.full(N, q)]
    for ell in range(1, L1):
        r.append(r[-1] * nprev[ell - 1] * c[ell - 1] * X[ell - 1] / nprev[ell])
    # backward: P = z²/ρ_ℓ = Π_{m>ℓ} c_m X_m and G_ℓ = P + c_{ℓ+1} Y_ℓ G_{ℓ+1}, G_{L+1} = 1
    theta = lb[L1 - 1] + lw[L1 - 1] * r[L1 - 1]
    P = c[L1 - 1] * X[L1 - 1]
    G = np.ones(N)
    for ell in range(L1 - 1, 0, -1):
        G = P + c[ell] * Y[ell - 1] * G
        theta = theta + G * (lb[ell - 1] + lw[ell - 1] * r[ell - 1])
        P = P * c[ell - 1] * X[ell - 1]
    if kind == "relu":
        theta[np.any(np.stack(act) == 0, axis=0)] = lb[L1 - 1]           # a layer entirely off
    return theta
