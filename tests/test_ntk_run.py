"""The NTK over a whole GD run (perturb.dynamics.ntk_run).

Independent methods: central finite differences and per-coordinate exact derivatives for the
derivative tower (O3, O4, G, {Θ,Θ}); a Gaussian integration-by-parts identity for E[O4] of
linear networks; brute loops for the geometric sums; gradient descent of real networks with the
laboratory's ``train_gd`` for the truncated hierarchy and the order-1/n expectation.  Every
statistical comparison goes through ``assert_agrees`` / ``verdict`` (99 %).
"""

import numpy as np
import pytest

from perturb.dynamics.ntk_move import (
    _activation_derivatives,
    _dntk_pass,
    _Jet,
    measure_gd_step,
    network_dntk,
    sample_dntk,
)
from perturb.dynamics.ntk_run import (
    _directional_jets,
    geometric_sums,
    hierarchy_prediction,
    measure_gd_run,
    network_ddntk,
    ntk_run,
    sample_ddntk,
)
from perturb.errors import PerturbError
from perturb.montecarlo import assert_agrees, extrapolate_in_width, moment, verdict
from perturb.montecarlo._simulate import _draw_params
from perturb.network import Network

ACTS = ["tanh", "gelu", "erf", "relu"]     # relu: the almost-everywhere derivatives


def _tiny(activation, B=3, seed=0):
    net = Network(activation, widths=(5, 4), C_W=1.3, C_b=0.2)
    params = _draw_params(np.random.default_rng(seed), net, 2, B, "gaussian")
    return net, params, np.array([0.7, -0.4])


@pytest.mark.parametrize("activation", ACTS)
def test_o4_and_g_match_finite_differences(activation):
    # O4 = d/dt O3(θ + t g₀), G = d²/dt² Θ(θ + t g₀) (g₀ frozen): central differences with
    # h = 1e-3 carry an O(h²) ~ 1e-6 relative error, so 2e-5 is the FD error's scale, not a fit
    net, params, x = _tiny(activation)
    z, th, o3, o4, g, _ = network_ddntk(params, x, net)
    _, _, _, g0 = _dntk_pass([(_Jet([W]), _Jet([b])) for W, b in params], x, net, _activation_derivatives(net, 2))
    h = 1e-3

    def at(t):
        return network_dntk([(W + t * gW, b + t * gb) for (W, b), (gW, gb) in zip(params, g0())], x, net)

    (_, thp, o3p), (_, thm, o3m) = at(h), at(-h)
    np.testing.assert_allclose((o3p - o3m) / (2 * h), o4, rtol=2e-5)
    np.testing.assert_allclose((thp - 2 * th + thm) / h**2, g, rtol=2e-5)
    np.testing.assert_allclose((thp - thm) / (2 * h), o3, rtol=2e-5)


def _coordinate_derivatives(net, params, x):
    """∂_μ z and ∂_μ Θ of network 0 for every parameter μ (exact: one jet per coordinate), and λ_μ."""
    p0 = [(W[:1], b[:1]) for W, b in params]
    P = sum(W[0].size + b[0].size for W, b in p0)
    eye, off, direction, lam = np.eye(P), 0, [], []
    for i, (W, b) in enumerate(p0):
        dW = eye[:, off:off + W[0].size].reshape(P, *W.shape[1:])
        off += W[0].size
        db = eye[:, off:off + b[0].size].reshape(P, *b.shape[1:])
        off += b[0].size
        direction.append((dW, db))
        lam += [net.lambda_W[i] / W.shape[2]] * W[0].size + [net.lambda_b[i]] * b[0].size
    rep = [(np.repeat(W, P, 0), np.repeat(b, P, 0)) for W, b in p0]
    z, th, _ = _directional_jets(rep, x, net, direction, _activation_derivatives(net, 4))
    return z.value(1), th.value(1), np.array(lam)


