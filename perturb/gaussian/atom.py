"""The Gaussian-expectation atom ``<f(z_1, ..., z_m)>_K`` as an immutable SymPy node.

``E(f, K)`` is the expectation of ``f`` over a centred Gaussian with covariance ``K``:

* one variable: ``f`` is an expression in :data:`perturb.activations.Z` and ``K`` a scalar
  expression (symbolic like ``K`` or a number);
* several variables: ``f`` is an expression in ``z_1, ..., z_m`` (:func:`zvars`) and ``K`` an
  ``m × m`` symmetric :class:`sympy.ImmutableMatrix`; variables the integrand does not use are
  marginalised out (the atom keeps only the sub-covariance it needs).

The node canonicalises itself on construction (sympy's ``eval`` protocol): it is linear
(``<a f + b g> = a<f> + b<g>`` for ``a, b`` free of the integration variables), integrands free
of the integration variables come out, and pure polynomials are evaluated by Wick/Isserlis.
What remains is an atom whose integrand is a product of non-polynomial factors (σ(z)², σ'(z)…)
times a monomial — the "Gaussian-expectation atoms" of PDLT.  ``obj.func(*obj.args) == obj``.

Derivatives with respect to anything the covariance depends on follow Price's theorem in its
integrated-by-parts (Hermite) form, which needs no derivative of σ and is valid for kinked σ:

    ∂<f>_K/∂K = <f (z² − K)>_K / (2K²)                                   (one variable)
    d<f>_K/ds = ½ Σ_ij (dK_ij/ds) <f [(K⁻¹z)_i (K⁻¹z)_j − (K⁻¹)_ij]>_K     (several)

>>> import sympy as sp
>>> from perturb.activations import Z, SIGMA
>>> K = sp.Symbol("K", positive=True)
>>> E(SIGMA(Z)**2 * (Z**2 - K), K)
-K*E(sigma(z)**2, K) + E(z**2*sigma(z)**2, K)
>>> E(Z**4, K)
3*K**2
>>> sp.diff(E(SIGMA(Z)**2, K), K)
(-K*E(sigma(z)**2, K) + E(z**2*sigma(z)**2, K))/(2*K**2)
"""

from __future__ import annotations

import functools

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ..activations import Z
from ..errors import PerturbError

__all__ = ["E", "GaussianExpectation", "zvars", "integration_vars", "wick", "atom_canonical"]


@functools.cache
def zvars(m: int) -> tuple[sp.Symbol, ...]:
    """The integration variables ``z_1..z_m`` of an m-variable expectation."""
    return tuple(sp.Symbol(f"z_{i + 1}", real=True) for i in range(m))


def integration_vars(K) -> tuple[sp.Symbol, ...]:
    """The integration variables that go with covariance ``K`` (scalar -> (z,))."""
    if isinstance(K, sp.MatrixBase):
        return zvars(K.shape[0])
    return (Z,)


def _as_cov(K):
    if isinstance(K, sp.MatrixBase):
        K = sp.ImmutableMatrix(K)
        if K.shape[0] != K.shape[1]:
            raise PerturbError(f"covariance must be square, got shape {K.shape}")
        if K != K.T:
            raise PerturbError("covariance matrix must be symmetric")
        if K.shape == (1, 1):
            return K[0, 0]
        return K
    K = sp.sympify(K)
    if K.is_number and K.is_real and K.is_negative:
        raise PerturbError(f"variance must be >= 0, got K = {K}")
    return K


def wick(monomial_powers: tuple[int, ...], K) -> sp.Expr:
    """E[Π z_i^{a_i}] for z ~ N(0, K) by Isserlis' theorem (sum over pairings)."""
    total = sum(monomial_powers)
    if total % 2:
        return sp.S.Zero
    if not isinstance(K, sp.MatrixBase):
        (a,) = monomial_powers
        return sp.factorial2(a - 1) * K ** sp.Rational(a, 2) if a else sp.S.One
    labels = [i for i, a in enumerate(monomial_powers) for _ in range(a)]
    return sp.expand(_pairings(tuple(labels), K))


