"""Criticality (REFERENCE §2): fixed points, critical line, classes, depth scales, figures, CLI.

Independent checks: the float64 fast path against the mpmath path (findroot at 20–30 digits);
closed-form values (π/4, 2, 1/(2e)) against the solvers; depth scales against iterations of the
recursions done by perturb.infinite (separate code); Monte Carlo of real networks
(perturb.montecarlo) against q*, c* with the verdict API.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp

from perturb.activations import Z, get_activation
from perturb.criticality import (
    critical_depth_series,
    critical_line,
    critical_point,
    divergence_threshold,
    fixed_point,
    fixed_point_grid,
    gaussian_series,
    iterate_kernels,
    phase_diagram,
    plot_phase_diagram,
    universality_class,
)
from perturb.errors import PerturbError
from perturb.gaussian import expect

#: float64 fast path vs mpmath: the quadrature (Gauss–Hermite) of the gaussian layer is good to
#: ~1e-12 relative for these smooth integrands; root finding adds a condition number ~1/(1-χ_∥)
FAST_RTOL = 1e-9

# REFERENCE §2 [D, mpmath to 11 digits]: tanh critical line  C_b -> (C_W, q*).
# The last q* there reads 3.03639640; an independent mpmath run gives 3.036396394623703 (rounds to
# 3.03639639): mp.dps = 30; E(f, q) = quad(f(√q x) npdf(x), [-inf,-3,-1,0,1,3,inf]);
# findroot(q - E(tanh², q)/E(sech⁴, q) - 1, 3.036) -> 3.03639639462370296880; C_W = 1/E(sech⁴, q)
# = 3.44321091226544046863.  We test that value (REFERENCE's last digit is off by one).
TANH_LINE = [(0.05, "1.76095464", "0.57004788"),
             pytest.param(0.3, "2.50512719", "1.46116945", marks=pytest.mark.slow),
             pytest.param(1.0, "3.44321091", "3.03639639", marks=pytest.mark.slow)]


@pytest.mark.parametrize("cb,cw,q", TANH_LINE)
def test_tanh_critical_line_reference_points(cb, cw, q):
    cp = critical_point("tanh", cb, dps=20)
    # the reference is rounded to 8 decimals: agree to half a unit of the last one
    assert abs(cp.C_W - mpmath.mpf(cw)) <= 5e-9 and abs(cp.K_star - mpmath.mpf(q)) <= 5e-9
    fast_cw, fast_q = critical_line("tanh", [cb])
    assert fast_cw[0] == pytest.approx(float(cp.C_W), rel=FAST_RTOL)
    assert fast_q[0] == pytest.approx(float(cp.K_star), rel=FAST_RTOL)
    # on the line: χ_⊥ = 1 at the fixed point, by the fixed-point solver (independent equation)
    fp = fixed_point("tanh", float(cp.C_W), cb, dps=20)
    assert abs(fp.chi_perp - 1) < mpmath.mpf(10) ** -15 and fp.phase == "critical"
    assert abs(fp.q_star - cp.K_star) < mpmath.mpf(10) ** -15


def test_closed_form_critical_points():
    with mpmath.workdps(30):
        cp = critical_point("erf", 0.0, dps=30)                      # C_W = 1/σ'(0)² = π/4
        assert abs(cp.C_W - mpmath.pi / 4) < mpmath.mpf(10) ** -28 and cp.K_star == 0
        assert cp.universality == "K*=0"
        assert critical_point("tanh", 0.0, dps=30).C_W == 1
        r = critical_point("relu", 0.0, dps=30)
        assert r.C_W == 2 and r.K_star is None and r.universality == "scale-invariant"
    assert critical_point("leaky_relu:0.5").C_W == pytest.approx(2 / 1.25, rel=1e-14)  # 2/(1+a²)
    assert critical_point("relu", 0.4).K_star is None                # diverges on the ReLU boundary


@pytest.mark.parametrize("act,cw,cb", [("tanh", 0.8, 0.0), ("tanh", 2.0, 0.1), ("tanh", 1.5, 0.6),
                                       ("erf", 2.5, 0.3), ("sin", 2.5, 0.3), ("relu", 1.4, 0.2),
                                       pytest.param("softplus", 1.0, 0.1, marks=pytest.mark.slow),
                                       pytest.param("gelu", 1.5, 0.2, marks=pytest.mark.slow)])
def test_fast_path_equals_mpmath_path(act, cw, cb):
    fast = fixed_point(act, cw, cb)
    prec = fixed_point(act, cw, cb, dps=25)
    assert fast.phase == prec.phase
    for k in ("q_star", "c_star", "chi_parallel", "chi_perp", "chi_c", "xi_q", "xi_c"):
        a, b = getattr(fast, k), float(getattr(prec, k))
        assert a == pytest.approx(b, rel=FAST_RTOL, abs=1e-12), k
    # the fixed point satisfies its equation at 25 digits (closure check, by expect directly)
    with mpmath.workdps(30):
        s = expect(get_activation(act).expr ** 2, prec.q_star, method="mpmath", dps=30)
        assert abs(cb + cw * s - prec.q_star) < mpmath.mpf(10) ** -22


def test_grid_matches_pointwise_and_shapes():
    cw = np.array([0.5, 1.5, 3.0])[:, None]
    cb = np.array([0.0, 0.2])[None, :]
    g = fixed_point_grid("tanh", cw, cb)
    assert g.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            fp = fixed_point("tanh", cw[i, 0], cb[0, j])
            assert g.q_star[i, j] == pytest.approx(fp.q_star, rel=1e-14, abs=1e-300)
            assert g.phase[i, j] == fp.phase


def test_q_star_matches_plain_iteration_of_the_length_map():
    # independent: iterate q <- C_b + C_W <tanh²>_q (mpmath) 400 times from q = 1
    q = 1.0   # χ_∥ ≈ 0.27 here: 40 steps contract the error by 1e-22
    for _ in range(40):
        q = 0.1 + 2 * float(expect(sp.tanh(Z) ** 2, q, method="mpmath", dps=20))
    assert fixed_point("tanh", 2.0, 0.1).q_star == pytest.approx(float(q), rel=FAST_RTOL)


def test_depth_scales_from_iteration():
    """ξ_q and ξ_c from exponential fits of K^{(ℓ)} iterated by perturb.infinite (separate code)."""
    from perturb.infinite import propagate
    from perturb.network import Network

    act, cw, cb, depth = "erf", 2.5, 0.3, 14
    fp = fixed_point(act, cw, cb, dps=25)
    q, c = float(fp.q_star), float(fp.c_star)
    K1 = np.array([[q + 0.05, q * c + 0.04], [q * c + 0.04, q + 0.05]])
    k = propagate(Network(act, depth=depth, C_W=cw, C_b=cb), K1)
    Ks = np.array([lay[0] for lay in k.layers])
    dq = np.abs(Ks[:, 0, 0] - q)
    cs = Ks[:, 0, 1] / Ks[:, 0, 0]
    dc = np.abs(cs - c)
    # the ratio of successive deviations tends to χ: fit the log-slope over the tail
    ell = np.arange(len(Ks))
    sel = (dq > 1e-13) & (ell >= 3)
    slope_q = np.polyfit(ell[sel], np.log(dq[sel]), 1)[0]
    sel_c = (dc > 1e-11) & (ell >= 6)
    slope_c = np.polyfit(ell[sel_c], np.log(dc[sel_c]), 1)[0]
    assert -1 / slope_q == pytest.approx(float(fp.xi_q), rel=2e-3)
    assert -1 / slope_c == pytest.approx(float(fp.xi_c), rel=2e-2)


def test_universality_classes():
    want = {"relu": "scale-invariant", "leaky_relu:0.1": "scale-invariant", "abs": "scale-invariant",
            "linear": "scale-invariant", "tanh": "K*=0", "erf": "K*=0", "sin": "K*=0",
            "gelu": "half-stable", "silu": "half-stable", "softplus": "other", "sigmoid": "other",
            "cos": "other"}
    for act, name in want.items():
        assert universality_class(act).name == name, act
    # PDLT ch. 5: tanh a1 = -2 (K ≈ 1/(2ℓ), REFERENCE §2); SiLU a1 = 3/4 > 0 (half-stable)
    assert universality_class("tanh").a1 == -2 and universality_class("silu").a1 == sp.Rational(3, 4)


def test_gaussian_series_against_quadrature():
    coeffs = gaussian_series(sp.tanh(Z) ** 2, 4)
    assert coeffs[:4] == [0, 1, -2, sp.Rational(17, 3)]
    K = 1e-3
    series = sum(float(c) * K**n for n, c in enumerate(coeffs))
    with mpmath.workdps(30):
        exact = expect(sp.tanh(Z) ** 2, mpmath.mpf(K), method="mpmath", dps=30)
    c5 = gaussian_series(sp.tanh(Z) ** 2, 5)[5]             # the next term bounds the remainder
    assert abs(series - float(exact)) < 2 * abs(float(c5)) * K**5


def test_critical_depth_series_against_iteration():
    s = critical_depth_series("tanh")
    assert (s.A, s.B, s.ntk_exponent, s.ntk_limit_per_r) == (sp.Rational(1, 2), sp.Rational(5, 24), -1,
                                                             sp.Rational(1, 2))
    K, T = iterate_kernels("tanh", 1.0, 0.0, 1.0, 4000)
    ell = np.arange(1, 4001)
    # ℓ²(K - A/ℓ) = B log ℓ + const + O(log²ℓ/ℓ): slope against log ℓ between ℓ = 1000 and 4000
    r = ell**2 * (K - 0.5 / ell)
    slope = (r[3999] - r[999]) / (math.log(4000) - math.log(1000))
    assert slope == pytest.approx(5 / 24, abs=0.01)     # residual O(log²ℓ/ℓ) ≈ 0.005 here
    assert T[-1] == pytest.approx(0.5, abs=5 * math.log(4000) / 4000)  # Θ → 1/2 + O(log ℓ/ℓ)
    # the NTK recursion against perturb.infinite (separate implementation) at moderate depth
    from perturb.infinite import propagate
    from perturb.network import Network

    k = propagate(Network("tanh", depth=29, C_W=1.0, C_b=0.0), np.array([[1.0]]))
    # at criticality per-layer quadrature errors (~1e-12) do not decay: they add up over depth
    assert k.nngp[0, 0] == pytest.approx(K[29], rel=FAST_RTOL)
    assert k.ntk[0, 0] == pytest.approx(T[29], rel=FAST_RTOL)
    Kr, Tr = iterate_kernels("relu", 2.0, 0.0, 0.7, 6)        # REFERENCE §2: K const, Θ = ℓK
    assert np.allclose(Kr, 0.7, rtol=1e-14) and np.allclose(Tr, 0.7 * np.arange(1, 7), rtol=1e-14)


def test_bad_input_messages():
    with pytest.raises(PerturbError, match=r"no finite fixed point: the variance diverges for C_W > 0\.18393972"):
        fixed_point("exp(z)", 1.0, 0.0)
    assert divergence_threshold("exp(z)") == pytest.approx(1 / (2 * math.e), rel=1e-9)  # max q e^{-2q}
    with pytest.raises(PerturbError, match=r"diverges for C_W > 2 "):
        fixed_point("relu", 2.5, 0.0)
    with pytest.raises(PerturbError, match="scale-invariant"):
        fixed_point("relu", 2.0, 0.1)
    with pytest.raises(PerturbError, match="C_W must be > 0"):
        fixed_point("tanh", 0.0, 0.0)
    with pytest.raises(PerturbError, match="C_b must be >= 0"):
        critical_point("tanh", -0.1)
    with pytest.raises(PerturbError, match="class 'half-stable'"):
        critical_depth_series("gelu")


def test_relu_line_of_fixed_points():
    fp = fixed_point("relu", 2.0, 0.0, q0=0.37)
    assert fp.q_star == 0.37 and fp.phase == "critical" and "line of fixed points" in fp.note
    assert math.isinf(fp.xi_q) and fp.as_dict()["xi_q"] is None
    fp = fixed_point("relu", 1.0, 0.5)                      # q* = C_b/(1 - C_W/2) = 1
    assert fp.q_star == 1.0 and fp.chi_parallel == 0.5 and fp.phase == "ordered"


def test_phase_diagram_figure_and_data(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = phase_diagram("tanh", np.linspace(0, 1.0, 6), np.linspace(0.5, 4.0, 8))
    # the phases flip across the critical line in every column, where the data say
    cw_line, _ = critical_line("tanh", d.C_b)
    for j in range(d.C_b.size):
        below, above = d.C_W < cw_line[j] - 1e-9, d.C_W > cw_line[j] + 1e-9
        on = ~below & ~above                          # e.g. tanh at (C_b, C_W) = (0, 1)
        assert np.all(d.grid.phase[below, j] == "ordered") and np.all(d.grid.phase[above, j] == "chaotic")
        assert np.all(d.grid.phase[on, j] == "critical")
    fig = plot_phase_diagram(d, tmp_path / "pd.png")
    line = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "critical-line"][0]
    np.testing.assert_allclose(line.get_ydata(), d.line_C_W[np.isfinite(d.line_C_W)])
    np.testing.assert_allclose(np.interp(d.C_b, line.get_xdata(), line.get_ydata()), cw_line, rtol=1e-3)
    plt.close(fig)
    assert (tmp_path / "pd.png").stat().st_size > 5000
    data = json.loads(json.dumps(__import__("perturb.commands._common", fromlist=["x"]).to_jsonable(d.as_dict())))
    assert len(data["phase"]) == 8 and len(data["phase"][0]) == 6


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "perturb", *args], capture_output=True, text=True, timeout=300)


def test_cli_contract(tmp_path):
    r = _cli("criticality", "--activation", "tanh", "--cb", "0.05", "--dps", "15", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"C_W", "K_star", "class"} <= set(d) and d["C_W"].startswith("1.7609546") and d["class"] == "K*=0"
    r = _cli("fixed-point", "--activation", "erf", "--cw", "2.5", "--cb", "0.3", "--json")
    d = json.loads(r.stdout)
    assert {"q_star", "c_star", "chi_parallel", "chi_perp", "chi_c", "xi_q", "xi_c", "phase"} <= set(d)
    assert d["phase"] == "chaotic" and 0 < d["c_star"] < 1
    for bad in (("fixed-point", "--activation", "exp(z)", "--cw", "1", "--json"),
                ("criticality", "--activation", "tanh", "--cb", "-0.5", "--json")):
        r = _cli(*bad)
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("perturb: error:"), bad
        assert "no finite fixed point" in r.stderr or "C_b must be >= 0" in r.stderr


@pytest.mark.slow
def test_cli_phase_diagram_and_more_bad_input(tmp_path):
    r = _cli("phase-diagram", "--activation", "tanh", "--out", str(tmp_path / "p.svg"), "--json",
             str(tmp_path / "p.json"), "--n", "6")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.svg").stat().st_size > 1000 and json.loads((tmp_path / "p.json").read_text())["phase"]
    for bad in (("fixed-point", "--activation", "tanh", "--cw", "-1", "--json"),
                ("phase-diagram", "--activation", "tanh", "--out", str(tmp_path / "x.pdf"))):
        r = _cli(*bad)
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("perturb: error:"), bad


def _two_inputs(q, c, C_W, C_b, n0=2):
    """Inputs with K^{(1)} = [[q, qc], [qc, q]] (REFERENCE §0: K^{(1)} = C_b + C_W x·x'/n0)."""
    r2 = (q - C_b) * n0 / C_W
    cos = (q * c - C_b) * n0 / (C_W * r2)
    return np.sqrt(r2) * np.array([[1.0, 0.0], [cos, math.sqrt(1 - cos * cos)]])


@pytest.mark.parametrize("width,depth,n_samples", [pytest.param(128, 6, 3000),
                                                   pytest.param(256, 8, 4000, marks=pytest.mark.slow)])
def test_monte_carlo_correlation_decay_to_c_star(width, depth, n_samples):
    """Real random networks (perturb.montecarlo): E[z(x1) z(x2)] and E[z(x)²] at the output.

    Inputs start at q*, with correlation c* + 0.1: the infinite-width prediction
    (perturb.infinite) decays to q* c* on the depth scale ξ_c; the sample covariance must agree
    with it, and the distance to q*c* must shrink as χ_c^ℓ (checked on the prediction).
    """
    mc = pytest.importorskip("perturb.montecarlo")
    if not hasattr(mc, "sample_outputs"):
        pytest.skip("perturb.montecarlo.sample_outputs not available yet")
    from perturb.infinite import kernels
    from perturb.network import Network

    act, cw, cb = "erf", 2.5, 0.3
    fp = fixed_point(act, cw, cb)
    X = _two_inputs(fp.q_star, fp.c_star + 0.1, cw, cb)
    net = Network(act, widths=(width,) * depth, C_W=cw, C_b=cb)
    k = kernels(Network(act, depth=depth, C_W=cw, C_b=cb), X)
    # infinite-width prediction vs the fixed point: deviation decays like exp(-ℓ/ξ_c)
    c_out = k.nngp[0, 1] / k.nngp[0, 0]
    assert abs(c_out - fp.c_star) < 0.1 * math.exp(-depth / fp.xi_c) * 3
    assert k.nngp[0, 0] == pytest.approx(fp.q_star, rel=1e-10)
    z = mc.sample_outputs(net, X, n_samples, seed=12345)
    mc.assert_agrees(k.nngp[0, 1], mc.moment(z[:, 0] * z[:, 1], 1), label="E z(x1) z(x2)")
    mc.assert_agrees(fp.q_star, mc.moment(z[:, 0], 2), label="E z(x1)²")