@pytest.mark.parametrize("activation", ACTS)
def test_brackets_from_every_coordinate(activation):
    # exact vs exact: the brackets summed coordinate by coordinate, {A,B} = Σ_μ λ_μ ∂_μA ∂_μB,
    # against the directional tower: Θ = {z,z}, O3 = {Θ,z} and {Θ,Θ} = 2(O4 − G), i.e. the
    # identity G = O4 − ½{Θ,Θ} ((∇g)g = ½λ∇Θ)
    net, params, x = _tiny(activation)
    z, th, o3, o4, g, tt = network_ddntk(params, x, net)
    dz, dth, lam = _coordinate_derivatives(net, params, x)
    assert np.sum(lam * dz * dz) == pytest.approx(th[0], rel=1e-12)
    assert np.sum(lam * dth * dz) == pytest.approx(o3[0], rel=1e-10)
    assert np.sum(lam * dth * dth) == pytest.approx(tt[0], rel=1e-10)
    assert np.sum(lam * dth * dth) == pytest.approx(2 * (o4[0] - g[0]), rel=1e-10)


def test_sample_ddntk_sees_the_same_networks_as_sample_dntk():
    net = Network("tanh", widths=(12, 12), C_W=1.5, C_b=0.1)
    a, b = sample_ddntk(net, [1.0, -0.5], 300, seed=4), sample_dntk(net, [1.0, -0.5], 300, seed=4)
    for u, v in ((a.z, b.z), (a.ntk, b.ntk), (a.o3, b.o3)):
        np.testing.assert_allclose(u, v, rtol=1e-12)
    np.testing.assert_allclose(a.theta_theta, 2 * (a.o4 - a.g), rtol=1e-12)
    assert a.o4.shape == (300,)


def test_linear_network_stein_identity_for_o4():
    # Gaussian integration by parts over the parameters (λ_μ = Var θ_μ): E[{A, z}] =
    # E[A (θ·∇)z] − E[A Δz]; for a zero-bias linear net z is homogeneous of degree 1 in each of
    # the L+1 weight matrices and Δz = 0, so E[O4] = E[{O3, z}] = (L+1) E[z O3] at every width
    L, n, N = 2, 6, 40_000
    s = sample_ddntk(Network("linear", widths=(n,) * L, C_W=1.0, C_b=0.0), [1.0], N, seed=7)
    assert abs(moment(s.o4, 1).z(0.0)) > 20                      # E[O4] is resolved
    assert_agrees(0.0, moment(s.o4 - (L + 1) * s.z * s.o3, 1), label="E[O4] − (L+1)E[zO3], linear")
    assert not verdict(0.0, moment(s.o4 - L * s.z * s.o3, 1)).passed    # the test has power


# --------------------------------------------------------------------------- the hierarchy


def _brute(u, T):
    q = 1.0 - u
    eps = [q**s for s in range(T)]
    return sum(eps), sum(eps[s] * sum(eps[:s]) for s in range(T)), sum(e * e for e in eps)


@pytest.mark.parametrize("u", [0.0, 1e-6, 0.3, 1.0, 1.4, 1.999999, 2.0, 2.3])
@pytest.mark.parametrize("T", [0, 1, 2, 7, 40])
def test_geometric_sums_closed_forms_equal_brute_loops(u, T):
    got, ref = np.array(geometric_sums(u, T)), np.array(_brute(u, T))
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * max(1.0, float(np.max(np.abs(ref)))))


def test_geometric_sums_converge():
    u = np.array([0.05, 0.7, 1.0, 1.6])
    np.testing.assert_allclose(np.array(geometric_sums(u, 2000)), np.array(geometric_sums(u, None)), rtol=1e-12)


def test_hierarchy_closed_forms():
    rng = np.random.default_rng(1)
    z, th, o3, o4, g = rng.normal(size=5), rng.uniform(0.5, 1.5, 5), *rng.normal(size=(3, 5)) * 0.01
    y, eta = 0.3, 0.8
    eps = z - y
    tt = 2 * (o4 - g)
    inf = hierarchy_prediction(z, th, o3, o4, g, y, eta).delta_ntk
    closed = -o3 * eps / th + o4 * eps**2 / (2 * th**2) - eta * tt * eps**2 / (4 * th * (2 - eta * th))
    np.testing.assert_allclose(inf, closed, rtol=1e-12)
    one = hierarchy_prediction(z, th, o3, o4, g, y, eta, steps=1)
    np.testing.assert_allclose(one.delta_ntk, -eta * eps * o3 + 0.5 * eta**2 * eps**2 * g, rtol=1e-12)
    np.testing.assert_allclose(one.o4_term, 0.0, atol=1e-15 * np.max(np.abs(one.delta_ntk)))   # S2(1) = 0
    # T steps of the truncated hierarchy iterated by hand: ε frozen at the leading order
    T = 6
    e_s, o3_s, dth = eps.copy(), o3.copy(), 0.0
    for _ in range(T):
        dth = dth - eta * e_s * o3_s + 0.5 * eta**2 * e_s**2 * g
        o3_s = o3_s - eta * e_s * o4
        e_s = (1 - eta * th) * e_s
    np.testing.assert_allclose(hierarchy_prediction(z, th, o3, o4, g, y, eta, steps=T).delta_ntk, dth, rtol=1e-12)


