"""Residual MLP criticality (perturb.arch.criticality) against direct iteration of the recursion
K' = ξ²K + γ²(C_b + C_W<σσ>_K), finite differences of the one-step map, the plain-MLP critical
line it must reduce to, and the infinite-width kernel of an actual residual architecture."""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest

from perturb.activations import Z, get_activation
from perturb.arch import act, dense, kernels, residual, serial
from perturb.arch.criticality import (
    residual_critical_line,
    residual_critical_point,
    residual_fixed_point,
    residual_iterate,
)
from perturb.errors import PerturbError
from perturb.gaussian import expect


@pytest.mark.parametrize("a, C_W, C_b, xi, gamma", [
    ("tanh", 2.0, 0.1, 0.5, 1.0),      # chaotic
    ("erf", 0.5, 0.2, 0.7, 0.9),       # ordered
    ("tanh", 1.2, 0.05, 0.9, 0.4),
])
def test_fixed_point_and_chis_by_iteration(a, C_W, C_b, xi, gamma):
    fp = residual_fixed_point(a, C_W, C_b, xi=xi, gamma=gamma)
    depth = min(400, math.ceil(math.log(1e-14) / math.log(fp.chi_parallel)) + 5)
    traj = residual_iterate(a, C_W, C_b, xi=xi, gamma=gamma, K11=1.0, depth=depth)
    assert abs(traj[-1, 0] - fp.q_star) <= 1e-10 * fp.q_star
    q, h = fp.q_star, 1e-5 * fp.q_star
    # χ_∥: derivative of the length map at q*
    up = residual_iterate(a, C_W, C_b, xi=xi, gamma=gamma, K11=q + h, depth=1)[1, 0]
    dn = residual_iterate(a, C_W, C_b, xi=xi, gamma=gamma, K11=q - h, depth=1)[1, 0]
    assert abs((up - dn) / (2 * h) - fp.chi_parallel) <= 1e-7
    # χ_c: derivative of K12' in K12 at (q*, c*) (one-sided at c* = 1: χ_⊥ there)
    c12 = fp.c_star * q
    if fp.c_star < 1 - 1e-6:
        f = [residual_iterate(a, C_W, C_b, xi=xi, gamma=gamma, K11=q, K22=q, K12=c12 + s * h, depth=1)[1, 2]
             for s in (1, -1)]
        assert abs((f[0] - f[1]) / (2 * h) - fp.chi_c) <= 1e-6
    # χ_⊥ = ξ² + γ² C_W <σ'²>_{q*} directly
    ds = get_activation(a).derivative()
    assert abs(xi**2 + gamma**2 * C_W * float(expect(ds**2, q)) - fp.chi_perp) <= 1e-10
    # depth scale: the deviation from q* decays like χ_∥^ℓ
    dev = np.abs(traj[1:60, 0] - fp.q_star)
    ok = dev > 1e-9
    if ok.sum() > 5:
        ratios = dev[1:][ok[1:]] / dev[:-1][ok[1:]]
        assert abs(ratios[-1] - fp.chi_parallel) <= 1e-3
        assert math.isclose(fp.depth_q, -1 / math.log(fp.chi_parallel))


def test_critical_line_moves_as_predicted():
    # γ²/(1 − ξ²) = 1: the residual line is the plain one (tanh, C_b = 0.3: C_W = 2.50512719, mpmath
    # to 11 digits, Schoenholz et al. 2017 phase diagram; same value as perturb.criticality's doctest)
    cp = residual_critical_point("tanh", 0.3, xi=0.6, gamma=0.8)
    assert abs(cp.C_W - 2.50512719) <= 5e-9
    for a, C_b, xi, gamma in (("erf", 0.05, 0.8, 0.7), ("tanh", 0.0, 0.3, 2.0)):
        rc = residual_critical_point(a, C_b, xi=xi, gamma=gamma)
        fp = residual_fixed_point(a, rc.C_W, C_b, xi=xi, gamma=gamma)
        # K* is a fixed point of one step of the residual recursion, and χ_⊥ = 1 there
        q = float(rc.K_star)
        if q > 0:
            step = residual_iterate(a, rc.C_W, C_b, xi=xi, gamma=gamma, K11=q, depth=1)[1, 0]
            assert abs(step - q) <= 1e-10 * q
        ds = get_activation(a).derivative()
        chi = xi**2 + gamma**2 * rc.C_W * (float(expect(ds**2, q)) if q > 0 else float(ds.subs(Z, 0)) ** 2)
        assert abs(chi - 1) <= 1e-8, (a, C_b, xi, gamma, chi)
        assert fp.phase == "critical"
    cw, _ = residual_critical_line("tanh", [0.0, 0.1], xi=0.5, gamma=1.0)
    assert cw[0] == pytest.approx(0.75, abs=1e-12)            # (1 − ξ²)/γ² · 1 at C_b = 0


