"""The NTK at order 1/n² (perturb.engine, one input) against exact finite-width results.

Independent routes (none uses the engine):

* deep linear networks: perturb.linear_exact.ntk_moments_exact (chi-square calculus, Wishart
  decomposition of the forward and backward chains), and the numbers quoted in issue 13:
  Var Θ = 4/n (L = 1), 4(5n + 4)/n² (L = 2), 4(14n² + 23n + 13)/n³ (L = 3) for C_W = 1, C_b = 0,
  |x|²/n_0 = 1, λ = C;
* ReLU (C_W = 2) and |z| networks: perturb.ntk_exact.ntk_series, the exact moments expanded in 1/n
  (ReLU's 2^{−n} terms dropped) — a kinked activation at order 1/n²;
* numpy (closed forms / quadrature) vs mpmath at 30 digits of the same compiled expressions.

The order-2 map is derived once per process (~30 s CPU cold, then in the disk cache).
"""

from __future__ import annotations

import json

import pytest
import sympy as sp

from perturb.engine.fold import ntk_series, ntk_series_exact

n = sp.Symbol("n", positive=True)


def _truncate(expr, order: int = 2) -> list:
    """Coefficients of n^0..n^{−order} of an exact rational function of n."""
    e = sp.Symbol("e", positive=True)
    ser = sp.series(sp.cancel(expr.subs(n, 1 / e)), e, 0, order + 1).removeO()
    return [sp.nsimplify(ser.coeff(e, k)) for k in range(order + 1)]


def _coeffs(series: list) -> list:
    return [sp.simplify(v * n**e) for e, v in enumerate(series)]


@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_deep_linear_order2_equals_exact_truncation(L):
    from perturb.linear_exact import ntk_moments_exact

    s = ntk_series_exact("linear", [n] * L, [1], C_W=1, C_b=0, order=2)
    exact = ntk_moments_exact([n] * L)
    assert _coeffs(s["var"]) == _truncate(exact["var"])
    assert _coeffs(s["mean"]) == _truncate(exact["mean"])
    # issue 13's numbers (L = 1, 2 are exactly quadratic in 1/n; L = 3 truncated)
    issue = {1: 4 / n, 2: 4 * (5 * n + 4) / n**2, 3: 4 * (14 * n**2 + 23 * n + 13) / n**3}
    if L in issue:
        assert _coeffs(s["var"]) == _truncate(issue[L])


@pytest.mark.parametrize("ws, cw, lw", [
    ((n, 2 * n), (1, sp.Rational(3, 2), sp.Rational(1, 2)), None),
    ((2 * n, n, 3 * n), (sp.Rational(1, 2), 2, 1, sp.Rational(3, 2)), (1, sp.Rational(1, 3), 2, 1)),
])
def test_deep_linear_unequal_widths_and_per_layer_constants(ws, cw, lw):
    """Layer-dependent widths (r ≠ 1) and C_W, λ_W: still the exact 1/n² truncation."""
    from perturb.linear_exact import ntk_moments_exact

    s = ntk_series_exact("linear", list(ws), [1], C_W=list(cw), C_b=0, lambda_W=lw and list(lw), lambda_b=0, order=2)
    exact = ntk_moments_exact(list(ws), C_W=list(cw), lambda_W=lw and list(lw))
    assert _coeffs(s["var"]) == _truncate(exact["var"])
    assert _coeffs(s["mean"]) == _truncate(exact["mean"])


def test_deep_linear_order1_misses_what_order2_catches():
    """At n = 8, L = 3 the order-1 variance is 18 % low (issue 13); order 2 leaves only the n⁻³ term."""
    s = ntk_series_exact("linear", [8, 8, 8], [1], C_W=1, C_b=0, order=2)
    exact = sp.Rational(4 * (14 * 64 + 23 * 8 + 13), 512)
    o1, o2 = s["var"][1], s["var"][1] + s["var"][2]
    assert 0.17 < float(1 - o1 / exact) < 0.19
    assert exact - o2 == sp.Rational(4 * 13, 512)


@pytest.mark.slow
@pytest.mark.parametrize("kind, cw, L", [("relu", 2, 1), ("relu", 2, 2), ("relu", 2, 3), ("abs", 1, 2)])
def test_kinked_order2_equals_exact_series(kind, cw, L):
    from perturb.ntk_exact import ntk_series as exact_series

    s = ntk_series_exact(kind, [n] * L, [1], C_W=cw, C_b=0, lambda_b=0, order=2)
    ex = exact_series(kind, L, 2, C_W=cw, lambda_b=0)
    assert _coeffs(s["var"]) == ex["var"]
    assert _coeffs(s["mean"]) == ex["mean"]