def test_hierarchy_against_gradient_descent_of_real_networks():
    # tanh, n = 32, L = 2, y = 1, η = 0.5, 30 steps (converged: final loss < 1e-4): the actual
    # Θ_T − Θ_0 minus the per-network prediction is consistent with 0, while the O3 term alone
    # (no O4, G) is rejected — at this width it even has the wrong sign.  The difference is
    # measured to a small fraction of the effect (power), so a wrong O4/G term would show.
    m = measure_gd_run(Network("tanh", widths=(32, 32)), [1.0], 1.0, 0.5, 30, 4000, seed=2)
    assert m.max_final_loss < 1e-4
    assert abs(m.delta_ntk.z(0.0)) > 20
    assert m.difference.stderr < 0.1 * abs(m.delta_ntk.value)
    assert_agrees(0.0, m.difference, label="Θ_T − Θ_0 − hierarchy, tanh n=32 L=2")
    assert not verdict(m.first_order, m.delta_ntk).passed


def _order_one_over_n(ns, ests):
    """lim n·E(n) from three widths, assuming n·E(n) = a + b/n + c/n² (a series in 1/n at fixed
    depth, smooth σ): the exact quadratic extrapolation to 1/n = 0, as an :class:`Estimate`."""
    return extrapolate_in_width(ns, ests, times_n=True)


@pytest.mark.slow
@pytest.mark.parametrize("activation, L, y, eta, T", [("tanh", 2, 1.0, 0.5, 30), ("tanh", 3, 0.0, 0.3, 40),
                                                      ("erf", 2, 1.0, 0.6, 25)])
def test_whole_run_at_order_one_over_n_by_width_extrapolation(activation, L, y, eta, T):
    # GD of real networks at n = 32, 64, 128 (independent draws, 8000 each, converged runs).  At a
    # fixed width the order-1/n predictions carry O(n⁻²) corrections that Monte Carlo resolves
    # (tanh L=2, y=1, n=64: E[ΔΘ] = −1.49/n measured, −1.76/n predicted; the correlation
    # E[O4 δΘ] ≈ −13/n² shifts the O4 term by ~25 %), so the statements are about the 1/n
    # coefficient: n·E(n) extrapolated to 1/n → 0 (quadratic in 1/n through three widths).
    #   1. the per-network hierarchy: the residual E[actual − predicted] has no 1/n part, while
    #      the O3 term alone leaves one (its residual's 1/n part is rejected);
    #   2. the mean: lim n·E[Θ_T − Θ_0] equals n × ntk_run's prediction (derived E[zO3], E[O4],
    #      E[{Θ,Θ}]), and the first-order prediction n × o3_term is rejected.
    ns = (32, 64, 128)
    runs = [measure_gd_run(Network(activation, widths=(n,) * L), [1.0], y, eta, T, 8000, seed=100 + n) for n in ns]
    assert max(m.max_final_loss for m in runs) < 1e-3
    label = f"{activation} L={L} y={y} η={eta}"
    assert_agrees(0.0, _order_one_over_n(ns, [m.difference for m in runs]), label=f"1/n part of the residual, {label}")
    assert not verdict(0.0, _order_one_over_n(ns, [m.first_order_difference for m in runs])).passed
    pred = ntk_run(activation, [64] * L, [1.0], eta=eta, y=y, steps=T)
    lim = _order_one_over_n(ns, [m.delta_ntk for m in runs])
    assert_agrees(64 * pred.delta_ntk, lim, label=f"n·E[Θ_T − Θ_0] as n → ∞, {label}")
    assert not verdict(64 * pred.o3_term, lim).passed


