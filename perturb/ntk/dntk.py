"""The dNTK–preactivation correlation E[z O3] at order 1/n, derived (one input).

Setting: one input x, one output z, NTK Θ = Σ_μ λ_μ (∂_μ z)², and the contracted dNTK

    O3 = {Θ, z} = Σ_μ λ_μ ∂_μΘ ∂_μz,

which drives the NTK under gradient descent (docs/reference.md §5: dΘ/dt = −η O3 (z − y)).  By the
sign symmetry of the last layer E[O3] = 0; the first non-trivial statistic is E[z O3] = O(1/n),
PDLT's dNTK–preactivation correlation (ch. 11, their P and Q).

**The neuron-level identity.**  Let neuron a of layer ℓ+1 have z_a = b_a + W_a·σ and
Θ_ab = δ_ab (λ_b + (λ_W/m)|σ|²) + W_aᵀ M W_b with M_pq = σ'_p Θ_pq σ'_q (layer ℓ quantities,
m = n_ℓ).  Differentiating along every parameter (the layer's own weights and, through z_p,
all earlier ones) gives, with v_p = σ'_p Σ_q Θ_pq σ'_q σ_q and the layer-ℓ dNTK
O3_{pq,s} = Σ_μ λ_μ ∂_μΘ_pq ∂_μz_s,

    O3_{ab,c} = (λ_W/m)[δ_ac W_b·v + δ_bc W_a·v] + 2δ_ab (λ_W/m) W_c·v + Σ_pqs W_ap W_bq W_cs T3_pqs,
    T3_pqs = σ''_p σ'_q σ'_s Θ_pq Θ_ps + σ'_p σ''_q σ'_s Θ_pq Θ_qs + σ'_p σ'_q σ'_s O3_{pq,s}.

(:func:`dntk_neuron_terms` returns these pieces; the test suite checks this identity against
forward-mode derivatives of real networks.)

**Conditional structure (the closure).**  Integrating the Gaussian rows W_a ~ N(0, (C_W/m) I)
conditionally on z (E[W_a | z_a] = (C_W/m) σ z_a/Σ, E[W_ap W_aq | z_a] = (C_W/m) δ_pq +
(C_W/m)² σ_p σ_q (z_a² − Σ)/Σ²) gives, for a ≠ c of layer ℓ+1 and to order 1/m,

    E[O3_{ac,c} | z_a, z_c] = (Q̃/m) z_a/Σ,       E[O3_{aa,c} | z_a, z_c] = (P̃/m) z_c/Σ,
    E[z_a O3_{aa,a} | layer ℓ] = (P̃ + 2Q̃)/m,

with two new collective observables of layer ℓ (O(1) pair sums, like T and R of
:mod:`~perturb.ntk.derive`)

    Q̃ = (C_W²/m) [ (λ_W/C_W) σᵀDΘDσ + Σ_pq σ_p T3_pqq ],
    P̃ = (C_W²/m) [ 2(λ_W/C_W) σᵀDΘDσ + Σ_pq σ_q T3_ppq ]          (D = diag σ').

Every other contraction (σσσT3/m³, ...) is O(1/m²).  Their means P = E P̃, Q = E Q̃ at leading
order follow from the one-neuron law of layer ℓ (z ~ N(0, Σ), Θ_pp → Ω, the diagonal
O3_{pp,p} = O(1/m)) and the pair laws of :func:`~perturb.ntk.derive.conditional_structure`
(E[Θ_pq | z] = (R/m') z_p z_q/Σ², E[Θ_pq² | z] = T/m') and of the lemma above one layer down.
:func:`derive_dntk_layer_map` does exactly this with SymPy — the pair sums are generated from
T3 by index collapse (p = q diagonal, p ≠ q pairs), every pair-object monomial is replaced by its
conditional law, and the Gaussian atoms E(f, K) are taken at the leading-order K — and returns
the layer map of (P, Q).  Nothing in it is typed from PDLT; tests compare it with an exact
Gaussian-integration-by-parts identity (ReLU and linear networks) and with Monte Carlo.

For the output neuron of layer L+1:  E[z O3] = (P + 2Q)/n_L + O(n⁻²)  (P = Q = 0 at ℓ = 1, where
the NTK does not depend on the parameters).

**Kinks.**  σ'' appears only in the atoms <σσ'²σ''>, <σσ''>, <σ'σ''z>; for ReLU (σ'' = δ) each
has a factor vanishing at the kink, so the distributional and the almost-everywhere O3 give the
same E[z O3] at this order.  Delta atoms are evaluated by the sifting rule
(:func:`sift_delta`), never by quadrature.

>>> rec = derive_dntk_layer_map()
>>> sorted(rec.exprs)
['P', 'Q']
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from ..activations import SIGMA, Z, get_activation
from ..compile import compile_expr
from ..errors import PerturbError
from ..gaussian import expect
from ..gaussian.atom import E, GaussianExpectation
from ..gaussian.dispatch import substitute_activation
from .chain import NTKStatistics, _per_layer, closed_atoms, ntk_statistics, ntk_statistics_exact

__all__ = ["DNTKLayerMap", "DNTKStatistics", "derive_dntk_layer_map", "dntk_neuron_terms",
           "dntk_statistics", "dntk_statistics_exact", "sift_delta"]

#: the order-1 dNTK statistics, stored per layer next to K, H, B, F
DNTK_NAMES = ("P", "Q")


@dataclass(frozen=True)
class DNTKLayerMap:
    """The derived leading-order layer map of the dNTK statistics (P, Q) at one input.

    ``exprs[name]`` is the outgoing P or Q (PDLT normalisation: E[z O3] = (P + 2Q)/n at the next
    layer) in the symbols ``syms`` (incoming K, H, B, F, P, Q; this layer's C_W, λ_W; r) and the
    Gaussian atoms E(f, K) of the generic σ.
    """

    syms: dict
    exprs: dict

    def __getitem__(self, name: str) -> sp.Expr:
        return self.exprs[name]

    def args(self) -> list[sp.Symbol]:
        """Argument order used for compilation."""
        return [self.syms[k] for k in ("K", "H", "B", "F", "P", "Q", "C_W", "lambda_W", "r")]


# --------------------------------------------------------------------------- neuron identity


def dntk_neuron_terms(sig, d1, d2, th, o3, lam_W, m):
    """The pieces of O3_{ab,c} of the next layer, as functions of layer-ℓ index labels.

    Args:
        sig, d1, d2: ``label -> σ, σ', σ''`` of a layer-ℓ neuron.
        th: ``(p, q) -> Θ_pq`` (layer-ℓ NTK); o3: ``(p, q, s) -> O3_{pq,s}`` (layer-ℓ dNTK).
        lam_W, m: the next layer's λ_W and this layer's width.

    Returns:
        ``(T3, sv)``: ``T3(p, q, s)`` (the cubic kernel of the identity in the module docstring)
        and ``sv(p, q)`` = σ_p σ'_p Θ_pq σ'_q σ_q (the summand of σᵀDΘDσ; v = DΘDσ).
    """

    def T3(p, q, s):
        return (d2(p) * d1(q) * d1(s) * th(p, q) * th(p, s)
                + d1(p) * d2(q) * d1(s) * th(p, q) * th(q, s)
                + d1(p) * d1(q) * d1(s) * o3(p, q, s))

    def sv(p, q):
        return sig(p) * d1(p) * th(p, q) * d1(q) * sig(q)

    return T3, sv


# --------------------------------------------------------------------------- derivation


def sift_delta(f: sp.Expr, K) -> sp.Expr | None:
    """<f>_K for f = g(z)·δ(z − a) (one DiracDelta factor): g(a) e^{−a²/2K}/√(2πK).

    Returns None if f has no DiracDelta; raises if the value depends on the convention for
    Heaviside(0) (a product like δ(z)·H(z) that is not multiplied by something vanishing there).

    >>> from perturb.activations import Z
    >>> K = sp.Symbol("K", positive=True)
    >>> sift_delta(Z * sp.Heaviside(Z) * sp.DiracDelta(Z), K)
    0
    """
    f = sp.expand(f)
    if not f.has(sp.DiracDelta):
        return None
    out = sp.S.Zero
    for term in sp.Add.make_args(f):
        deltas = [a for a in sp.Mul.make_args(term) if isinstance(a, sp.DiracDelta)]
        if len(deltas) != 1 or len(deltas[0].args) != 1:
            raise PerturbError(f"cannot integrate {term}: only one first-order DiracDelta factor is supported")
        (root,) = sp.solve(deltas[0].args[0], Z)
        g = term / deltas[0]
        vals = {g.subs(Z, root).subs(sp.Heaviside(0), h) for h in (0, sp.S.Half, 1)}
        vals = {sp.simplify(v.replace(sp.Heaviside, lambda *a: sp.Heaviside(a[0], sp.S.Half))) for v in vals}
        if len(vals) != 1:
            raise PerturbError(f"<{term}> depends on the value of Heaviside at the kink; ill-defined product")
        slope = abs(sp.diff(deltas[0].args[0], Z))
        out += vals.pop() * sp.exp(-root**2 / (2 * K)) / (slope * sp.sqrt(2 * sp.pi * K))
    return sp.simplify(out)


def _collapse(fn, labels=("j", "k")):
    """A double sum Σ_pq fn(p, q) split into its diagonal (p = q = j) and one off-diagonal pair."""
    j, k = labels
    return fn(j, j), fn(j, k)


@functools.lru_cache(maxsize=1)
def derive_dntk_layer_map() -> DNTKLayerMap:
    """Derive the leading-order layer map of (P, Q) for the generic σ.

    Takes the statistics of layer ℓ (PDLT labels, incoming width n_{ℓ−1}) to P, Q of layer ℓ+1
    (width n_ℓ); r = n_ℓ/n_{ℓ−1}.  Derived once and cached (< 1 s).

    >>> rec = derive_dntk_layer_map()
    >>> sorted(str(s) for s in rec["P"].free_symbols)
    ['C_W', 'F', 'H', 'K', 'P', 'lambda_W', 'r']
    """
    K = sp.Symbol("K", positive=True)
    H = sp.Symbol("H", positive=True)
    C_W = sp.Symbol("C_W", positive=True)
    lam_W = sp.Symbol("lambda_W", nonnegative=True)
    r = sp.Symbol("r", positive=True)
    B, F, P, Q = (sp.Symbol(name, real=True) for name in ("B", "F", "P", "Q"))
    syms = dict(K=K, H=H, B=B, F=F, P=P, Q=Q, C_W=C_W, lambda_W=lam_W, r=r)

    # conditioning values of the previous layer's observables, widths
    S = sp.Symbol("S", positive=True)       # Σ^{(ℓ−1)}
    Om = sp.Symbol("Omega", real=True)     # Ω^{(ℓ−1)}
    Rr, Tt, Pt, Qt = (sp.Symbol(f"{c}_prev", real=True) for c in "RTPQ")   # R, T, P̃, Q̃ of ℓ−1
    m = sp.Symbol("m", positive=True)      # n_ℓ (this layer)
    mp = sp.Symbol("m_prev", positive=True)    # n_{ℓ−1}

    # per-label neuron symbols of layer ℓ and pair objects
    zs = {lab: sp.Symbol(f"z_{lab}", real=True) for lab in "jk"}
    s = SIGMA(Z)
    ds, dds = sp.diff(s, Z), sp.diff(s, Z, 2)
    sig = lambda p: s.subs(Z, zs[p])      # noqa: E731
    d1 = lambda p: ds.subs(Z, zs[p])      # noqa: E731
    d2 = lambda p: dds.subs(Z, zs[p])     # noqa: E731
    th_sym = {}

    def th(p, q):
        key = tuple(sorted((p, q)))
        return th_sym.setdefault(("th", key), sp.Symbol(f"Theta_{''.join(key)}", real=True))

    def o3(p, q, s_):
        key = (*sorted((p, q)), s_)
        return th_sym.setdefault(("o3", key), sp.Symbol(f"O3_{''.join(key)}", real=True))

    T3, sv = dntk_neuron_terms(sig, d1, d2, th, o3, lam_W, m)
    sigv = _collapse(sv)
    X1 = _collapse(lambda p, q: sig(p) * T3(p, q, q))
    X2 = _collapse(lambda p, q: sig(q) * T3(p, p, q))
    # Q̃, P̃ summands (times C_W²/m): diagonal and off-diagonal parts
    Qt_parts = [lam_W / C_W * a + b for a, b in zip(sigv, X1, strict=True)]
    Pt_parts = [2 * lam_W / C_W * a + b for a, b in zip(sigv, X2, strict=True)]

    # conditional laws.  Diagonal (one neuron, leading order): Θ_jj → Ω, O3_{jj,j} = O(1/m').
    # Off-diagonal pair j ≠ k: every monomial in the pair objects has a conditional mean
    # (times functions of z_j, z_k), from derive.conditional_structure and the lemma one layer down.
    Tjj, Tkk, Tjk = th("j", "j"), th("k", "k"), th("j", "k")
    diag_rule = {Tjj: Om, o3("j", "j", "j"): 0}
    zj, zk = zs["j"], zs["k"]
    pair_rule = {
        Tjk: Rr / mp * zj * zk / S**2,
        Tjk**2: Tt / mp,
        Tjj * Tjk: Om * Rr / mp * zj * zk / S**2,
        Tkk * Tjk: Om * Rr / mp * zj * zk / S**2,
        o3("j", "k", "k"): Qt / mp * zj / S,
        o3("j", "k", "j"): Qt / mp * zk / S,
        o3("j", "j", "k"): Pt / mp * zk / S,
        o3("k", "k", "j"): Pt / mp * zj / S,
    }
    pair_objects = [v for k_, v in th_sym.items() if v not in (Tjj, Tkk)]

    def e_pair(expr):
        """E over independent z_j, z_k ~ N(0, S) of a pair summand, pair objects replaced."""
        expr = sp.expand(expr)
        out = sp.S.Zero
        for term in sp.Add.make_args(expr):
            objs, rest = sp.S.One, sp.S.One
            for fac in sp.Mul.make_args(term):
                if fac.free_symbols & set(pair_objects) or fac.free_symbols & {Tjj, Tkk}:
                    objs *= fac
                else:
                    rest *= fac
            if objs not in pair_rule:
                raise AssertionError(f"no conditional law for the pair monomial {objs}")  # pragma: no cover
            term = sp.expand(rest * pair_rule[objs])
            for t in sp.Add.make_args(term):
                fj, fk, c = sp.S.One, sp.S.One, sp.S.One
                for fac in sp.Mul.make_args(t):
                    if fac.has(zj):
                        fj *= fac
                    elif fac.has(zk):
                        fk *= fac
                    else:
                        c *= fac
                out += c * E(fj.subs(zj, Z), S) * E(fk.subs(zk, Z), S)
        return sp.expand(out)

    def e_diag(expr):
        expr = sp.expand(sp.expand(expr).xreplace(diag_rule))
        if expr.free_symbols & set(pair_objects):  # pragma: no cover
            raise AssertionError(f"diagonal summand keeps pair objects: {expr}")
        return E(expr.subs(zj, Z), S)

    def collective(parts):
        """(C_W²/m)[m · diagonal + m(m − 1) · pair] at leading order, at the incoming means."""
        diag, off = parts
        total = C_W**2 / m * (m * e_diag(diag) + m * (m - 1) * e_pair(off))
        total = sp.expand(total.subs(m, r * mp))
        lead = sp.limit(total, mp, sp.oo) if total.has(mp) else total
        lead = lead.xreplace({S: K, Om: H, Rr: F, Tt: B, Pt: P, Qt: Q})
        return sp.expand(lead)

    exprs = {"P": collective(Pt_parts), "Q": collective(Qt_parts)}
    for name, x in exprs.items():
        stray = x.free_symbols & {S, Om, Rr, Tt, Pt, Qt, m, mp, zj, zk}
        if stray:  # pragma: no cover
            raise AssertionError(f"{name}: leftover symbols {stray}")
    return DNTKLayerMap(syms, exprs)


# --------------------------------------------------------------------------- folds


@dataclass(frozen=True)
class DNTKStatistics:
    """Per-layer dNTK statistics on top of the NTK statistics of :mod:`~perturb.ntk.chain`.

    Attributes:
        ntk: the :class:`~perturb.ntk.chain.NTKStatistics` (K, H, G1, V, H1, A, B, D, F).
        layers: ``layers["P"]``, ``layers["Q"]`` over ℓ = 1..L+1.
    """

    ntk: NTKStatistics
    layers: dict = field(repr=False)

    @property
    def widths(self):
        return self.ntk.widths

    @property
    def z_dntk(self):
        """E[z O3] of the output at order 1/n: (P + 2Q)/n_L."""
        return (self.layers["P"][-1] + 2 * self.layers["Q"][-1]) / self.ntk.widths[-1]


def _activation_exprs(activation):
    act = get_activation(activation)
    if act.is_generic:
        raise PerturbError("the dNTK statistics need a concrete activation (relu, tanh, gelu, ...)")
    rec = derive_dntk_layer_map()
    exprs = {k: substitute_activation(rec.exprs[k], act) for k in DNTK_NAMES}
    atoms = sorted(set().union(*[e.atoms(GaussianExpectation) for e in exprs.values()]),
                   key=sp.default_sort_key)
    return act, rec, exprs, atoms


@functools.lru_cache(maxsize=32)
def _compiled(activation_name: str):
    act, rec, exprs, atoms = _activation_exprs(activation_name)
    K = rec.syms["K"]
    leaves = [sp.Dummy(f"e{i}") for i in range(len(atoms))]
    fns = {k: compile_expr(e.xreplace(dict(zip(atoms, leaves, strict=True))), rec.args() + leaves)
           for k, e in exprs.items()}
    evaluators = []
    for a in atoms:
        f = a.args[0]
        sifted = sift_delta(f, K)
        if sifted is not None:
            evaluators.append(("closed", compile_expr(sifted, [K])))
        else:
            evaluators.append(("expect", f))
    return rec, evaluators, fns


def _atom_values(evaluators, K, dps):
    vals = []
    for kind, item in evaluators:
        if kind == "closed":
            vals.append(item.mpmath(K, dps=dps + 5) if dps else np.asarray(item(K), dtype=float))
        else:
            vals.append(expect(item, K, method="mpmath", dps=dps + 5) if dps else expect(item, K))
    return vals


def dntk_statistics(activation, widths: Sequence[int], x, *, C_W=1.0, C_b=0.0, lambda_W=None,
                    lambda_b=None, dps: int | None = None) -> DNTKStatistics:
    """E[z O3] of one output at order 1/n (and the per-layer P, Q), by folding the derived map.

    Same arguments as :func:`~perturb.ntk.chain.ntk_statistics` (λ = C by default).

    >>> st = dntk_statistics("relu", [100, 100], [1.0], C_W=2.0, C_b=0.0)
    >>> round(float(st.z_dntk * 100), 10)        # (P + 2Q) at ℓ = 3, critical ReLU, λ = C
    128.0
    """
    ntk = ntk_statistics(activation, widths, x, C_W=C_W, C_b=C_b, lambda_W=lambda_W,
                         lambda_b=lambda_b, dps=dps)
    L1 = len(ntk.widths) + 1
    cw = _per_layer(C_W, L1, "C_W", strict=True)
    lw = cw if lambda_W is None else _per_layer(lambda_W, L1, "lambda_W")
    act = get_activation(activation)
    rec, evaluators, fns = _compiled(act.name)
    ws = ntk.widths
    zero = 0 * ntk.layers["K"][0]
    P, Q = zero, zero
    layers = {"P": [P], "Q": [Q]}
    for ell in range(1, L1):
        K, H, B, F = (ntk.layers[name][ell - 1] for name in ("K", "H", "B", "F"))
        if dps:
            with mpmath.workdps(dps + 10):
                r = mpmath.mpf(ws[ell - 1]) / ws[ell - 2] if ell > 1 else mpmath.mpf(1)
                args = [K, H, B, F, P, Q, mpmath.mpf(cw[ell]), mpmath.mpf(lw[ell]), r,
                        *_atom_values(evaluators, K, dps)]
            P, Q = (fns[k].mpmath(*args, dps=dps + 10) for k in DNTK_NAMES)
        else:
            r = ws[ell - 1] / ws[ell - 2] if ell > 1 else 1.0
            args = [K, H, B, F, P, Q, np.asarray(cw[ell], float), np.asarray(lw[ell], float), r,
                    *_atom_values(evaluators, K, None)]
            P, Q = (np.asarray(fns[k](*args), dtype=float)[()] for k in DNTK_NAMES)
            if not (np.all(np.isfinite(P)) and np.all(np.isfinite(Q))):
                raise PerturbError(f"layer {ell + 1}: P or Q not finite (divergent Gaussian integral or overflow)")
        layers["P"].append(P)
        layers["Q"].append(Q)
    return DNTKStatistics(ntk, layers)


def dntk_statistics_exact(activation, widths: Sequence, x, *, C_W=1, C_b=0, lambda_W=None,
                          lambda_b=None) -> DNTKStatistics:
    """The same fold in exact SymPy arithmetic (every atom needs a closed form or a delta rule).

    >>> st = dntk_statistics_exact("relu", [10, 10], [1], C_W=2, C_b=0)
    >>> st.z_dntk                                # 128/10
    64/5
    """
    ntk = ntk_statistics_exact(activation, widths, x, C_W=C_W, C_b=C_b, lambda_W=lambda_W,
                               lambda_b=lambda_b)
    L1 = len(ntk.widths) + 1
    cw = [sp.nsimplify(v) for v in _per_layer(C_W, L1, "C_W")]
    lw = cw if lambda_W is None else [sp.nsimplify(v) for v in _per_layer(lambda_W, L1, "lambda_W")]
    _, rec, exprs, atoms = _activation_exprs(activation)
    closed = closed_atoms(atoms, rec.syms["K"], "dntk_statistics", first=sift_delta)
    exprs = {k: e.xreplace(closed) for k, e in exprs.items()}
    ws = ntk.widths
    P, Q = sp.S.Zero, sp.S.Zero
    layers = {"P": [P], "Q": [Q]}
    y = rec.syms
    for ell in range(1, L1):
        r = ws[ell - 1] / ws[ell - 2] if ell > 1 else sp.S.One
        sub = {y["K"]: ntk.layers["K"][ell - 1], y["H"]: ntk.layers["H"][ell - 1],
               y["B"]: ntk.layers["B"][ell - 1], y["F"]: ntk.layers["F"][ell - 1], y["P"]: P, y["Q"]: Q,
               y["C_W"]: cw[ell], y["lambda_W"]: lw[ell], y["r"]: r}
        P, Q = (sp.simplify(exprs[k].xreplace(sub)) for k in DNTK_NAMES)
        layers["P"].append(P)
        layers["Q"].append(Q)
    return DNTKStatistics(ntk, layers)

