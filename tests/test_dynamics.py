"""Training dynamics: derived function-space GD maps (REFERENCE §5) and the uv catapult."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp

from perturb.dynamics.catapult import (
    _compiled,
    bisect_threshold,
    uv_catapult,
    uv_gd_vectors,
    uv_init,
    uv_iterate,
    uv_lower_threshold_first_step,
)
from perturb.dynamics.hierarchy import (
    ETA,
    LAM,
    F,
    HierarchyNotClosedError,
    N,
    Y,
    derive_maps,
    evolve,
    gd_gram_update,
    hierarchy_tower,
    layer_ntk,
    ntk,
    try_close,
    two_layer_linear_model,
    two_layer_linear_variables,
    uv_maps,
    uv_model,
)
from perturb.errors import PerturbError

# ---------------------------------------------------------------- the derived uv maps


def test_uv_maps_equal_reference_section5():
    # REFERENCE §5 (from [LEW] eq. (3)-(4), x = 1), typed here only:
    #   f' = f − ηλ(f − y) + (η²/n)(f − y)² f ;  λ' = λ − (4η/n)(f − y) f + (η²/n)(f − y)² λ
    f, lam, eta, n, y = sp.symbols("f lambda eta n y")
    ref_f = f - eta * lam * (f - y) + eta**2 / n * (f - y) ** 2 * f
    ref_l = lam - 4 * eta / n * (f - y) * f + eta**2 / n * (f - y) ** 2 * lam
    maps = uv_maps()
    assert maps.closed and maps.variables == (F, LAM)
    # compare the *printed* result, re-parsed with plain symbols, with the reference
    lines = dict(line.split("' = ") for line in str(maps).splitlines())
    r = sp.Symbol("r")
    def parse(text):  # "lambda" is a Python keyword: rename before parsing
        return sp.sympify(text.replace("lambda", "lam"), locals={"lam": lam}).subs(r, f - y)

    got_f, got_l = parse(lines["f"]), parse(lines["lambda"])
    assert sp.expand(got_f - ref_f) == 0
    assert sp.expand(got_l - ref_l) == 0
    # and the stored maps (in f, y) themselves
    back = {F: f, LAM: lam, ETA: eta, N: n, Y: y}
    assert sp.expand(maps.maps[F].xreplace(back) - ref_f) == 0
    assert sp.expand(maps.maps[LAM].xreplace(back) - ref_l) == 0


def test_uv_maps_with_input_x():
    # hand derivation for f = v·u x/√n: u' = u − ηr x v/√n, v' = v − ηr x u/√n
    x = sp.Symbol("x", positive=True)
    maps = uv_maps(x)
    f, lam, eta, n, y = F, LAM, ETA, N, Y
    assert sp.expand(maps.maps[F] - (f - eta * lam * (f - y) + eta**2 * x**2 / n * (f - y) ** 2 * f)) == 0
    assert sp.expand(maps.maps[LAM] - (lam - 4 * eta * x**2 / n * (f - y) * f
                                       + eta**2 * x**2 / n * (f - y) ** 2 * lam)) == 0


def test_uv_tower_closes_at_O3():
    # O_3 = {Θ, f} = 4 f/n and O_4 = {O_3, f} = 4λ/n: dλ/dt = −η O_3 r = −4η f r/n, the
    # first-order term of the exact map
    m = uv_model()
    f, theta, o3, o4 = hierarchy_tower(m, 4)
    assert sp.simplify(o3 - 4 * f / N) == 0
    assert sp.simplify(o4 - 4 * theta / N) == 0
    maps = uv_maps()
    assert sp.expand(sp.diff(maps.maps[LAM], ETA).subs(ETA, 0) + 4 * F * (F - Y) / N) == 0
    assert sp.expand(sp.diff(maps.maps[F], ETA).subs(ETA, 0) + LAM * (F - Y)) == 0


def _two_layer_numeric(X, seed=3, n=7):
    """Random U (n×d), v, and explicit GD on them (float64), independent of the Gram algebra."""
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    U, v = rng.standard_normal((n, d)), rng.standard_normal(n)
    return U, v


def test_gram_update_matches_explicit_gd_two_layer_linear():
    Xn = np.array([[1.0, -0.5, 2.0], [0.3, 1.2, -0.7]])
    m = two_layer_linear_model(2, 3, X=sp.Matrix(Xn.tolist()))
    n = 7
    U, v = _two_layer_numeric(Xn, n=n)
    y = np.array([0.4, -1.1])
    eta = 0.37
    # explicit GD on (U, v): f_a = v·U x_a / √n, loss ½ Σ (f_a − y_a)²
    f = Xn @ U.T @ v / math.sqrt(n)
    r = f - y
    gU = np.outer(v, r @ Xn) / math.sqrt(n)
    gv = U @ (Xn.T @ r) / math.sqrt(n)
    U2, v2 = U - eta * gU, v - eta * gv
    # the Gram map, evaluated at the Gram matrix of (v, u_1, u_2, u_3)
    vecs = [v] + [U[:, i] for i in range(3)]
    vecs2 = [v2] + [U2[:, i] for i in range(3)]
    upd = gd_gram_update(m)
    vals = {m.gram(i, j): float(vecs[i] @ vecs[j] / n) for i in range(4) for j in range(i, 4)}
    vals.update({N: n, ETA: eta, sp.Symbol("y_1", real=True): y[0], sp.Symbol("y_2", real=True): y[1]})
    for (i, j) in [(a, b) for a in range(4) for b in range(a, 4)]:
        got = float(upd[m.gram(i, j)].xreplace(vals))
        assert got == pytest.approx(vecs2[i] @ vecs2[j] / n, rel=1e-13, abs=1e-13)
    # the NTK from the Gram algebra equals Σ_params ∂f_a ∂f_b computed directly
    J = np.concatenate([np.stack([np.outer(v, Xn[a]).ravel() for a in range(2)]) / math.sqrt(n),
                        (U @ Xn.T).T / math.sqrt(n)], axis=1)
    th = np.array(ntk(m).xreplace(vals).evalf(), dtype=float)
    np.testing.assert_allclose(th, J @ J.T, rtol=1e-13)


def test_two_layer_linear_closes_on_f_readout_ntk_and_A():
    # d = 3 > N = 2: the variables leave 4 Gram entries free; the hierarchy closes anyway
    X = sp.Matrix([[1, sp.Rational(-1, 2), 2], [sp.Rational(3, 10), sp.Rational(6, 5), sp.Rational(-7, 10)]])
    m = two_layer_linear_model(2, 3, X=X)
    variables = two_layer_linear_variables(m)
    res = try_close(m, variables)
    assert res.closed and not res.leftover
    # check the closed maps numerically against explicit GD (independent of the Gram algebra)
    Xn = np.array(X.tolist(), dtype=float)
    n = 11
    U, v = _two_layer_numeric(Xn, seed=5, n=n)
    y = np.array([0.2, 0.9])
    eta = 0.21
    W = (U @ Xn.T)  # features U x_a

    def state(U, v):
        W = U @ Xn.T
        return {"f": W.T @ v / math.sqrt(n), "Tv": W.T @ W / n, "A": v @ v / n}

    s0 = state(U, v)
    r = s0["f"] - y
    U2 = U - eta * np.outer(v, r @ Xn) / math.sqrt(n)
    v2 = v - eta * W @ r / math.sqrt(n)
    s1 = state(U2, v2)
    syms = list(variables)
    vals = dict(zip(syms, [*s0["f"], s0["Tv"][0, 0], s0["Tv"][0, 1], s0["Tv"][1, 1], s0["A"]], strict=True))
    vals.update({N: n, ETA: eta, sp.Symbol("y_1", real=True): y[0], sp.Symbol("y_2", real=True): y[1]})
    want = [*s1["f"], s1["Tv"][0, 0], s1["Tv"][0, 1], s1["Tv"][1, 1], s1["A"]]
    got = [float(res.maps[s].xreplace(vals)) for s in syms]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_two_layer_linear_does_not_close_on_f_and_ntk_alone():
    X = sp.Matrix([[1, 2], [-1, 3]])
    m = two_layer_linear_model(2, 2, X=X)
    th = ntk(m)
    f1, f2, t11, t12, t22 = sp.symbols("f_1 f_2 T11 T12 T22")
    variables = {f1: m.outputs[0], f2: m.outputs[1], t11: th[0, 0], t12: th[0, 1], t22: th[1, 1]}
    res = try_close(m, variables)
    assert not res.closed and res.leftover
    with pytest.raises(HierarchyNotClosedError, match="does not close"):
        derive_maps(m, variables)
    # adding A = |v|²/n (the first-layer NTK is λ_U A x_a·x_b) closes it
    variables[sp.Symbol("A")] = m.gram("v", "v")
    assert try_close(m, variables).closed
    # and the layer split sums to the NTK
    assert sp.expand(layer_ntk(m, ("v",)) + layer_ntk(m, ("u1", "u2")) - th) == sp.zeros(2, 2)


def test_nonlinear_variable_refused():
    m = uv_model()
    with pytest.raises(PerturbError, match="not linear"):
        try_close(m, {F: m.outputs[0] ** 2})
    with pytest.raises(PerturbError, match="does not depend"):
        try_close(m, {F: sp.Integer(3)})


# ---------------------------------------------------------------- maps vs explicit GD


@pytest.mark.parametrize("R", [0.7, 1.9, 2.5, 3.5, 3.95])
def test_compiled_maps_reproduce_vector_gd_one_step(R):
    # along the explicit-GD trajectory, one step of the compiled maps equals one GD step on
    # (u, v) to float64 rounding.  The rounding error of f = u·v/√n computed from the vectors
    # is ~ eps |u||v|/√n ≤ eps √n λ/2, so that (or |f| when larger) is the scale.
    n = 300
    u, v = uv_init(n, seed=7)
    lam0 = (u @ u + v @ v) / n
    eta = R / lam0
    f_t, l_t = uv_gd_vectors(u, v, eta, 60)
    fmap, lmap = _compiled()
    f_pred = fmap(f_t[:-1], l_t[:-1], eta, n, 0.0)
    l_pred = lmap(f_t[:-1], l_t[:-1], eta, n, 0.0)
    scale_f = np.maximum(np.abs(f_t[1:]), np.abs(f_t[:-1]) * (1 + R) + math.sqrt(n) * l_t[:-1])
    assert np.max(np.abs(f_pred - f_t[1:]) / scale_f) < 1e-13
    assert np.max(np.abs(l_pred - l_t[1:]) / l_t[1:]) < 1e-13


def test_compiled_maps_reproduce_vector_gd_trajectory():
    n = 200
    u, v = uv_init(n, seed=2)
    for R in (1.5, 3.0):
        res = uv_catapult(R, n, steps=40, seed=2)
        f_t, l_t = uv_gd_vectors(u, v, res.eta, res.steps_run)
        np.testing.assert_allclose(res.lam, l_t, rtol=1e-11)
        np.testing.assert_allclose(res.f, f_t, rtol=1e-9, atol=1e-11 * np.abs(f_t).max())


def test_maps_against_mpmath_vector_gd_50_digits():
    # the derived maps evaluated at 50 digits (compile_expr's mpmath backend) against GD on the
    # vectors in mpmath at 50 digits: agreement to ~1e-40 through a catapult
    n = 12
    u, v = uv_init(n, seed=4)
    fmap, lmap = _compiled()
    with mpmath.workdps(50):
        U = [mpmath.mpf(float(a)) for a in u]
        V = [mpmath.mpf(float(a)) for a in v]
        sq = mpmath.sqrt(n)
        f = mpmath.fsum(a * b for a, b in zip(U, V, strict=True)) / sq
        lam = (mpmath.fsum(a * a for a in U) + mpmath.fsum(b * b for b in V)) / n
        eta = mpmath.mpf(3) / lam
        for _ in range(25):
            f_m = fmap.mpmath(f, lam, eta, n, 0, dps=50)
            l_m = lmap.mpmath(f, lam, eta, n, 0, dps=50)
            U, V = [a - eta * f * b / sq for a, b in zip(U, V, strict=True)], [b - eta * f * a / sq for a, b in zip(U, V, strict=True)]
            f = mpmath.fsum(a * b for a, b in zip(U, V, strict=True)) / sq
            lam = (mpmath.fsum(a * a for a in U) + mpmath.fsum(b * b for b in V)) / n
            assert abs(f_m - f) <= mpmath.mpf(10) ** -40 * max(1, abs(f))
            assert abs(l_m - lam) <= mpmath.mpf(10) ** -40 * lam
        assert eta * lam < 2  # it did catapult and settle


# ---------------------------------------------------------------- phases and thresholds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_phase_boundaries_large_n(seed):
    n = 100_000
    phases = {R: uv_catapult(R, n, steps=3000, seed=seed).phase for R in (1.0, 1.98, 2.05, 3.0, 3.98, 4.02, 6.0)}
    assert phases == {1.0: "lazy", 1.98: "lazy", 2.05: "catapult", 3.0: "catapult",
                      3.98: "catapult", 4.02: "divergent", 6.0: "divergent"}


def test_catapult_trajectory_shape():
    res = uv_catapult(3.0, 10_000, steps=2000, seed=1)
    assert res.phase == "catapult" and res.settled
    assert res.loss_max > 100 * res.loss[0]           # the loss catapults up ...
    assert res.eta_lambda_final < 2                   # ... λ falls below 2/η ...
    assert res.loss[-1] < 1e-20 * res.loss[0]         # ... and the loss converges
    assert np.all(np.diff(res.lam) <= 0)              # λ falls monotonically (ηλ < 4, y = 0)


def test_lazy_run_barely_moves_lambda():
    # lazy: λ moves by O(1/n) — Σ_t η f_t²(4 − ηλ)/n ≤ (4/n) η Σ f_t² with f_t ≈ f_0 (1 − R)^t
    n = 10_000
    res = uv_catapult(1.0, n, steps=500, seed=3)
    assert res.phase == "lazy"
    bound = 4 * res.eta * np.sum(res.f ** 2) / n
    assert 0 < res.lambda0 - res.lambda_final <= bound


@pytest.mark.parametrize("n", [100, 1000, 10_000])
def test_lower_threshold_is_first_step_root(n):
    # bisection of the measured phase equals the analytic root of q_0 = −1 (see
    # uv_lower_threshold_first_step), and → 2 as 2 + O(1/n)
    pred = uv_lower_threshold_first_step(n, seed=0)
    meas = bisect_threshold(lambda R: uv_catapult(R, n, steps=4000, seed=0).phase != "lazy", 1.0, 3.0, tol=1e-10)
    assert meas == pytest.approx(pred, abs=1e-9)
    u, v = uv_init(n, 0)
    s = (u @ v) ** 2 / n / ((u @ u + v @ v) / n) ** 2 / n
    assert pred == pytest.approx(2 + 4 * s, abs=40 * s**2)


@pytest.mark.parametrize("n", [50, 1000])
def test_upper_threshold_is_four(n):
    meas = bisect_threshold(lambda R: uv_catapult(R, n, steps=4000, seed=1).phase == "divergent",
                            2.5, 6.0, tol=1e-9)
    assert meas == pytest.approx(4.0, abs=1e-8)


def test_vectorised_iteration_agrees_with_single_runs():
    n = 500
    u, v = uv_init(n, 0)
    f0, lam0 = u @ v / math.sqrt(n), (u @ u + v @ v) / n
    Rs = np.array([1.0, 3.0, 5.0])
    F_t, L_t, dead = uv_iterate(f0, lam0, Rs / lam0, n, 50)
    for k, R in enumerate(Rs):
        res = uv_catapult(float(R), n, steps=50, seed=0)
        m = min(len(res.f), int(dead[k]))
        np.testing.assert_allclose(F_t[:m, k], res.f[:m], rtol=1e-14)
    assert dead[2] < 51 and dead[0] == dead[1] == 51


# ---------------------------------------------------------------- bad input and the CLI


@pytest.mark.parametrize("kw,msg", [
    (dict(eta_lambda=0.0, width=10), "eta"), (dict(eta_lambda=-1.0, width=10), "eta"),
    (dict(eta_lambda=float("nan"), width=10), "eta"), (dict(eta_lambda=1.0, width=0), "width"),
    (dict(eta_lambda=1.0, width=10, steps=0), "steps"),
])
def test_bad_input(kw, msg):
    with pytest.raises(PerturbError, match=msg):
        uv_catapult(**kw)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "perturb", "catapult", *args], capture_output=True, text=True)


def test_cli_json_contract():
    p = _cli("--eta-lambda", "3", "--width", "2000", "--steps", "500", "--seed", "1", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert set(out) == {"phase", "lambda0", "lambda_final", "eta_lambda_final", "loss_max"}
    res = uv_catapult(3.0, 2000, steps=500, seed=1)
    assert out == pytest.approx(res.as_dict()) and out["phase"] == "catapult"


def test_cli_divergent_reports_phase_without_nan(capsys):
    from perturb.cli import main

    assert main(["catapult", "--eta-lambda", "10", "--width", "100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["phase"] == "divergent"
    assert all(math.isfinite(out[k]) for k in ("lambda0", "lambda_final", "eta_lambda_final", "loss_max"))


@pytest.mark.parametrize("args,msg", [
    (("--eta-lambda", "0", "--width", "10"), "eta"), (("--eta-lambda", "-2", "--width", "10"), "eta"),
    (("--eta-lambda", "1", "--width", "0"), "width"),
    (("--eta-lambda", "1", "--width", "10", "--steps", "0"), "steps"),
    (("--eta-lambda", "abc", "--width", "10"), "eta-lambda"),
])
def test_cli_bad_input_exit_2(args, msg, capsys):
    from perturb.cli import main

    try:
        status = main(["catapult", *args])
    except SystemExit as exc:  # argparse's own usage errors
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert "error" in err and msg in err and "Traceback" not in err


def test_evolve_is_exact_polynomial_identity():
    # evolve() on the Gram entries composes: g'(g) evaluated twice equals two explicit steps
    m = uv_model()
    u, v = uv_init(9, 11)
    vals = {m.gram("u", "u"): u @ u / 9, m.gram("u", "v"): u @ v / 9, m.gram("v", "v"): v @ v / 9,
            N: 9, ETA: 0.4, Y: 0.3}
    e = evolve(m, m.outputs[0])
    f_t, _ = uv_gd_vectors(u, v, 0.4, 1, y=0.3)
    assert float(e.xreplace(vals)) == pytest.approx(f_t[1], rel=1e-14)


@pytest.mark.slow
def test_two_layer_linear_closes_with_symbolic_inputs():
    # fully symbolic x_{a,i} (N = 2, d = 2): ~10 s of rational-function cancellation
    from perturb.dynamics.hierarchy import two_layer_linear_maps

    res = two_layer_linear_maps(2, 2)
    assert res.closed
    A = sp.Symbol("A", positive=True)
    f1, f2 = sp.symbols("f_1 f_2", real=True)
    y1, y2 = sp.symbols("y_1 y_2", real=True)
    t11, t12 = sp.symbols("Thetav_11 Thetav_12", real=True)
    x = sp.Matrix(2, 2, lambda a, i: sp.Symbol(f"x_{a + 1}{i + 1}", real=True))
    G = x * x.T
    # first order in η: f_1' = f_1 − η Σ_b Θ_1b r_b with Θ = A G + Θv (λ_U = λ_v = 1)
    lin = sp.diff(res.maps[f1], ETA).subs(ETA, 0)
    assert sp.expand(lin + (A * G[0, 0] + t11) * (f1 - y1) + (A * G[0, 1] + t12) * (f2 - y2)) == 0


def test_tour_section_quick(tmp_path):
    pytest.importorskip("matplotlib")
    from perturb.tour import TourContext, s60_catapult

    ctx = TourContext(out=tmp_path, quick=True)
    lines = s60_catapult.run(ctx)
    assert any("catapult→divergent 4.0000000" in line for line in lines)
    data = json.loads((tmp_path / "catapult_uv.json").read_text())
    assert data["2.5"]["phase"] == "catapult" and data["4.1"]["phase"] == "divergent"
    assert (tmp_path / "catapult_uv.png").stat().st_size > 10_000
