"""Exact gradient-descent maps of function-space quantities, derived symbolically (docs/reference.md §5).

The method (invariance)
-----------------------
A model whose parameters are vectors ``p_1..p_m ∈ R^n`` and whose output depends on them only
through their inner products is O(n)-invariant: rotating every ``p_k`` by the same orthogonal
matrix leaves ``f`` unchanged.  Then

* a gradient is a *linear combination of the parameter vectors* with scalar coefficients:
  ``∂F/∂p_k = Σ_j c_kj p_j`` with ``c_kj = ∂F/∂(p_k·p_j)`` (times 2 when ``j = k``);
* one step of gradient descent, ``p_k' = p_k − η λ_k Σ_a r_a ∂f_a/∂p_k``, is therefore
  ``p' = M p`` with a scalar matrix ``M`` (a function of the Gram matrix and the residuals);
* the new Gram matrix is ``G' = M G Mᵀ`` — an exact, finite-dimensional map whatever ``n``.

So the state of training is the Gram matrix ``g_ij = p_i·p_j / n`` (a handful of symbols), and
every function-space quantity — ``f``, the NTK ``Θ = {f, f}``, ``O_3 = {Θ, f}``, ... with the
bracket ``{F, H} = Σ_k λ_k ∂F/∂p_k · ∂H/∂p_k`` — is a polynomial in ``g``.  The exact one-step
update of a quantity ``F`` is ``F(g')``.  To *re-express* it in function-space variables
``φ = Φ(g)`` (which must be linear in ``g``), solve ``Φ(g) = φ`` for ``g`` (an affine family:
a particular solution plus free Gram entries) and substitute; the hierarchy **closes** on ``φ``
when the free Gram entries cancel, i.e. ``F(g')`` is constant on every fibre ``Φ(g) = φ``.

A matrix parameter ``U ∈ R^{n×d}`` enters as its ``d`` columns ``u_1..u_d`` (see
:func:`two_layer_linear_model`).

>>> m = uv_model()
>>> maps = derive_maps(m, {F: m.outputs[0], LAM: ntk(m)[0, 0]})
>>> print(maps)
f' = eta**2*f*r**2/n - eta*lambda*r + f
lambda' = eta**2*lambda*r**2/n - 4*eta*f*r/n + lambda
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sympy as sp

from ..errors import PerturbError

__all__ = [
    "VectorModel",
    "ClosedMaps",
    "HierarchyNotClosedError",
    "uv_model",
    "two_layer_linear_model",
    "ntk",
    "layer_ntk",
    "bracket",
    "gd_gram_update",
    "evolve",
    "derive_maps",
    "try_close",
    "hierarchy_tower",
    "uv_maps",
    "two_layer_linear_model",
    "two_layer_linear_maps",
    "two_layer_linear_variables",
    "N",
    "ETA",
    "F",
    "LAM",
    "Y",
    "R",
]

#: width, learning rate, output, NTK eigenvalue, target, residual — the printed names
N = sp.Symbol("n", positive=True)
ETA = sp.Symbol("eta", positive=True)
F = sp.Symbol("f", real=True)
LAM = sp.Symbol("lambda", positive=True)
Y = sp.Symbol("y", real=True)
R = sp.Symbol("r", real=True)


class HierarchyNotClosedError(PerturbError):
    """The chosen function-space variables do not determine the update (Gram entries remain)."""


@dataclass(frozen=True)
class VectorModel:
    """A model built from vector parameters ``p_k ∈ R^n`` through their inner products.

    Attributes:
        name: a label.
        vectors: parameter names, e.g. ``("u", "v")``.
        outputs: ``f_a`` for each training input ``a``: SymPy expressions in the Gram symbols
            (:meth:`gram`), the width :data:`N` and data symbols.  Build them with :meth:`dot`.
        rates: learning-rate factor ``λ_k`` of each vector (default 1).
        targets: the targets ``y_a`` (symbols by default).

    >>> m = VectorModel.build("uv", ("u", "v"), lambda m: [m.dot("u", "v") / sp.sqrt(N)])
    >>> m.outputs[0]
    g_uv*sqrt(n)
    """

    name: str
    vectors: tuple[str, ...]
    outputs: tuple[sp.Expr, ...]
    rates: tuple[sp.Expr, ...]
    targets: tuple[sp.Expr, ...]

    @staticmethod
    def build(name: str, vectors: Sequence[str], outputs, rates=None, targets=None) -> VectorModel:
        """Construct a model; ``outputs`` may be a callable receiving a bare model (for :meth:`dot`)."""
        vectors = tuple(vectors)
        if len(set(vectors)) != len(vectors) or not vectors:
            raise PerturbError(f"vector names must be distinct and non-empty, got {vectors!r}")
        bare = VectorModel(name, vectors, (), (), ())
        outs = tuple(sp.sympify(o) for o in (outputs(bare) if callable(outputs) else outputs))
        if not outs:
            raise PerturbError("a model needs at least one output f_a")
        rates_t = tuple(sp.sympify(r) for r in (rates or [1] * len(vectors)))
        if len(rates_t) != len(vectors):
            raise PerturbError(f"{len(rates_t)} learning-rate factors for {len(vectors)} vectors")
        if targets is None:
            targets = [Y] if len(outs) == 1 else [sp.Symbol(f"y_{a + 1}", real=True) for a in range(len(outs))]
        targets_t = tuple(sp.sympify(t) for t in targets)
        if len(targets_t) != len(outs):
            raise PerturbError(f"{len(targets_t)} targets for {len(outs)} outputs")
        return VectorModel(name, vectors, outs, rates_t, targets_t)

    # -- the Gram algebra ---------------------------------------------------------------
    def _index(self, a: str) -> int:
        try:
            return self.vectors.index(a)
        except ValueError:
            raise PerturbError(f"unknown vector {a!r}; the model has {', '.join(self.vectors)}") from None

    def gram(self, a: str | int, b: str | int) -> sp.Symbol:
        """The symbol ``g_ab = p_a·p_b / n`` (symmetric: ``g_ab`` is ``g_ba``)."""
        i = a if isinstance(a, int) else self._index(a)
        j = b if isinstance(b, int) else self._index(b)
        i, j = min(i, j), max(i, j)
        return sp.Symbol(f"g_{self.vectors[i]}{self.vectors[j]}", real=True)

    def dot(self, a: str, b: str) -> sp.Expr:
        """The inner product ``p_a·p_b = n g_ab``."""
        return N * self.gram(a, b)

    def all_gram(self) -> tuple[sp.Symbol, ...]:
        m = len(self.vectors)
        return tuple(self.gram(i, j) for i in range(m) for j in range(i, m))

    def gradient(self, expr: sp.Expr) -> list[dict[int, sp.Expr]]:
        """``∂expr/∂p_k = Σ_j c[k][j] p_j`` for every vector ``k`` (coefficients ``c``)."""
        m = len(self.vectors)
        out = []
        for k in range(m):
            coef = {}
            for j in range(m):
                c = sp.diff(expr, self.gram(k, j)) / N
                if j == k:
                    c = 2 * c
                if c != 0:
                    coef[j] = c
            out.append(coef)
        return out

    def inner(self, a: Mapping[int, sp.Expr], b: Mapping[int, sp.Expr]) -> sp.Expr:
        """``(Σ a_i p_i)·(Σ b_j p_j) = n Σ a_i b_j g_ij``."""
        return sp.Add(*[ai * bj * N * self.gram(i, j) for i, ai in a.items() for j, bj in b.items()])

    def residuals(self) -> tuple[sp.Expr, ...]:
        return tuple(f - y for f, y in zip(self.outputs, self.targets, strict=True))


def bracket(model: VectorModel, a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """``{A, B} = Σ_k λ_k ∂A/∂p_k · ∂B/∂p_k`` — the NTK inner product of two quantities.

    ``Θ_ab = {f_a, f_b}``, ``O_3(a, b, c) = {Θ_ab, f_c}``, ``O_{k+1} = {O_k, f}``.
    """
    ga, gb = model.gradient(a), model.gradient(b)
    return sp.expand(sp.Add(*[lam * model.inner(x, y) for lam, x, y in zip(model.rates, ga, gb, strict=True)]))


def ntk(model: VectorModel) -> sp.Matrix:
    """The NTK ``Θ_ab = {f_a, f_b}`` over the model's training inputs, as a Gram polynomial."""
    k = len(model.outputs)
    return sp.Matrix(k, k, lambda a, b: bracket(model, model.outputs[a], model.outputs[b]))