@pytest.mark.slow
@pytest.mark.parametrize("act, cw, cb", [("tanh", 1.2, 0.1)])
def test_numpy_equals_mpmath_at_order2(act, cw, cb):
    """The same compiled order-2 expressions, numpy (closed forms/quadrature) vs mpmath at 30 digits.

    Tolerance 1e-11 relative: the quadrature layer is accurate to ~1e-15 per atom; the order-2
    coefficient is a sum of a few hundred atom products with cancellations of ~1e-3.
    """
    kw = dict(C_W=cw, C_b=cb, order=2)
    a = ntk_series(act, [8, 12], [1.0, 0.3], **kw)       # two layers: r = 3/2 exercised, cost halved
    b = ntk_series(act, [8, 12], [1.0, 0.3], dps=30, **kw)
    for key in ("mean", "var", "cov_z2_ntk", "cov_sigma_ntk"):
        for x, y in zip(a[key], b[key]):
            assert abs(float(x) - float(y)) <= 1e-11 * abs(float(y)) + 1e-16, (key, x, y)


# ----------------------------------------------------------------------------- the CLI contract


def _cli(capsys, *args):
    from perturb.cli import main

    status = main(["ntk-stats", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


BASE = ("--activation", "tanh", "--cw", "1.2", "--cb", "0.1", "--widths", "8,8", "--x", "1")


@pytest.mark.slow
def test_cli_order2_keys_series_and_cross(capsys):
    status, stdout, err = _cli(capsys, *BASE, "--order", "2", "--json")
    assert status == 0, err
    plain = json.loads(stdout)
    assert set(plain) == {"mean", "var"}
    status, stdout, err = _cli(capsys, *BASE, "--order", "2", "--series", "--cross", "--json")
    assert status == 0, err
    out = json.loads(stdout)
    assert set(out) == {"mean", "var", "cov_z2_ntk", "cov_sigma_ntk", "series"}
    assert set(out["series"]) == {"mean", "var", "cov_z2_ntk", "cov_sigma_ntk"}
    for key in ("mean", "var", "cov_z2_ntk", "cov_sigma_ntk"):
        assert len(out["series"][key]) == 3
        assert sum(out["series"][key]) == pytest.approx(out[key], rel=1e-14)
    assert out["mean"] == pytest.approx(plain["mean"], rel=1e-14)
    # the order-1 part is the order-1 command's answer
    status, stdout, _ = _cli(capsys, *BASE, "--json")
    one = json.loads(stdout)
    assert sum(out["series"]["var"][:2]) == pytest.approx(one["var"], rel=1e-12)
    # issue 13: at n = 8 this network's Var Θ lies ~9 % above order 1 (Monte Carlo); order 2 adds it
    assert 0.07 < out["series"]["var"][2] / out["series"]["var"][1] < 0.12


@pytest.mark.slow
def test_cli_order2_dps(capsys):
    status, stdout, err = _cli(capsys, *BASE, "--order", "2", "--dps", "25", "--json")
    assert status == 0, err
    out = json.loads(stdout)
    status, stdout, _ = _cli(capsys, *BASE, "--order", "2", "--json")
    fl = json.loads(stdout)
    assert float(out["var"]) == pytest.approx(fl["var"], rel=1e-11)


@pytest.mark.parametrize("args, msg", [(["--order", "3"], "orders 1..2"), (["--order", "0"], "orders 1..2")])
def test_cli_order_out_of_range_exit_2(capsys, args, msg):
    status, _, err = _cli(capsys, *BASE, *args, "--json")
    assert status == 2 and msg in err and len(err.strip().splitlines()) == 1


def test_cli_order2_step_activation_refused(capsys):
    """σ' of step is a Dirac delta: its NTK does not exist (refused before any derivation)."""
    status, _, err = _cli(capsys, "--activation", "step", "--widths", "8", "--x", "1", "--order", "2", "--json")
    assert status == 2 and "undefined" in err and len(err.strip().splitlines()) == 1


def test_cli_inputs_with_order2_refused(capsys, tmp_path):
    f = tmp_path / "x.json"
    f.write_text("[[1.0, 0.0], [0.0, 1.0]]")
    status, _, err = _cli(capsys, "--activation", "tanh", "--widths", "8", "--inputs", str(f), "--order", "2")
    assert status == 2 and "--inputs supports --order 1" in err


@pytest.mark.slow
def test_tour_section_quick(tmp_path):
    from perturb.tour import TourContext
    from perturb.tour import s71_ntk_order2 as s

    lines = s.run(TourContext(out=tmp_path, quick=True))
    assert any("20/n + 16/n**2" in ln for ln in lines)
    assert (tmp_path / "ntk_order2.json").exists()
