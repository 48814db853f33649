"""The derived ddNTK statistics E[O4], E[{Θ,Θ}] (perturb.ntk.ddntk): exact and numeric checks.

Independent methods:
* one hidden layer, any σ: the output's brackets are sums over iid hidden units, so E[O4] and
  E[{Θ,Θ}] are exactly n × (one unit's value), which SymPy computes by differentiating the explicit
  unit v σ(u) — no bracket algebra, no Wick, no index collapse;
* an exact Gaussian integration-by-parts (Stein) identity over the parameters: for ReLU or linear
  networks with C_b = 0 and λ = C, E[O4] = E[Σ θ_μ O3 ∂_μz] − E[O3 Σ λ_μ ∂²_μz] = (L+1) E[z O3],
  whose right side is the *dNTK* fold (perturb.ntk.dntk, P and Q), which never sees U or Y;
* Monte Carlo of real networks (tests/test_ntk_run.py and the slow test below).
"""

import pytest
import sympy as sp

from perturb.activations import SIGMA, Z
from perturb.errors import PerturbError
from perturb.gaussian.atom import E
from perturb.ntk import ddntk as d
from perturb.ntk.ddntk import (
    DDNTK_NAMES,
    NotClosedError,
    ddntk_statistics,
    ddntk_statistics_exact,
    derive_ddntk_layer_map,
    neuron_bracket,
)