def layer_ntk(model: VectorModel, vectors: Sequence[str]) -> sp.Matrix:
    """The part of the NTK from the parameters ``vectors`` only (e.g. one layer)."""
    idx = [model._index(v) for v in vectors]
    grads = [model.gradient(f) for f in model.outputs]
    k = len(model.outputs)
    return sp.Matrix(k, k, lambda a, b: sp.expand(sp.Add(
        *[model.rates[i] * model.inner(grads[a][i], grads[b][i]) for i in idx])))


def gd_gram_update(model: VectorModel, eta: sp.Expr = ETA) -> dict[sp.Symbol, sp.Expr]:
    """The exact one-step GD map of the Gram entries, ``g' = (M G Mᵀ)/n`` (loss ½Σ r_a²)."""
    m = len(model.vectors)
    grads = [model.gradient(f) for f in model.outputs]
    new_vec = []
    for k in range(m):
        coef: dict[int, sp.Expr] = {k: sp.Integer(1)}
        for r, g in zip(model.residuals(), grads, strict=True):
            for j, c in g[k].items():
                coef[j] = coef.get(j, 0) - eta * model.rates[k] * r * c
        new_vec.append(coef)
    return {model.gram(i, j): sp.expand(model.inner(new_vec[i], new_vec[j]) / N)
            for i in range(m) for j in range(i, m)}


