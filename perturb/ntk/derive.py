"""The NTK's collective observables and their layer map at order 1/n, derived (one input).

docs/reference.md §3, "NTK at order 1/n".  The engine's chain (:mod:`perturb.finite.layer`) follows the
collective observable Σ of the preactivations.  The NTK needs more: conditionally on layer ℓ,
neuron i of layer ℓ+1 has

    z_i = b_i + W_i·σ,     Θ_ii = λ_b + (λ_W/n) |σ|² + W_iᵀ M W_i,     M_jk = σ'_j Θ^{(ℓ)}_jk σ'_k,

with one Gaussian row W_i ~ N(0, (C_W/n) I) shared by the two.  Gaussian conditioning on the row
gives (exactly, for fixed layer ℓ; ``m`` = n_ℓ):

* E[Θ_ii | z_i] = Ω + (R/m)(z_i² − Σ)/Σ²,          Var(Θ_ii | z_i) = 2T/m + O(m⁻²),
* E[Θ_ij | z_i, z_j] = (R/m) z_i z_j/Σ² (i ≠ j),    E[Θ_ij² | z_i, z_j] = T/m + O(m⁻²),

with the four collective observables of layer ℓ

    Σ = C_b + (C_W/m) Σ_j σ_j²,                      Ω = λ_b + (λ_W/m) Σ_j σ_j² + (C_W/m) Σ_j σ'_j² Θ_jj,
    T = (C_W²/m) Σ_jk σ'_j² σ'_k² Θ_jk²,            R = (C_W²/m) Σ_jk σ_j σ'_j Θ_jk σ'_k σ_k.

Σ and Ω are means over the iid neurons of layer ℓ (fluctuations O(m^{-1/2})); T and R are O(1)
pair sums that enter only multiplied by 1/m, so at order 1/n only their leading means are
needed.  Every other contraction (σᵀM²σ/m², tr M³/m³, (σᵀMσ)²/m⁴, …) enters at O(m⁻²).  This
is the closure: the state (Σ, Ω | T, R) of layer ℓ determines the law of layer ℓ+1 to order 1/n.

PDLT's quantities are the moments of this state (r = n_ℓ / n_{ℓ−1}):

    E Σ^{(ℓ)} = K^{(ℓ+1)} + G1/n_ℓ,  Var Σ = V/n_ℓ,  E Ω = H^{(ℓ+1)} + H1/n_ℓ,  Var Ω = A/n_ℓ,
    Cov(Σ, Ω) = D/n_ℓ,  E T = B,  E R = F        (all labelled ℓ+1 in PDLT's convention).

:func:`derive_ntk_layer_map` derives their layer map with SymPy: the conditional cumulants of the
means of iid neurons (as in :mod:`perturb.finite.layer`), the conditional structure above, a
Taylor expansion of every Gaussian-expectation atom around (K, H) (derivatives in K by the atom's
Hermite rule), and closure with the incoming moments — then truncation at order 1/n.  Nothing in
the resulting recursions is typed from a paper; tests compare them with docs/reference.md §3.

>>> rec = derive_ntk_layer_map()
>>> sorted(rec.exprs)
['A', 'B', 'D', 'F', 'G1', 'H', 'H1', 'K', 'V']
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

from .._diskcache import disk_cached
from ..activations import SIGMA, Z
from ..gaussian.atom import E

__all__ = ["NTKSymbols", "NTKLayerMap", "derive_ntk_layer_map", "STAT_NAMES", "conditional_structure"]

#: the order-1 statistics in the order they are stored
STAT_NAMES = ("G1", "V", "H1", "A", "B", "D", "F")


@dataclass(frozen=True)
class NTKSymbols:
    """The symbols of the derived map: incoming K, H and statistics; this layer's C's, λ's and r."""

    K: sp.Symbol
    H: sp.Symbol
    C_W: sp.Symbol
    C_b: sp.Symbol
    lam_W: sp.Symbol
    lam_b: sp.Symbol
    r: sp.Symbol
    stats: dict  # name -> symbol (incoming G1, V, H1, A, B, D, F)

    def args(self) -> list[sp.Symbol]:
        """The argument order used for compilation."""
        return [self.K, self.H, self.C_W, self.C_b, self.lam_W, self.lam_b, self.r,
                *[self.stats[s] for s in STAT_NAMES]]