def _unit_expectation(expr, v, u, C_W, n, K):
    """E over v ~ N(0, C_W/n) (polynomial moments) and u ~ N(0, K) (Gaussian atoms)."""
    out = sp.S.Zero
    for t in sp.Add.make_args(sp.expand(expr)):
        pv = sp.degree(t, v)
        mom = 0 if pv % 2 else sp.factorial2(pv - 1) * (C_W / n) ** (pv // 2)
        out += mom * E((t / v**pv).subs(u, Z).doit(), K)
    return sp.expand(out)


def test_one_hidden_layer_equals_direct_unit_computation():
    # z = b + Σ_j v_j σ(u_j): {A, B} on unit j = (λ_W/n) ∂_v A ∂_v B + H ∂_u A ∂_u B (H = layer-1 NTK)
    u, v = sp.symbols("u v", real=True)
    n = sp.Symbol("n", positive=True)
    K, H, C_W, lam = d.K, d.H, d.CW_S, d.LAM_W

    def br(f, g):
        return lam / n * sp.diff(f, v) * sp.diff(g, v) + H * sp.diff(f, u) * sp.diff(g, u)

    z = v * SIGMA(u)
    th = br(z, z)
    direct = {"U0": br(br(th, z), z), "Y0": br(th, th)}
    rec = derive_ddntk_layer_map()
    layer1 = {d.B: 0, d.F: 0, d.P: 0, d.Q: 0, **dict.fromkeys(d.STATS_IN.values(), 0)}
    for name, unit in direct.items():
        # E[X] = n E[unit] = U0/n  →  U0 = n² E[unit]
        want = sp.expand(n**2 * _unit_expectation(unit, v, u, C_W, n, K))
        assert sp.expand(rec[name].xreplace(layer1) - want) == 0, name


@pytest.mark.parametrize("activation, C_W, widths", [
    ("relu", 2, [10]),
    ("relu", 2, [7, 12, 5]),
    ("relu", sp.Rational(3, 2), [4, 9]),
    ("linear", 1, [6, 3, 8]),
    ("linear", sp.Rational(1, 2), [5, 5, 5, 5]),
])
def test_stein_identity_exactly(activation, C_W, widths):
    st = ddntk_statistics_exact(activation, widths, [1, sp.Rational(1, 2)], C_W=C_W, C_b=0)
    L = len(widths)
    assert sp.simplify(st.o4 - (L + 1) * st.dntk.z_dntk) == 0
    # and layer by layer: a layer-ℓ neuron is degree 1 in ℓ weight matrices
    for ell in range(1, L + 2):
        p, q = st.dntk.layers["P"][ell - 1], st.dntk.layers["Q"][ell - 1]
        assert sp.simplify(st.layers["U0"][ell - 1] - ell * (p + 2 * q)) == 0


def test_symbolic_widths():
    n1, n2 = sp.symbols("n1 n2", positive=True)
    st = ddntk_statistics_exact("relu", [n1, n2], [1], C_W=2, C_b=0)
    assert sp.simplify(st.o4 - 3 * st.dntk.z_dntk) == 0
    assert st.o4.has(n1) and st.o4.has(n2)


def test_critical_relu_values():
    # exact fold, C_W = λ_W = 2, x = 1 (n_0 = 1): U0 = ℓ (P + 2Q) = 2·32, 3·128, 4·320 at ℓ = 2, 3, 4
    st = ddntk_statistics_exact("relu", [10, 10, 10], [1], C_W=2, C_b=0)
    assert st.layers["U0"] == [0, 64, 384, 1280]


def test_numeric_fold_matches_exact_and_mpmath():
    ex = ddntk_statistics_exact("relu", [8, 16, 4], [1, 2], C_W=sp.Rational(9, 5), C_b=sp.Rational(1, 10))
    nu = ddntk_statistics("relu", [8, 16, 4], [1.0, 2.0], C_W=1.8, C_b=0.1)
    for a, b in ((nu.o4, ex.o4), (nu.tt, ex.tt)):
        assert float(a) == pytest.approx(float(b), rel=1e-12)
    a = ddntk_statistics("tanh", [30, 40], [0.8], C_W=1.3, C_b=0.2)
    b = ddntk_statistics("tanh", [30, 40], [0.8], C_W=1.3, C_b=0.2, dps=30)
    for x, y in ((a.o4, b.o4), (a.tt, b.tt)):
        assert float(x) == pytest.approx(float(y), rel=1e-10)


def test_derived_structure():
    rec = derive_ddntk_layer_map()
    ins = d.STATS_IN
    # each statistic is fed by its own pattern one layer down (U0 by U1, U2; Y0 by Y1, Y2), linearly
    assert set(rec["U0"].free_symbols & set(ins.values())) == {ins["U1"], ins["U2"]}
    assert set(rec["Y0"].free_symbols & set(ins.values())) == {ins["Y1"], ins["Y2"]}
    assert set(rec["U2"].free_symbols & set(ins.values())) == {ins["U2"]}
    for name in DDNTK_NAMES:
        for s in ins.values():
            assert sp.diff(rec[name], s, 2) == 0
    # {Θ, Θ} never sees σ''' (only first derivatives of Θ enter)
    assert not any(a.args[0].has(sp.Derivative(SIGMA(Z), (Z, 3))) for a in rec["Y0"].atoms(d.GaussianExpectation))


def test_bracket_algebra_refuses_what_it_cannot_close():
    z = d.z_neuron(0)
    th = d.bracket(z, z)
    o3 = d.bracket(th, z)
    with pytest.raises(NotClosedError, match="outside the closed set"):
        d.bracket(o3, th)                         # {O3, Θ}: a five-point object
    assert neuron_bracket("O3", (0, 0, 0)).has(d._O3)


def test_bad_input():
    with pytest.raises(PerturbError, match="concrete activation"):
        ddntk_statistics("generic", [4], [1.0])
    with pytest.raises(PerturbError):
        ddntk_statistics("tanh", [0], [1.0])
    with pytest.raises(ValueError, match="kind"):
        neuron_bracket("O5", (0,))


@pytest.mark.slow
@pytest.mark.parametrize("activation, C_W, L", [("gelu", 1.5, 3), ("tanh", 1.0, 3)])
def test_monte_carlo_width_extrapolation(activation, C_W, L):
    # real networks (exact O4 and {Θ,Θ} by Taylor jets, perturb.dynamics.ntk_run.sample_ddntk) at
    # n = 64, 128, 256; n·E is a series in 1/n at fixed depth, so its intercept (linear fit in 1/n)
    # is the derived order-1/n coefficient.  GELU at n = 64, 128, 256 measured n E[{Θ,Θ}] =
    # 183.9, 172.7, 166.9 against 159.4: a single width would test the next order.
    from perturb.dynamics.ntk_run import sample_ddntk
    from perturb.montecarlo import assert_agrees, extrapolate_in_width, moment
    from perturb.network import Network

    ns, N = (64, 128, 256), 6000
    st = ddntk_statistics(activation, [64] * L, [1.0], C_W=C_W, C_b=0.0)     # n·E is n-independent
    samples = [sample_ddntk(Network(activation, widths=(n,) * L, C_W=C_W, C_b=0.0), [1.0], N, seed=30 + i)
               for i, n in enumerate(ns)]
    for name, pred in (("o4", st.o4), ("theta_theta", st.tt)):
        lim = extrapolate_in_width(ns, [moment(getattr(s, name), 1) for s in samples], degree=1, times_n=True)
        assert abs(lim.value) > 10 * lim.stderr
        assert_agrees(64 * float(pred), lim, label=f"n E[{name}] as n → ∞, {activation} L={L}")