@pytest.mark.slow
def test_critical_point_dps():
    cp = residual_critical_point("tanh", 0.3, xi=0.6, gamma=0.8, dps=20)
    assert mpmath.nstr(cp.C_W, 9) == "2.50512719"          # the plain tanh line (see above)
    cp = residual_critical_point("erf", 0.1, xi=0.5, gamma=1.0, dps=25)
    ref = residual_critical_point("erf", 0.1, xi=0.5, gamma=1.0)
    assert abs(float(cp.C_W) - ref.C_W) <= 1e-12


def test_depth_scales_grow_near_xi_one():
    plain = residual_fixed_point("tanh", 2.0, 0.1, xi=0.0, gamma=1.0)
    prev = plain.depth_c
    for xi in (0.5, 0.8, 0.95):
        g = math.sqrt(1 - xi**2)                      # same effective MLP: only the skip weight changes
        fp = residual_fixed_point("tanh", 2.0, 0.1, xi=xi, gamma=g)
        assert fp.q_star == pytest.approx(plain.q_star, rel=1e-12)
        assert fp.depth_c > prev
        assert fp.depth_c == pytest.approx(-1 / math.log(xi**2 + (1 - xi**2) * plain.chi_c), rel=1e-9)
        prev = fp.depth_c


def test_xi_one_matches_residual_architecture():
    """ξ = 1: the recursion is the kernel of x + block(x) with block = [σ, dense(γ²C_W, γ²C_b)]."""
    X = np.array([[1.0, 0.5, -0.3], [0.2, -0.7, 0.9]])
    C_W, C_b, gamma, L = 1.3, 0.1, 0.7, 4
    blocks = [residual(act("erf"), dense(gamma**2 * C_W, gamma**2 * C_b)) for _ in range(L)]
    k = kernels(serial(dense(1.0, 0.2), *blocks, dense(1.0, 0.0)), X)
    K1 = 0.2 + X @ X.T / 3
    traj = residual_iterate("erf", C_W, C_b, xi=1.0, gamma=gamma, K11=K1[0, 0], K22=K1[1, 1], K12=K1[0, 1],
                            depth=L)
    assert np.allclose([k.nngp[0, 0], k.nngp[1, 1], k.nngp[0, 1]], traj[-1], rtol=1e-13, atol=0)
    # ReLU at C_W = 2, ξ = γ = 1: K doubles every block (closed form)
    t = residual_iterate("relu", 2.0, 0.0, xi=1.0, gamma=1.0, K11=0.7, depth=5)[:, 0]
    assert np.allclose(t, 0.7 * 2.0 ** np.arange(6), rtol=1e-14)


def test_errors_and_cli(capsys):
    from perturb.cli import main

    with pytest.raises(PerturbError, match="xi"):
        residual_fixed_point("tanh", 1.0, 0.0, xi=1.0)
    with pytest.raises(PerturbError, match="gamma"):
        residual_critical_point("tanh", 0.0, xi=0.5, gamma=0.0)
    assert main(["residual-criticality", "--activation", "tanh", "--cb", "0.3", "--xi", "0.6", "--gamma", "0.8",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["C_W"] == pytest.approx(2.50512719, abs=1e-8) and out["C_W_plain"] == pytest.approx(out["C_W"])
    assert main(["residual-criticality", "--activation", "tanh", "--xi", "0.5", "--cw", "2", "--cb", "0.1",
                 "--json"]) == 0
    fp = json.loads(capsys.readouterr().out)
    assert fp["phase"] == "chaotic" and fp["depth_q"] > 0
    assert main(["criticality", "--activation", "tanh", "--cb", "0.3", "--xi", "0.6", "--gamma", "0.8",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["C_W"] == pytest.approx(out["C_W"], rel=1e-15)
    assert main(["residual-criticality", "--activation", "tanh", "--xi", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "xi" in err


@pytest.mark.slow
def test_tour_section_quick(tmp_path):
    from perturb.tour import TourContext
    from perturb.tour import s12_arch as section

    lines = section.run(TourContext(out=tmp_path, quick=True))
    spec = json.loads((tmp_path / "arch_spec.json").read_text())
    assert [d["type"] for d in spec] == ["conv", "residual", "avg_pool", "global_avg_pool", "dense"]
    assert any("(pass)" in s and "FAIL" not in s for s in lines)
    assert any("ξ = 0.9" in s and "C_W = 0.54748209" in s for s in lines)