@dataclass(frozen=True)
class NTKLayerMap:
    """The derived order-1 layer map of the NTK statistics at one input.

    ``exprs[name]`` is the outgoing quantity (K, H at infinite width; G1, V, H1, A, B, D, F in
    PDLT's normalisation, i.e. times the outgoing width) in the symbols :attr:`syms` and the
    Gaussian-expectation atoms ``E(f, K)`` of the generic σ.
    """

    syms: NTKSymbols
    exprs: dict

    def __getitem__(self, name: str) -> sp.Expr:
        return self.exprs[name]


def _sigma_parts():
    s = SIGMA(Z)
    return s, sp.diff(s, Z)


def conditional_structure(S, Om, R, T, m, eps):
    """The exact conditional law of one neuron's (z, Θ) given the previous layer's observables.

    Returns ``(mu, var)``: E[Θ | z] and Var(Θ | z) to order 1/m, as SymPy expressions in
    :data:`~perturb.activations.Z` (``eps`` marks one power of 1/width).  See the module docstring
    for the derivation (Gaussian conditioning on the shared weight row).
    """
    mu = Om + eps * R * (Z**2 - S) / (m * S**2)
    var = eps * 2 * T / m
    return mu, var


def _truncate(expr: sp.Expr, eps: sp.Symbol, order: int = 1) -> dict[int, sp.Expr]:
    """Coefficients of ε^0..ε^order of a polynomial in ε (negative powers are a bookkeeping error)."""
    poly = sp.Poly(sp.expand(expr), eps)   # raises if ε appears with a negative power
    return {k: poly.coeff_monomial(eps**k) for k in range(order + 1)}