@pytest.mark.slow
def test_whole_run_at_fixed_width_with_y_zero():
    # with y = 0 the O4 terms are weighted by K (not K + y²) and the O(n⁻²) corrections stay
    # below the noise at n = 64: erf, L = 2, η = 0.6, 30 steps, 8000 networks (measured
    # +0.023 ± 0.021 against −0.0005, ×1/n; the O3 term alone, +1.05, is rejected)
    n, L, eta, T = 64, 2, 0.6, 30
    m = measure_gd_run(Network("erf", widths=(n,) * L), [1.0], 0.0, eta, T, 8000, seed=7)
    pred = ntk_run("erf", [n] * L, [1.0], eta=eta, y=0.0, steps=T)
    assert_agrees(pred.delta_ntk, m.delta_ntk, label="E[Θ_T − Θ_0], erf n=64 L=2 y=0")
    assert not verdict(pred.o3_term, m.delta_ntk).passed


@pytest.mark.parametrize("L, y", [(3, 0.0), (2, 1.0)])
def test_one_step_eta2_coefficient_against_gd(L, y):
    # measure_gd_step's (D(2η) − 2D(η))/(2η²) at η = 0.01 (bias O(η)) against the derived
    # ½(K + y²)(E[O4] − ½E[{Θ,Θ}]); tanh n = 64.  (At L = 3, y = 1 the order-1/n value
    # −0.0502 is resolved to be 4 % off: −0.0521 ± 0.0005 measured, an O(n⁻²) correction.)
    n, eta = 64, 0.01
    m = measure_gd_step(Network("tanh", widths=(n,) * L), [1.0], y, eta, 4000, seed=9)
    pred = ntk_run("tanh", [n] * L, [1.0], eta=eta, y=y, steps=1)
    assert abs(m.eta2.z(0.0)) > 20
    assert_agrees(pred.eta2_step, m.eta2, label=f"η² coefficient of one step, tanh n={n} L={L} y={y}")
    assert pred.delta_ntk == pytest.approx(eta * pred.eta1_step + eta**2 * pred.eta2_step, rel=1e-12)


def test_ntk_run_pieces_and_converged_closed_form():
    r = ntk_run("tanh", [32, 32], [1.0], eta=0.7, y=0.5)
    H, w = r.ntk_inf, r.K + r.y**2
    closed = -r.dntk_z / H + w * r.o4 / (2 * H**2) - r.eta * w * r.theta_theta / (4 * H * (2 - r.eta * H))
    assert r.delta_ntk == pytest.approx(closed, rel=1e-12)
    assert r.after(4000).delta_ntk == pytest.approx(r.delta_ntk, rel=1e-12)
    assert r.o3_term + r.o4_term + r.g_term == pytest.approx(r.delta_ntk, rel=1e-12)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, msg", [
    (dict(eta=0.0), "eta"), (dict(eta=float("nan")), "eta"), (dict(steps=-1), "steps"),
    (dict(steps=2.5), "steps"), (dict(ntk=-1.0), "ntk must be > 0"), (dict(o4=float("nan")), "o4"),
    (dict(eta=2.5), "does not converge: η Θ = 2.5;"), (dict(ntk=[1.0, 0.5], z=[0.1, 0.2, 0.3]), "one shape"),
])
def test_hierarchy_bad_input(kwargs, msg):
    args = dict(z=0.3, ntk=1.0, o3=0.01, o4=0.02, g=0.01, y=0.0, eta=0.5, steps=None) | kwargs
    with pytest.raises(PerturbError, match=msg):
        hierarchy_prediction(**args)


def test_finite_run_needs_no_convergence_and_measured_run_needs_steps():
    assert np.isfinite(hierarchy_prediction(0.3, 1.0, 0.01, 0.02, 0.01, 0.0, 2.5, steps=3).delta_ntk)
    with pytest.raises(PerturbError, match="steps must be >= 1"):
        measure_gd_run(Network("tanh", widths=(4,)), [1.0], 0.0, 0.1, 0, 10, seed=0)
    with pytest.raises(PerturbError, match="one input"):
        sample_ddntk(Network("tanh", widths=(4,)), [[1.0], [2.0]], 10, seed=0)