def evolve(model: VectorModel, expr: sp.Expr, eta: sp.Expr = ETA) -> sp.Expr:
    """``expr`` after one exact GD step, as a polynomial in the old Gram entries."""
    return sp.expand(sp.sympify(expr).xreplace(gd_gram_update(model, eta)))


@dataclass(frozen=True)
class ClosedMaps:
    """Exact one-step GD maps ``φ' = P(φ)`` of function-space variables.

    ``maps[φ]`` is the new value of ``φ`` in terms of the old variables, the targets, η and n.
    ``closed`` is False when Gram entries (listed in ``leftover``) survive: then ``maps`` still
    holds the substituted expressions, which depend on them.
    """

    model: str
    variables: tuple[sp.Symbol, ...]
    definitions: tuple[sp.Expr, ...]
    maps: dict = field(compare=False)
    closed: bool = True
    leftover: tuple[sp.Symbol, ...] = ()
    residuals: tuple = ()

    def residual_form(self) -> dict:
        """The maps with each target eliminated for its residual ``r_a = f_a − y_a``, collected
        in powers of the residuals (the readable form; ``maps`` keeps ``f`` and ``y``)."""
        sub = {y: f - r for y, f, r in self.residuals}
        rs = [r for _, _, r in self.residuals]
        return {v: sp.collect(sp.expand(e.xreplace(sub)), rs, sp.factor) for v, e in self.maps.items()}

    def latex(self) -> str:
        """The maps as LaTeX lines ``φ' = ...`` (in residual form)."""
        return "\n".join(f"{sp.latex(v)}' = {sp.latex(e)}" for v, e in self.residual_form().items())

    def __str__(self) -> str:
        return "\n".join(f"{v}' = {e}" for v, e in self.residual_form().items())


def try_close(model: VectorModel, variables: Mapping[sp.Symbol, sp.Expr], *,
              quantities: Mapping[sp.Symbol, sp.Expr] | None = None, eta: sp.Expr = ETA) -> ClosedMaps:
    """Derive the updates of ``quantities`` (default: the ``variables`` themselves) in terms of
    the function-space ``variables`` (symbol -> definition, linear in the Gram entries).

    Returns a :class:`ClosedMaps` whose ``closed`` flag says whether the hierarchy closes.
    """
    variables = dict(variables)
    quantities = dict(variables if quantities is None else quantities)
    gram = model.all_gram()
    for s, d in variables.items():
        d = sp.sympify(d)
        if not d.free_symbols & set(gram):
            raise PerturbError(f"variable {s} = {d} does not depend on the parameters")
        if sp.Poly(d, *gram).total_degree() > 1:
            raise PerturbError(f"variable {s} = {d} is not linear in the Gram entries; "
                               "only linear function-space variables can be eliminated")
    eqs = [sp.expand(d) - s for s, d in variables.items()]
    sol = sp.linsolve(eqs, list(gram))
    if not sol or sol is sp.S.EmptySet:
        raise PerturbError("the function-space variables are not independent (no Gram matrix has these values)")
    (values,) = tuple(sol)
    subs = dict(zip(gram, values, strict=True))
    maps, leftover = {}, set()
    for s, d in quantities.items():
        e = sp.expand(evolve(model, d, eta).xreplace(subs))
        if any(sp.denom(t) != 1 for t in sp.Add.make_args(e)):
            e = sp.expand(sp.cancel(sp.together(e)))
        leftover |= e.free_symbols & set(gram)
        maps[s] = e
    return ClosedMaps(model=model.name, variables=tuple(variables), definitions=tuple(variables.values()),
                      maps=maps, closed=not leftover, leftover=tuple(sorted(leftover, key=str)),
                      residuals=_residual_symbols(model, variables))


def _residual_symbols(model: VectorModel, variables: Mapping[sp.Symbol, sp.Expr]) -> tuple:
    """``(target, output variable, residual symbol)`` for each output that is itself a variable."""
    out = []
    k = len(model.outputs)
    for a, (f, y) in enumerate(zip(model.outputs, model.targets, strict=True)):
        fsym = next((v for v, d in variables.items() if sp.expand(sp.sympify(d) - f) == 0), None)
        if fsym is not None and y.is_Symbol:
            out.append((y, fsym, R if k == 1 else sp.Symbol(f"r_{a + 1}", real=True)))
    return tuple(out)