@functools.lru_cache(maxsize=1)
@disk_cached
def derive_ntk_layer_map() -> NTKLayerMap:
    """Derive the order-1 layer map of (K, H; G1, V, H1, A, B, D, F) for the generic σ.

    The map takes the statistics of layer ℓ (PDLT labels; incoming width n_{ℓ−1}) to those of
    layer ℓ+1 (width n_ℓ); ``r`` = n_ℓ/n_{ℓ−1}.  Derived once and cached (~1 s).

    >>> rec = derive_ntk_layer_map()
    >>> rec["K"]
    C_W*E(sigma(z)**2, K) + C_b
    """
    K = sp.Symbol("K", positive=True)
    H = sp.Symbol("H", positive=True)
    C_W = sp.Symbol("C_W", positive=True)
    C_b = sp.Symbol("C_b", nonnegative=True)
    lam_W = sp.Symbol("lambda_W", nonnegative=True)
    lam_b = sp.Symbol("lambda_b", nonnegative=True)
    r = sp.Symbol("r", positive=True)
    stats = {name: sp.Symbol(name, real=True) for name in STAT_NAMES}
    syms = NTKSymbols(K, H, C_W, C_b, lam_W, lam_b, r, stats)

    # conditioning values of the previous layer's observables, widths, order parameter
    S = sp.Symbol("S", positive=True)        # Σ^{(ℓ−1)}
    Om = sp.Symbol("Omega", real=True)      # Ω^{(ℓ−1)}
    Tt = sp.Symbol("T", real=True)          # T^{(ℓ−1)}
    Rr = sp.Symbol("R", real=True)          # R^{(ℓ−1)}
    m = sp.Symbol("m", positive=True)       # n_{ℓ−1}
    n = sp.Symbol("n", positive=True)       # n_ℓ
    eps = sp.Symbol("epsilon", positive=True)   # one power of 1/width
    s, ds = _sigma_parts()

    # ---- 1. one neuron of layer ℓ given layer ℓ−1: z ~ N(0, S), Θ | z as in the lemma
    mu, var = conditional_structure(S, Om, Rr, Tt, m, eps)

    def cond(f_of_theta):
        """E[f | previous layer] for f polynomial (degree <= 2) in Θ: integrate Θ | z, then z."""
        th = sp.Symbol("theta")
        poly = sp.Poly(sp.expand(f_of_theta(th)), th)
        out = sp.S.Zero
        moments = {0: sp.S.One, 1: mu, 2: mu**2 + var}
        for (k,), c in poly.terms():
            out += E(sp.expand(c * moments[k]), S)
        return sp.expand(out)

    u = lambda th: C_W * s**2                                  # noqa: E731 per-neuron part of Σ^{(ℓ)}
    w = lambda th: lam_W * s**2 + C_W * ds**2 * th             # noqa: E731 per-neuron part of Ω^{(ℓ)}
    Eu, Ew = cond(u), cond(w)
    # conditional means of Σ^{(ℓ)}, Ω^{(ℓ)}; conditional covariances of the means of n iid neurons
    mS, mO = C_b + Eu, lam_b + Ew
    cSS = eps / n * (cond(lambda th: u(th) ** 2) - Eu**2)
    cSO = eps / n * (cond(lambda th: u(th) * w(th)) - Eu * Ew)
    cOO = eps / n * (cond(lambda th: w(th) ** 2) - Ew**2)
    # pair sums T^{(ℓ)}, R^{(ℓ)}: diagonal (one neuron) + (n − 1) off-diagonal pairs of
    # independent neurons (z_1, z_2 iid N(0, S)); E[Θ_12 | z] = (R/m) z1 z2/S², E[Θ_12² | z] = T/m
    npairs = n / eps - 1
    ET = C_W**2 * (cond(lambda th: ds**4 * th**2)
                   + npairs * (eps * Tt / m) * E(ds**2, S) ** 2)
    ER = C_W**2 * (cond(lambda th: s**2 * ds**2 * th)
                   + npairs * (eps * Rr / m) * E(s * ds * Z, S) ** 2 / S**2)

    # ---- 2. average over layer ℓ−1: Taylor in (δS, δΩ) to degree 2 around (K, H), closed with
    # the incoming moments E δS = εG1/m, E δΩ = εH1/m, E δS² = εV/m, E δSδΩ = εD/m, E δΩ² = εA/m
    # (degree >= 3: O(ε²)); T, R enter only with a factor ε, so their leading means B, F suffice
    G1, V, H1, A, B, D, F = (stats[k] for k in STAT_NAMES)
    first = {S: eps * G1 / m, Om: eps * H1 / m}
    second = {(S, S): eps * V / m, (S, Om): eps * D / m, (Om, Om): eps * A / m}

    def average(g: sp.Expr) -> sp.Expr:
        g = g.xreplace({Tt: B, Rr: F})
        at = {S: K, Om: H}

        def at0(x):
            return sp.expand(x.subs(at))

        out = at0(g)
        d1 = {v: sp.diff(g, v) for v in (S, Om)}
        for v in (S, Om):
            out += at0(d1[v]) * first[v]
        for (a, b), mom in second.items():
            coeff = at0(sp.diff(d1[a], b))
            out += (coeff / 2 if a == b else coeff) * mom
        return sp.expand(out)

    EmS, EmO = average(mS), average(mO)
    VarS = average(cSS) + average(mS**2) - EmS**2
    CovSO = average(cSO) + average(mS * mO) - EmS * EmO
    VarO = average(cOO) + average(mO**2) - EmO**2
    ETl, ERl = average(ET), average(ER)

    # ---- 3. truncate at order ε and normalise by the outgoing width (PDLT: X' = n · [1/n] X)
    def at_order(x, k):
        c = _truncate(x, eps)[k]
        return sp.expand(sp.expand(c * (n if k == 1 else 1)).subs(n, r * m))

    exprs = {
        "K": at_order(EmS, 0),
        "H": at_order(EmO, 0),
        "G1": at_order(EmS, 1),
        "V": at_order(VarS, 1),
        "H1": at_order(EmO, 1),
        "A": at_order(VarO, 1),
        "D": at_order(CovSO, 1),
        "B": at_order(ETl, 0),
        "F": at_order(ERl, 0),
    }
    # bookkeeping checks: no O(1) variance, no leftover conditioning symbols or widths
    for name, x in (("Var Σ", VarS), ("Var Ω", VarO), ("Cov(Σ, Ω)", CovSO)):
        if _truncate(x, eps)[0] != 0:  # pragma: no cover - a derivation error
            raise AssertionError(f"{name} has an O(1) part")
    for name, x in exprs.items():
        stray = x.free_symbols & {S, Om, Tt, Rr, m, n, eps}
        if stray:  # pragma: no cover
            raise AssertionError(f"{name}: leftover symbols {stray}")
    return NTKLayerMap(syms, exprs)