@functools.lru_cache(maxsize=4096)
def _pairings(labels: tuple[int, ...], K) -> sp.Expr:
    if not labels:
        return sp.S.One
    first, rest = labels[0], labels[1:]
    out = sp.S.Zero
    seen: dict[int, int] = {}
    for lab in rest:
        seen[lab] = seen.get(lab, 0) + 1
    # group identical partners: pairing `first` with any copy of label `lab` gives the same term
    for lab, count in seen.items():
        j = rest.index(lab)
        remaining = rest[:j] + rest[j + 1 :]
        out += count * K[first, lab] * _pairings(remaining, K)
    return out


def _split_term(term: sp.Expr, zs) -> tuple[sp.Expr, sp.Expr]:
    """term = coeff * rest with coeff free of zs."""
    coeff, rest = sp.S.One, sp.S.One
    for factor in sp.Mul.make_args(term):
        if factor.free_symbols & set(zs):
            rest *= factor
        else:
            coeff *= factor
    return coeff, rest


def _condition_out_polynomial_variables(f: sp.Expr, K: sp.MatrixBase, zs):
    """<f(z_U) Π_w z_w^{m_w}>_K = <f(z_U) E[Π z_w^{m_w} | z_U]>_{K_UU}.

    Variables that enter only through a monomial are integrated out by conditioning
    (z_W | z_U ~ N(K_WU K_UU⁻¹ z_U, K_WW − K_WU K_UU⁻¹ K_UW)); returns (new integrand in the
    marginal variables, K_UU) or None when nothing can be reduced.
    """
    mono, other = sp.S.One, sp.S.One
    for factor in sp.Mul.make_args(f):
        if factor.is_polynomial(*zs):
            mono *= factor
        else:
            other *= factor
    U = [i for i, v in enumerate(zs) if v in other.free_symbols]
    W = [i for i, v in enumerate(zs) if v in mono.free_symbols and i not in U]
    if not U or not W:
        return None
    Kuu = K.extract(U, U)
    Kwu = K.extract(W, U)
    Kinv = Kuu.inv()
    mean = Kwu * Kinv * sp.Matrix([zs[i] for i in U])
    cov = sp.ImmutableMatrix(K.extract(W, W) - Kwu * Kinv * Kwu.T)
    xi = zvars(len(W) + len(zs))[len(zs):]  # fresh names for the conditional fluctuation
    shifted = mono.xreplace({zs[w]: mean[k] + xi[k] for k, w in enumerate(W)})
    poly = sp.Poly(sp.expand(shifted), *xi)
    cond = sp.S.Zero
    for powers, c in poly.terms():
        cond += c * wick(powers, cov if len(W) > 1 else cov[0, 0])
    cond = sp.expand(cond)
    keep = [zs[i] for i in U]
    target = (Z,) if len(U) == 1 else zvars(len(U))
    ren = dict(zip(keep, target))
    newK = Kuu[0, 0] if len(U) == 1 else sp.ImmutableMatrix(Kuu)
    return sp.expand((other * cond).xreplace(ren)), newK