def test_ntk_run_refuses_a_run_that_does_not_converge():
    # tanh L = 2, x = 1: Θ̄ = 0.783, so η = 3 gives η Θ̄ = 2.349
    with pytest.raises(PerturbError, match=r"does not converge: η Θ = 2\.349"):
        ntk_run("tanh", [16, 16], [1.0], eta=3.0)


# --------------------------------------------------------------------------- CLI


def test_cli_run_keys(ntk_move_cli):
    import json

    status, stdout, err = ntk_move_cli("--activation", "relu", "--cw", "2", "--cb", "0", "--widths", "10,10",
                               "--x", "1", "--eta", "0.1", "--y", "0.3", "--steps", "1", "--json")
    assert status == 0, err
    out = json.loads(stdout)
    # the existing contract is unchanged (test_dntk.py), the new keys are added
    assert out["delta_ntk_step"] == pytest.approx(-1.28, rel=1e-12) and out["order_eta"] == 1
    # critical ReLU, zero bias, λ = C: E[O4] = (L+1) E[zO3] = 3 × 12.8 exactly (Stein, see
    # test_linear_network_stein_identity_for_o4); K = 2, Θ̄ = 6 at x = 1
    assert out["o4"] == pytest.approx(3 * out["dntk_z"], rel=1e-9)
    w, H, eta = 2.0 + 0.3**2, 6.0, 0.1
    assert out["eta2_step"] == pytest.approx(0.5 * w * (out["o4"] - out["theta_theta"] / 2), rel=1e-12)
    assert out["delta_ntk_steps"] == pytest.approx(out["delta_ntk_step"] + eta**2 * out["eta2_step"], rel=1e-12)
    closed = (-out["dntk_z"] / H + w * out["o4"] / (2 * H**2)
              - eta * w * out["theta_theta"] / (4 * H * (2 - eta * H)))
    assert out["delta_ntk_run"] == pytest.approx(closed, rel=1e-9)


def test_cli_run_bad_input_exit_2(ntk_move_cli):
    status, _, err = ntk_move_cli("--activation", "tanh", "--widths", "8,8", "--x", "1", "--eta", "0.1",
                                  "--steps", "0")
    assert status == 2 and "--steps must be an integer >= 1" in err and "Traceback" not in err


def test_cli_run_that_does_not_converge_keeps_the_one_step_values(ntk_move_cli):
    import json

    base = ("--activation", "tanh", "--widths", "8,8", "--x", "1", "--json")
    status, stdout, err = ntk_move_cli(*base, "--eta", "3")
    assert status == 0 and "does not converge" in err and "η Θ" not in stdout
    out = json.loads(stdout)
    assert out["delta_ntk_run"] is None and out["run_converges"] is False and out["kink_step"] is None
    _, small, _ = ntk_move_cli(*base, "--eta", "0.3")
    ref = json.loads(small)
    assert ref["run_converges"] is True
    for key in ("dntk_z", "eta2_step", "o4", "theta_theta"):     # η-independent coefficients
        assert out[key] == pytest.approx(ref[key], rel=1e-12)
    assert out["delta_ntk_step"] == pytest.approx(10 * ref["delta_ntk_step"], rel=1e-12)


def test_cli_kink_step_for_piecewise_linear(ntk_move_cli):
    import json

    from perturb.dynamics.kinks import kink_drift

    _, stdout, _ = ntk_move_cli("--activation", "relu", "--cw", "2", "--widths", "64,64", "--x", "1",
                                "--eta", "0.1", "--json")
    assert json.loads(stdout)["kink_step"] == pytest.approx(0.1 * kink_drift("relu", [64, 64], [1.0]).total,
                                                            rel=1e-12)


@pytest.mark.slow
def test_tour_section_quick(tmp_path):
    import json

    from perturb.tour import TourContext
    from perturb.tour import s66_ntk_run as s

    lines = s.run(TourContext(out=tmp_path, quick=True))
    data = json.loads((tmp_path / "ntk_run.json").read_text())
    assert [r["steps"] for r in data["trajectory"]] == list(s.STEPS) and any("converged" in ln for ln in lines)
