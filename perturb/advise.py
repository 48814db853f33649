"""Hyperparameter advice from the theory: initialisation, width for a target, learning rates, regime.

Nothing here is new physics: :func:`advise` composes the library calls behind the specialised
commands, so every number equals what that command prints for the same network
(tests/test_advise.py runs the commands and compares):

- ``C_W``: the critical C_W at the given C_b, χ_⊥ = C_W<σ'²>_{K*} = 1 (``criticality``);
- ``xi_c``, ``phase``: correlation depth ξ_c = −1/log χ_c at (C_W, C_b), null = ∞ (``fixed-point``);
- ``kurtosis``: κ_4/K² at order 1/n, κ_4 the full fourth cumulant of one output and K = K^{(L+1)}
  the infinite-width kernel (``cumulants --order 1``);
- ``kurtosis_exact``: κ_4/κ_2² of the exact law: ReLU with C_b = 0 always (``relu-exact``, closed
  form); any activation with ``exact=True`` (``perturb exact``, density evolution of the Σ chain,
  seconds); ``kurtosis_exact_source`` names which, null when none was computed;
- ``ntk_rel_var``: Var Θ/(E Θ)² at order 1/n, (A + 2B)/(n H²) with H the infinite-width NTK at the
  input (``ntk-stats``, ``kernel``);
- ``eta_lazy_max`` = 2/λ_max, λ_max the top eigenvalue of the infinite-width NTK on the inputs, and
  ``eta_catapult_max`` = 4/λ_max, the uv-model catapult edge of Lewkowycz et al. 2020 (``kernel``);
- ``ntk_change``: E[Θ_∞ − Θ_0]/H over a converged GD run on (x̄, y), order 1/n (``ntk-move``).

With several inputs the one-input statistics are taken at the representative input
x̄ = (s, …, s) ∈ R^{n0}, s² = mean_a |x_a|²/n0, whose first-layer kernel K^{(1)} = C_b + C_W s² is
the mean of the inputs' K^{(1)} (a fully connected network sees one input only through K^{(1)}).
The run behind ``ntk_change`` uses η = 1/λ_max (half the lazy edge) and the target y, by default
y = √K^{(L+1)}(x̄), a target of the size of the network's initial output (the change grows with y²
through the ddNTK term ½(K + y²)(E[O4] − ½E[{Θ,Θ}]), so a target far from the output's natural
scale makes any network move its kernel; give --y for your data's scale).

At equal hidden widths n every order-1/n quantity is c/n with c independent of n, so the
smallest width meeting a target ε is ⌈|c|/ε⌉; :func:`advise` computes that and then checks it by
evaluating the statistic at the answer and one below (``width_for_kurtosis``,
``width_for_ntk_rel_var``).

The regime (thresholds :data:`RATIO_MAX`, :data:`SERIES_MAX`, :data:`KERNEL_MAX_CHANGE`):

- ``"non-perturbative"``: L/n ≥ RATIO_MAX, or an order-1/n relative correction
  (|kurtosis|, ntk_rel_var, |ntk_change|) ≥ SERIES_MAX, or the GD run at η = 1/λ_max does not
  converge — the truncated 1/n series is not a reliable description (its neglected terms are
  of the size of the ones kept);
- ``"kernel"``: otherwise, if |ntk_change| < KERNEL_MAX_CHANGE — the NTK moves by less than 1 %
  over training, so the linearised (infinite-width kernel) model describes training;
- ``"feature-learning"``: otherwise — the 1/n series is reliable and the NTK moves by a
  measurable fraction (the effective-theory regime of PDLT ch. 11, 0 < L/n ≪ 1).

>>> a = advise("relu", 3, 64, [[1.0]])
>>> a.C_W, round(a.kurtosis * 64, 6), a.regime        # κ4/K² = 15 L/n at order 1/n for ReLU
(2.0, 45.0, 'feature-learning')
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import PerturbError

#: L/n at or above which the 1/n expansion is declared unreliable (Hanin & Nica 2019: the output law
#: is log-normal-like with log-variance ∝ L/n, so order-1/n truncations fail at L/n = O(1))
RATIO_MAX = 0.5
#: an order-1/n relative correction at or above this means the series is unreliable
SERIES_MAX = 1.0
#: below this relative NTK change over training the kernel (lazy) description holds
KERNEL_MAX_CHANGE = 0.01
#: an NTK with λ_min/λ_max below this is reported as singular
SINGULAR_RTOL = 1e-10
#: widths searched for a target are bounded by this (a larger answer is null, with a note giving it)
MAX_SEARCH_WIDTH = 10**12
#: the deepest network advised on (the order-1/n folds cost ~20 ms per layer; beyond a few hundred
#: layers at any practical width L/n is far in the non-perturbative regime anyway)
MAX_DEPTH = 300

CATAPULT_NOTE = ("eta_catapult_max = 4/λ_max is the catapult edge of the two-layer uv model "
                 "(Lewkowycz et al. 2020, arXiv 2003.02218); for deep ReLU networks they observe "
                 "convergence up to ~12/λ_max, so 4/λ_max is a lower estimate of the edge beyond two layers")


@dataclass(frozen=True)
class Advice:
    """The advice for one network and input set (see the module docstring for each number).

    ``notes`` are plain-language lines, each naming the number it rests on.
    """

    activation: str
    depth: int
    width: int
    C_W: float
    C_b: float
    phase: str
    x: list
    xi_c: float | None
    depth_over_xi: float
    depth_over_width: float
    kurtosis: float
    kurtosis_exact: float | None
    kurtosis_exact_source: str | None
    ntk_rel_var: float
    lambda_max: float
    lambda_min: float
    eta_lazy_max: float
    eta_catapult_max: float
    ntk_change: float | None
    eta: float
    y: float
    series_reliable: bool
    regime: str
    width_for_kurtosis: int | None = None
    width_for_ntk_rel_var: int | None = None
    notes: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- the composed calls


@functools.lru_cache(maxsize=32)
def _finite_width(activation, depth: int):
    from .finite import FiniteWidth

    return FiniteWidth(activation, depth=depth, order=1)


def cumulant_stats(activation, depth: int, width: int, x, C_W: float, C_b: float) -> tuple[float, float]:
    """(K^{(L+1)}, κ_4) at order 1/n, exactly as ``perturb cumulants --order 1`` computes them."""
    from .network import Network

    net = Network(activation, widths=[width] * depth, C_W=C_W, C_b=C_b)
    xv = np.asarray(x, dtype=float)
    K1 = net.C_b[0] + net.C_W[0] * float(xv @ xv) / xv.size
    if K1 <= 0:
        raise PerturbError("the input is zero and C_b = 0: every preactivation vanishes "
                           "(the first-layer kernel K1 = 0)")
    st = _finite_width(net.activation, net.depth).evaluate(
        K1=K1, widths=list(net.widths), C_W=list(net.C_W), C_b=list(net.C_b))
    return float(st.K), float(st.total_cumulant(4))


def kurtosis_at(activation, depth: int, width: int, x, C_W: float, C_b: float) -> float:
    """κ_4/K² at order 1/n (``perturb cumulants``: cumulants["4"]/K²)."""
    K, k4 = cumulant_stats(activation, depth, width, x, C_W, C_b)
    return k4 / K**2


def ntk_rel_var_at(activation, depth: int, width: int, x, C_W: float, C_b: float) -> float:
    """Var Θ/H² at order 1/n (``perturb ntk-stats`` var over the infinite-width NTK H squared)."""
    from .ntk.chain import ntk_statistics

    st = ntk_statistics(activation, [width] * depth, x, C_W=C_W, C_b=C_b)
    return float(st.var) / float(st.H) ** 2


def exact_kurtosis(activation, depth: int, width: int, x, C_W: float, C_b: float) -> float:
    """κ_4/κ_2² of the exact one-input law (``perturb exact`` at its default resolution and tolerance)."""
    from .commands.exact import DEFAULT_TOL
    from .exact import exact_law

    law = exact_law(activation, [width] * depth, x, C_W=C_W, C_b=C_b, progress=None)
    worst = max(law.error["moments"][M] / abs(law.moments[M]) for M in law.moments)
    if worst > DEFAULT_TOL:
        raise PerturbError(f"the exact law's relative error estimate {worst:.2g} exceeds {DEFAULT_TOL:g}; "
                           "use 'perturb exact --resolution R' for this network, or drop --exact")
    return float(law.cumulants[4] / law.cumulants[2] ** 2)


def _smallest_width(fn, value_at_n: float, n: int, target: float, name: str) -> int:
    """Smallest width m with |fn(m)| <= target, given |fn| = c/m (c = value_at_n·n); checked at m, m−1."""
    c = abs(value_at_n) * n
    if c == 0:
        return 1
    m = max(1, math.ceil(c / target))
    if m > MAX_SEARCH_WIDTH:
        return m
    while m > 1 and abs(fn(m - 1)) <= target:
        m -= 1
    while abs(fn(m)) > target:
        m += 1
    return m


def _check_target(value, name: str) -> float | None:
    if value is None:
        return None
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise PerturbError(f"{name} must be a finite number > 0, got {value!r}: no finite width reaches "
                           f"{'0' if v == 0 else v} at order 1/n (the Gaussian, frozen-kernel limit is n → ∞)")
    return v


def _inputs(X) -> np.ndarray:
    A = np.asarray(X, dtype=float)
    if A.ndim == 1:
        A = A[None, :]
    if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0:
        raise PerturbError("inputs must be a non-empty list of input vectors of one dimension n0")
    if not np.all(np.isfinite(A)):
        raise PerturbError("inputs must be finite numbers")
    return A


def representative_input(X) -> list[float]:
    """x̄ = (s, …, s) with s² = mean_a |x_a|²/n0 (one input: that input itself).

    >>> representative_input([[3.0, 4.0], [0.0, 0.0]])     # s² = (25 + 0)/2/2
    [2.5, 2.5]
    """
    A = _inputs(X)
    if A.shape[0] == 1:
        return [float(v) for v in A[0]]
    s = math.sqrt(float(np.mean(np.sum(A * A, axis=1))) / A.shape[1])
    return [s] * A.shape[1]


def _initialisation(activation, C_W, C_b, notes) -> tuple[float, float, str]:
    from .criticality import critical_point, fixed_point

    if C_b < 0 or not math.isfinite(C_b):
        raise PerturbError(f"C_b must be a finite number >= 0, got {C_b}")
    if C_W is None:
        try:
            cp = critical_point(activation, C_b)
        except PerturbError as exc:
            raise PerturbError(f"{exc}. Advice: try another C_b (scan with 'perturb criticality --cb-values "
                               "0,0.1,0.5,1'), or give your own --cw to get advice off criticality") from None
        C_W = float(cp.C_W)
        notes.append(f"C_W = {C_W:.6g} is the critical initialisation at C_b = {C_b:g} (χ_⊥ = 1; "
                     f"universality class {cp.universality}).")
        if cp.note:
            notes.append(f"criticality: {cp.note}")
    elif not (math.isfinite(C_W) and C_W > 0):
        raise PerturbError(f"C_W must be a finite number > 0, got {C_W}")
    fp = fixed_point(activation, C_W, C_b)
    return float(C_W), fp, fp.phase


def advise(activation, depth: int, width: int, X, *, C_W: float | None = None, C_b: float = 0.0,
           target_kurtosis: float | None = None, target_ntk_rel_var: float | None = None,
           eta: float | None = None, y: float | None = None, exact: bool = False) -> Advice:
    """Advice for a depth-L, width-n fully connected network on the inputs X (see the module docstring).

    Args:
        activation: activation spec (``"tanh"``, ``"relu"``, an expression in z).
        depth: hidden layers L (>= 1); width: every hidden width n (>= 1).
        X: one input vector or a list of input vectors of one dimension n0.
        C_W: weight variance; None (default) = the critical C_W at ``C_b``.
        C_b: bias variance (>= 0).
        target_kurtosis, target_ntk_rel_var: targets ε > 0 for the smallest-width answers.
        eta: learning rate of the run behind ``ntk_change`` (default 1/λ_max); y: its target
            (default √K^{(L+1)}, the output's initial scale).
        exact: also compute the exact kurtosis of any activation with :func:`perturb.exact.exact_law`
            (density evolution, seconds; ReLU with C_b = 0 always gets its closed-form exact value).

    >>> a = advise("tanh", 20, 128, [[1.0]], target_kurtosis=0.1)
    >>> a.C_W, a.regime, a.width_for_kurtosis
    (1.0, 'feature-learning', 379)
    """
    from .dynamics.ntk_run import ntk_run
    from .infinite import kernels
    from .network import Network

    if isinstance(depth, bool) or int(depth) != depth or depth < 1:
        raise PerturbError(f"depth must be an integer >= 1, got {depth!r}")
    if isinstance(width, bool) or int(width) != width or width < 1:
        raise PerturbError(f"width must be an integer >= 1, got {width!r}")
    depth, width = int(depth), int(width)
    if depth > MAX_DEPTH:
        raise PerturbError(f"depth {depth} is too large: at most {MAX_DEPTH} hidden layers (advice for deeper "
                           "networks: their 1/n series needs widths far above the depth)")
    tk = _check_target(target_kurtosis, "target kurtosis")
    tv = _check_target(target_ntk_rel_var, "target NTK relative variance")
    if y is not None and not math.isfinite(float(y)):
        raise PerturbError(f"y must be finite, got {y!r}")
    A = _inputs(X)
    notes: list[str] = []
    C_W, fp, phase = _initialisation(activation, C_W, float(C_b), notes)
    C_b = float(C_b)
    act_name = Network(activation, depth=1).activation.name
    if phase != "critical":
        try:
            from .criticality import critical_point

            cw_c = f"{float(critical_point(activation, C_b).C_W):.6g}"
        except PerturbError:
            cw_c = "none (no critical point at this C_b)"
        notes.append(f"phase = {phase} at C_W = {C_W:g}, C_b = {C_b:g}: signals decay or explode over the depth "
                     f"scale xi_c; the critical C_W at this C_b is {cw_c}.")

    # infinite-width kernels on the inputs (perturb kernel)
    net = Network(activation, depth=depth, C_W=C_W, C_b=C_b)
    ker = kernels(net, A)
    if ker.ntk is None:
        raise PerturbError(f"the NTK of '{act_name}' is undefined (its derivative is a Dirac delta): no learning-rate "
                           "or NTK advice; choose an activation with an integrable derivative")
    ev = np.linalg.eigvalsh(np.asarray(ker.ntk, dtype=float))
    lam_max, lam_min = float(ev[-1]), float(ev[0])
    if not lam_max > 0:
        raise PerturbError(f"the infinite-width NTK on these inputs is zero (λ_max = {lam_max:g}): "
                           "give non-zero inputs or C_b > 0")
    if lam_min <= SINGULAR_RTOL * lam_max:
        notes.append(f"the NTK on these inputs is singular (lambda_min/lambda_max = {lam_min / lam_max:.2g}): "
                     "gradient descent cannot fit all targets along its null directions (duplicate or "
                     "degenerate inputs?); the learning-rate edges rest on lambda_max and still hold.")
    eta_lazy = 2.0 / lam_max
    eta_cat = 4.0 / lam_max

    x = representative_input(A)
    xi_c = None if fp.xi_c is None or not math.isfinite(float(fp.xi_c)) else float(fp.xi_c)
    d_xi = 0.0 if xi_c is None else depth / xi_c

    K, k4 = cumulant_stats(activation, depth, width, x, C_W, C_b)
    kurt = k4 / K**2
    yv = math.sqrt(K) if y is None else float(y)
    rel_var = ntk_rel_var_at(activation, depth, width, x, C_W, C_b)

    kurt_exact = kurt_src = None
    if act_name == "relu" and C_b == 0:
        from .relu_exact import relu_output_law

        law = relu_output_law([width] * depth, x, C_W=C_W)
        kurt_exact, kurt_src = float(law.cumulant(4) / law.cumulant(2) ** 2), "relu-exact"
    elif exact:
        kurt_exact, kurt_src = exact_kurtosis(activation, depth, width, x, C_W, C_b), "exact"

    # NTK motion over a converged run (perturb ntk-move: its delta_ntk_run and convergence test)
    e = (1.0 / lam_max) if eta is None else float(eta)
    if not (math.isfinite(e) and e > 0):
        raise PerturbError(f"eta must be a finite number > 0, got {eta!r}")
    widths = [width] * depth
    run_ = ntk_run(activation, widths, x, steps=1, eta=e, y=yv, C_W=C_W, C_b=C_b)
    converges = 0 < e * run_.ntk_inf < 2
    # over H (the infinite-width NTK), not E Θ = H + H1/n: the ratio is then exactly order 1/n
    change = float(run_.after(None).delta_ntk / run_.ntk_inf) if converges else None

    ratio = depth / width
    corrections = [abs(kurt), abs(rel_var)] + ([abs(change)] if change is not None else [])
    reliable = ratio < RATIO_MAX and max(corrections) < SERIES_MAX and converges
    if not reliable:
        regime = "non-perturbative"
    elif abs(change) < KERNEL_MAX_CHANGE:
        regime = "kernel"
    else:
        regime = "feature-learning"

    # ---- notes, each naming its number
    if xi_c is None:
        notes.append("xi_c = infinity (chi_c = 1): correlations between inputs decay only as a power of depth, "
                     "so depth is not limited by xi_c.")
    elif d_xi > 1:
        notes.append(f"depth_over_xi = {d_xi:.3g} > 1: inputs become indistinguishable (ordered) or "
                     "decorrelated (chaotic) before the output; move towards criticality or reduce depth.")
    notes.append(f"eta_lazy_max = {eta_lazy:.4g}: below it gradient descent is lazy (the loss decreases "
                 f"monotonically); it is 2/lambda_max, lambda_max = {lam_max:.4g}.")
    notes.append(f"eta_catapult_max = {eta_cat:.4g}: between eta_lazy_max and it, expect a catapult (loss spike, "
                 "then a flatter minimum); above it training diverges. " + CATAPULT_NOTE + ".")
    notes.append(f"kurtosis = {kurt:.3g} (order 1/n): the output's non-Gaussianity; it grows like L/n = {ratio:.3g}.")
    if kurt_exact is not None:
        rel = abs(kurt_exact - kurt) / abs(kurt_exact) if kurt_exact else 0.0
        src = ("exact ReLU law, Hanin & Nica 2019" if kurt_src == "relu-exact"
               else "exact law by density evolution, perturb exact")
        notes.append(f"kurtosis_exact = {kurt_exact:.4g} ({src})"
                     + (f"; the order-1/n value is off by {100 * rel:.0f}%: higher orders matter" if rel > 0.1
                        else "; the order-1/n value is within 10% of it"))
    notes.append(f"ntk_rel_var = {rel_var:.3g}: the NTK at initialisation fluctuates by ~{100 * math.sqrt(rel_var):.0f}% "
                 "between random initialisations.")
    if change is None:
        notes.append(f"gradient descent at eta = {e:.4g} on one sample does not converge (eta * Theta = "
                     f"{e * run_.ntk_inf:.3g} >= 2): ntk_change is null; use a smaller eta.")
    else:
        notes.append(f"ntk_change = {change:.3g}: relative NTK change over a converged GD run (eta = {e:.4g}, "
                     f"target y = {yv:g}); a larger target moves it more (the η² term grows with K + y²).")
    why = {"kernel": f"|ntk_change| < {KERNEL_MAX_CHANGE}: the NTK is nearly frozen, the infinite-width kernel "
                     "predicts training; to learn features, deepen or narrow the network (raise L/n)",
           "feature-learning": f"|ntk_change| >= {KERNEL_MAX_CHANGE} while the 1/n series is reliable: the "
                               "network learns features and the order-1/n theory describes it",
           "non-perturbative": f"L/n = {ratio:.3g} (limit {RATIO_MAX}) or an order-1/n correction "
                               f"(max {max(corrections):.3g}, limit {SERIES_MAX}) is too large: the 1/n series "
                               "is unreliable; widen the network or reduce depth for predictable training"}[regime]
    notes.append(f"regime = {regime}: {why}.")

    wk = wv = None
    if tk is not None:
        wk = _smallest_width(lambda m: kurtosis_at(activation, depth, m, x, C_W, C_b), kurt, width, tk, "kurtosis")
        notes.append(_width_note("width_for_kurtosis", wk, depth, tk))
        wk = None if wk > MAX_SEARCH_WIDTH else wk
    if tv is not None:
        wv = _smallest_width(lambda m: ntk_rel_var_at(activation, depth, m, x, C_W, C_b), rel_var, width, tv,
                             "ntk_rel_var")
        notes.append(_width_note("width_for_ntk_rel_var", wv, depth, tv))
        wv = None if wv > MAX_SEARCH_WIDTH else wv

    return Advice(activation=act_name, depth=depth, width=width, C_W=C_W, C_b=C_b, phase=phase, x=x,
                  xi_c=xi_c, depth_over_xi=d_xi, depth_over_width=ratio, kurtosis=kurt,
                  kurtosis_exact=kurt_exact, kurtosis_exact_source=kurt_src, ntk_rel_var=rel_var, lambda_max=lam_max, lambda_min=lam_min,
                  eta_lazy_max=eta_lazy, eta_catapult_max=eta_cat, ntk_change=change, eta=e, y=yv,
                  series_reliable=reliable, regime=regime, width_for_kurtosis=wk, width_for_ntk_rel_var=wv,
                  notes=notes)


def _width_note(key: str, m: int, depth: int, target: float) -> str:
    s = f"{key} = {m}: the smallest width with |value| <= {target:g} at depth {depth}"
    if m > MAX_SEARCH_WIDTH:
        return (f"{key} = null: |value| <= {target:g} at depth {depth} would need a width of about {float(m):.3g}, "
                f"beyond {MAX_SEARCH_WIDTH:.0e}: practically unreachable.")
    if depth / m >= RATIO_MAX:
        return s + f", but there L/n = {depth / m:.3g} >= {RATIO_MAX}: the 1/n answer is unreliable; prefer a wider network."
    return s + "."


def regime_grid(activation, depths: Sequence[int], widths: Sequence[int], x, *, C_W: float | None = None,
                C_b: float = 0.0, y: float | None = None) -> dict:
    """Kurtosis, NTK relative variance, NTK change and regime on a (depth, width) grid.

    One :func:`advise` per depth at the first width; every order-1/n quantity is c/n at equal
    widths, so the other widths follow by scaling (vectorised; tests check the scaling against
    :func:`advise` at other widths).  Returns arrays of shape (len(depths), len(widths)) and
    ``regime`` codes 0 = kernel, 1 = feature-learning, 2 = non-perturbative.
    """
    ws = np.asarray(widths, dtype=float)
    out = {k: np.empty((len(depths), ws.size)) for k in ("kurtosis", "ntk_rel_var", "ntk_change")}
    conv = np.ones(len(depths), dtype=bool)
    n0 = int(widths[0])
    for i, L in enumerate(depths):
        a = advise(activation, L, n0, [x], C_W=C_W, C_b=C_b, y=y)
        out["kurtosis"][i] = a.kurtosis * n0 / ws
        out["ntk_rel_var"][i] = a.ntk_rel_var * n0 / ws
        out["ntk_change"][i] = (a.ntk_change if a.ntk_change is not None else np.nan) * n0 / ws
        conv[i] = a.ntk_change is not None
    ratio = np.asarray(depths, dtype=float)[:, None] / ws[None, :]
    big = np.maximum(np.abs(out["kurtosis"]), np.abs(out["ntk_rel_var"]))
    big = np.maximum(big, np.nan_to_num(np.abs(out["ntk_change"]), nan=np.inf))
    nonpert = (ratio >= RATIO_MAX) | (big >= SERIES_MAX) | ~conv[:, None]
    regime = np.where(nonpert, 2, np.where(np.abs(out["ntk_change"]) < KERNEL_MAX_CHANGE, 0, 1))
    return {**out, "ratio": ratio, "regime": regime, "depths": np.asarray(depths), "widths": ws}


def plot_regime_map(grid: dict, path=None, *, title: str | None = None, ax=None):
    """Draw a :func:`regime_grid` in the (n, L) plane: regions and contours of kurtosis and NTK variance.

    Needs matplotlib (the ``plot`` extra).  Returns the matplotlib Figure; saves it atomically to
    ``path`` when given.
    """
    try:
        import matplotlib

        if ax is None and path is not None:
            matplotlib.use("Agg")
        import matplotlib.colors as mcolors
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise PerturbError("regime-map figures need matplotlib: pip install 'perturb[plot]'") from None
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.0, 5.0))
    else:
        fig = ax.figure
    n, L = grid["widths"], np.asarray(grid["depths"], dtype=float)
    colours = ["#cfe8cf", "#fde2b3", "#f4b6b6"]
    ax.pcolormesh(n, L, grid["regime"], shading="nearest", cmap=mcolors.ListedColormap(colours),
                  vmin=-0.5, vmax=2.5, gid="regimes")
    levels = [0.03, 0.1, 0.3, 1.0]
    cs = ax.contour(n, L, np.abs(grid["kurtosis"]), levels=levels, colors="k", linewidths=1.2)
    ax.clabel(cs, fmt=lambda v: f"κ₄/K²={v:g}", fontsize=7)
    cv = ax.contour(n, L, grid["ntk_rel_var"], levels=levels, colors="tab:blue", linewidths=1.2,
                    linestyles="--")
    ax.clabel(cv, fmt=lambda v: f"VarΘ/Θ²={v:g}", fontsize=7)
    ax.set_xscale("log")
    handles = [Patch(color=c, label=lab) for c, lab in zip(colours, ("kernel", "feature-learning",
                                                                    "non-perturbative"), strict=True)]
    handles += [plt.Line2D([], [], color="k", lw=1.2, label="kurtosis κ₄/K² (order 1/n)"),
                plt.Line2D([], [], color="tab:blue", ls="--", lw=1.2, label="NTK Var Θ/(EΘ)² (order 1/n)")]
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
    ax.set(xlabel="width n", ylabel="depth L", title=title or "regime map",
           xlim=(n.min(), n.max()), ylim=(L.min(), L.max()))
    if path is not None:
        from ._io import atomic_write

        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    return fig