class GaussianExpectation(sp.Function):
    """``E(f, K)``: the expectation of ``f`` over ``N(0, K)``. See the module docstring."""

    nargs = 2

    @classmethod
    def eval(cls, f, K):
        f = sp.sympify(f)
        K = _as_cov(K)
        if isinstance(K, sp.MatrixBase):
            n = K.shape[0]
            zs = zvars(n)
            stray = {s for s in f.free_symbols if s.name.startswith("z_") and s not in zs}
            if Z in f.free_symbols or stray:
                raise PerturbError(
                    f"a {n}-variable expectation integrates over {', '.join(map(str, zs))}; "
                    f"the integrand has {', '.join(sorted(map(str, stray | (f.free_symbols & {Z}))))}"
                )
        else:
            zs = (Z,)
        if not (f.free_symbols & set(zs)):
            return f
        if isinstance(K, sp.MatrixBase):
            used = [i for i, v in enumerate(zs) if v in f.free_symbols]
            if len(used) < len(zs):
                # marginalise: only the variables the integrand uses matter
                sub = K.extract(used, used)
                target = (Z,) if len(used) == 1 else zvars(len(used))
                f = f.xreplace({zs[i]: t for i, t in zip(used, target)})
                return cls(f, sub[0, 0] if len(used) == 1 else sub)
        expanded = sp.expand(f, deep=False, power_base=False, power_exp=False, log=False)
        terms = sp.Add.make_args(expanded)
        if len(terms) > 1:
            return sp.Add(*[cls(t, K) for t in terms])
        coeff, rest = _split_term(expanded, zs)
        if coeff != 1:
            return coeff * cls(rest, K)
        if isinstance(K, sp.MatrixBase):
            reduced = _condition_out_polynomial_variables(rest, K, zs)
            if reduced is not None:
                return cls(reduced[0], reduced[1])
        if rest.is_polynomial(*zs):
            powers = sp.Poly(rest, *zs).monoms()
            if len(powers) == 1:
                return wick(powers[0], K)
        if f != expanded:
            return cls(expanded, K)
        return None

    @property
    def integrand(self) -> sp.Expr:
        return self.args[0]

    @property
    def cov(self):
        return self.args[1]

    @property
    def variables(self) -> tuple[sp.Symbol, ...]:
        return integration_vars(self.cov)

    @property
    def free_symbols(self):
        f, K = self.args
        return (f.free_symbols - set(self.variables)) | K.free_symbols

    def _eval_derivative(self, s):
        f, K = self.args
        zs = self.variables
        out = GaussianExpectation(sp.diff(f, s), K) if s in f.free_symbols else sp.S.Zero
        if isinstance(K, sp.MatrixBase):
            dK = K.diff(s)
            if dK.is_zero_matrix:
                return out
            Kinv = K.inv()
            w = Kinv * sp.Matrix(zs)
            n = K.shape[0]
            weight = sum(
                dK[i, j] * (w[i] * w[j] - Kinv[i, j]) for i in range(n) for j in range(n) if dK[i, j] != 0
            ) / 2
            return out + GaussianExpectation(f * sp.expand(weight), K)
        dK = sp.diff(K, s)
        if dK == 0:
            return out
        return out + dK * GaussianExpectation(f * (Z**2 - K), K) / (2 * K**2)

    def _latex(self, printer: LatexPrinter, exp=None):
        f, K = self.args
        body = printer._print(f)
        cov = printer._print(K) if not isinstance(K, sp.MatrixBase) else r"\mathcal{K}"
        tex = rf"\left\langle {body} \right\rangle_{{{cov}}}"
        if exp is not None:
            tex = rf"{tex}^{{{exp}}}"
        return tex

    def _sympystr(self, printer):
        return f"E({printer._print(self.args[0])}, {printer._print(self.args[1])})"


#: short alias: ``E(f, K)``
E = GaussianExpectation


def atom_canonical(expr: sp.Expr) -> sp.Expr:
    """Collect ``expr`` by its atoms (and their products) and cancel each coefficient.

    Two expressions in Gaussian-expectation atoms are equal as such iff
    ``atom_canonical(a - b) == 0`` (the atoms themselves are canonical on construction).

    >>> from perturb.activations import SIGMA
    >>> K = sp.Symbol("K", positive=True)
    >>> a = E(SIGMA(Z)**2 * (Z**2 - K), K) / K
    >>> atom_canonical(a - E(Z**2 * SIGMA(Z)**2, K) / K + E(SIGMA(Z)**2, K))
    0
    """
    expr = sp.expand(expr)
    atoms = sorted(expr.atoms(GaussianExpectation), key=sp.default_sort_key)
    if not atoms:
        return sp.cancel(expr)
    leaves = [sp.Dummy() for _ in atoms]
    poly = sp.Poly(expr.xreplace(dict(zip(atoms, leaves))), *leaves)
    return sum(sp.cancel(c) * sp.Mul(*[a**k for a, k in zip(atoms, m)]) for m, c in poly.terms())