def derive_maps(model: VectorModel, variables: Mapping[sp.Symbol, sp.Expr], **kw) -> ClosedMaps:
    """Like :func:`try_close`, but raise :class:`HierarchyNotClosedError` if it does not close."""
    res = try_close(model, variables, **kw)
    if not res.closed:
        names = ", ".join(str(v) for v in res.variables)
        raise HierarchyNotClosedError(
            f"the GD update of {model.name} does not close on ({names}): it still depends on "
            f"{', '.join(map(str, res.leftover))}; add variables that fix them")
    return res


def hierarchy_tower(model: VectorModel, depth: int = 4, output: int = 0) -> list[sp.Expr]:
    """``[f, Θ, O_3, ..., O_depth]`` at one input: ``O_{k+1} = {O_k, f}`` (Gram polynomials).

    >>> m = uv_model()
    >>> [sp.factor(t) for t in hierarchy_tower(m, 4)]
    [g_uv*sqrt(n), g_uu + g_vv, 4*g_uv/sqrt(n), 4*(g_uu + g_vv)/n]
    """
    if depth < 1:
        raise PerturbError(f"depth must be >= 1, got {depth}")
    f = model.outputs[output]
    out = [f]
    if depth >= 2:
        out.append(bracket(model, f, f))
    while len(out) < depth:
        out.append(bracket(model, out[-1], f))
    return out


# -- the models ------------------------------------------------------------------------------

def uv_model(x: sp.Expr = 1) -> VectorModel:
    """The uv model of the catapult paper [LEW]: ``f = v·u x / √n``, loss ½(f − y)².

    Its NTK is ``λ = (|u|² + |v|²) x² / n``.
    """
    x = sp.sympify(x)
    return VectorModel.build("uv", ("u", "v"), lambda m: [m.dot("u", "v") * x / sp.sqrt(N)])


def two_layer_linear_model(n_samples: int = 2, input_dim: int = 2, X=None, rates=(1, 1)) -> VectorModel:
    """A two-layer linear network ``f(x) = v·(U x) / √n`` on ``n_samples`` inputs in R^d.

    ``U ∈ R^{n×d}`` enters through its columns ``u_1..u_d``; ``X`` (``n_samples × d``) defaults
    to symbols ``x_{a,i}``.  ``rates = (λ_U, λ_v)``.
    """
    if n_samples < 1 or input_dim < 1:
        raise PerturbError(f"need n_samples >= 1 and input_dim >= 1, got {n_samples}, {input_dim}")
    if X is None:
        X = sp.Matrix(n_samples, input_dim, lambda a, i: sp.Symbol(f"x_{a + 1}{i + 1}", real=True))
    X = sp.Matrix(X)
    if X.shape != (n_samples, input_dim):
        raise PerturbError(f"X has shape {X.shape}; expected ({n_samples}, {input_dim})")
    cols = tuple(f"u{i + 1}" for i in range(input_dim))
    vecs = ("v",) + cols
    lam_u, lam_v = rates

    def outs(m):
        return [sp.Add(*[X[a, i] * m.dot("v", c) for i, c in enumerate(cols)]) / sp.sqrt(N)
                for a in range(n_samples)]

    return VectorModel.build(f"two-layer linear (N={n_samples}, d={input_dim})", vecs, outs,
                             rates=(lam_v,) + (lam_u,) * input_dim)


def uv_maps(x: sp.Expr = 1) -> ClosedMaps:
    """The derived catapult maps of the uv model in ``(f, λ)`` (docs/reference.md §5)."""
    m = uv_model(x)
    return derive_maps(m, {F: m.outputs[0], LAM: ntk(m)[0, 0]})


def two_layer_linear_maps(n_samples: int = 2, input_dim: int = 2, X=None) -> ClosedMaps:
    """The closed hierarchy of a two-layer linear network.

    Variables: the outputs ``f_a``, the readout-layer NTK ``Θv_ab = (U x_a)·(U x_b)/n`` (a ≤ b)
    and ``A = |v|²/n`` (the first-layer NTK is ``λ_U A x_a·x_b``).
    """
    m = two_layer_linear_model(n_samples, input_dim, X)
    variables = two_layer_linear_variables(m)
    return derive_maps(m, variables)


def two_layer_linear_variables(m: VectorModel) -> dict[sp.Symbol, sp.Expr]:
    k = len(m.outputs)
    variables: dict[sp.Symbol, sp.Expr] = {}
    for a in range(k):
        variables[sp.Symbol(f"f_{a + 1}", real=True)] = m.outputs[a]
    tv = layer_ntk(m, ("v",))
    for a, b in itertools.combinations_with_replacement(range(k), 2):
        variables[sp.Symbol(f"Thetav_{a + 1}{b + 1}", real=True)] = tv[a, b]
    variables[sp.Symbol("A", positive=True)] = m.gram("v", "v")
    return variables
