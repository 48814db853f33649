"""perturb advise: every number against the specialised command that owns it, width answers by
brute force at n and n − 1, the regimes on clear cases, the bad inputs.

The independent checks: each advise number is recomputed here by running the specialised CLI
command in-process (``criticality``, ``fixed-point``, ``kernel``, ``cumulants``, ``ntk-stats``,
``ntk-move``, ``relu-exact``) and reading its JSON.  For ReLU at C_W = 2, C_b = 0 the exact law
has E z² = K and E z⁴ = 3K² Π_ℓ (1 + 5/n_ℓ) (Hanin & Nica 2019; perturb.relu_exact's doctest
``3 K² (1 + 5/2)``), so κ4/κ2² = 3[(1 + 5/n)^L − 1] exactly and 15 L/n at order 1/n: closed
forms the two kurtosis values are also compared with.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from perturb.advise import KERNEL_MAX_CHANGE, RATIO_MAX, SERIES_MAX, advise, regime_grid
from perturb.cli import main


def cli(capsys, *argv):
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def cli_json(capsys, *argv):
    status, out, err = cli(capsys, *argv, "--json")
    assert status == 0, err
    return json.loads(out)


def _s(v):
    return ",".join(repr(float(t)) for t in v)


@pytest.fixture(scope="module")
def tanh_inputs(tmp_path_factory):
    path = tmp_path_factory.mktemp("advise") / "X.json"
    X = [[1.0, 0.5], [-0.3, 0.8], [0.2, -1.1]]
    path.write_text(json.dumps(X))
    return str(path), X


def test_every_number_equals_its_command(capsys, tanh_inputs):
    path, X = tanh_inputs
    L, n, cb = 6, 40, 0.1
    adv = cli_json(capsys, "advise", "--activation", "tanh", "--depth", str(L), "--width", str(n),
                   "--cb", str(cb), "--inputs", path)
    for key in ("C_W", "C_b", "xi_c", "depth_over_xi", "kurtosis", "ntk_rel_var", "eta_lazy_max",
                "eta_catapult_max", "regime", "notes"):
        assert key in adv
    # criticality
    crit = cli_json(capsys, "criticality", "--activation", "tanh", "--cb", str(cb))
    assert adv["C_W"] == crit["C_W"] and adv["C_b"] == cb
    cw = repr(adv["C_W"])
    # fixed-point: xi_c and the phase
    fp = cli_json(capsys, "fixed-point", "--activation", "tanh", "--cw", cw, "--cb", str(cb))
    assert adv["phase"] == fp["phase"] == "critical"
    assert adv["xi_c"] == fp["xi_c"]
    assert adv["depth_over_xi"] == (0.0 if fp["xi_c"] is None else L / fp["xi_c"])
    # kernel: the learning-rate window from the NTK's top eigenvalue
    ker = cli_json(capsys, "kernel", "--activation", "tanh", "--depth", str(L), "--cw", cw, "--cb", str(cb),
                   "--inputs", path)
    lam = np.linalg.eigvalsh(np.array(ker["ntk"]))
    assert adv["eta_lazy_max"] == pytest.approx(2 / lam[-1], rel=1e-14)
    assert adv["eta_catapult_max"] == pytest.approx(4 / lam[-1], rel=1e-14)
    # the representative input: mean K^(1) of the inputs
    x = adv["x"]
    assert np.dot(x, x) / len(x) == pytest.approx(np.mean([np.dot(r, r) for r in X]) / 2, rel=1e-14)
    # cumulants --order 1: kurtosis = κ4/K²
    cu = cli_json(capsys, "cumulants", "--activation", "tanh", "--cw", cw, "--cb", str(cb),
                  "--widths", ",".join([str(n)] * L), "--x", _s(x), "--order", "1")
    assert adv["kurtosis"] == pytest.approx(cu["cumulants"]["4"] / cu["K"] ** 2, rel=1e-12)
    assert adv["y"] == pytest.approx(math.sqrt(cu["K"]), rel=1e-14)   # default target: the output's scale
    # ntk-stats var over the infinite-width NTK H² (H from perturb kernel at x̄)
    ns = cli_json(capsys, "ntk-stats", "--activation", "tanh", "--cw", cw, "--cb", str(cb),
                  "--widths", ",".join([str(n)] * L), "--x", _s(x))
    xpath = path.replace("X.json", "xbar.json")
    with open(xpath, "w") as fh:
        json.dump([x], fh)
    H = cli_json(capsys, "kernel", "--activation", "tanh", "--depth", str(L), "--cw", cw, "--cb", str(cb),
                 "--inputs", xpath)["ntk"][0][0]
    assert adv["ntk_rel_var"] == pytest.approx(ns["var"] / H**2, rel=1e-10)
    # ntk-move: the relative change over the converged run at eta = 1/λ_max
    assert adv["eta"] == pytest.approx(1 / lam[-1], rel=1e-14)
    mv = cli_json(capsys, "ntk-move", "--activation", "tanh", "--cw", cw, "--cb", str(cb),
                  "--widths", ",".join([str(n)] * L), "--x", _s(x), "--eta", repr(adv["eta"]),
                  "--y", repr(adv["y"]))
    assert mv["run_converges"]
    assert adv["ntk_change"] == pytest.approx(mv["delta_ntk_run"] / H, rel=1e-10)


def test_relu_exact_kurtosis_equals_relu_exact(capsys):
    L, n = 3, 16
    adv = cli_json(capsys, "advise", "--activation", "relu", "--depth", str(L), "--width", str(n), "--x", "1,0.5")
    c = {M: cli_json(capsys, "relu-exact", "--widths", ",".join([str(n)] * L), "--x", "1,0.5",
                     "--moment", str(M))["cumulant"] for M in (2, 4)}
    assert adv["kurtosis_exact"] == pytest.approx(float(c[4]) / float(c[2]) ** 2, rel=1e-14)
    assert adv["kurtosis_exact_source"] == "relu-exact"
    # order 1/n: 3[(1 + 5/n)^L − 1] to first order in 1/n = 15 L/n
    assert adv["kurtosis"] == pytest.approx(15 * L / n, rel=1e-12)
    # exact: κ4/κ2² = E z⁴/K² − 3 = 3[(1 + 5/n)^L − 1]
    assert adv["kurtosis_exact"] == pytest.approx(3 * ((1 + 5 / n) ** L - 1), rel=1e-12)
    assert adv["C_W"] == 2.0
    # critical ReLU NTK (λ = C = 2, C_b = 0): Θ^(1) = K = 2|x|²/n0 and Θ^(l+1) = K + Θ^(l) (PDLT ch. 9,
    # <σσ>_K = K/2 and <σ'σ'>_K = 1/2), so H = (L+1)K = 4 · 1.25 and eta_lazy_max = 2/H = 0.4
    assert adv["eta_lazy_max"] == pytest.approx(2 / ((L + 1) * 2 * 1.25 / 2), rel=1e-12)


@pytest.mark.slow
def test_exact_kurtosis_any_activation_equals_perturb_exact(capsys):
    adv = cli_json(capsys, "advise", "--activation", "tanh", "--depth", "3", "--width", "8", "--x", "1",
                   "--exact")
    ex = cli_json(capsys, "exact", "--activation", "tanh", "--cw", repr(adv["C_W"]), "--widths", "8,8,8",
                  "--x", "1")
    assert adv["kurtosis_exact_source"] == "exact"
    assert adv["kurtosis_exact"] == pytest.approx(ex["cumulants"]["4"] / ex["cumulants"]["2"] ** 2, rel=1e-12)
    no = advise("tanh", 3, 8, [[1.0]])
    assert no.kurtosis_exact is None and no.kurtosis_exact_source is None


@pytest.mark.parametrize("which", ["kurtosis", "ntk_rel_var"])
def test_width_for_target_brute_force(which):
    from perturb.advise import kurtosis_at, ntk_rel_var_at

    L, x, eps = 5, [1.0], 0.037
    fn = {"kurtosis": kurtosis_at, "ntk_rel_var": ntk_rel_var_at}[which]
    a = advise("tanh", L, 30, [x], **{f"target_{which}": eps})
    m = getattr(a, f"width_for_{which}")
    assert abs(fn("tanh", L, m, x, a.C_W, a.C_b)) <= eps < abs(fn("tanh", L, m - 1, x, a.C_W, a.C_b))
    # independent brute force over all widths up to m
    assert all(abs(fn("tanh", L, k, x, a.C_W, a.C_b)) > eps for k in range(max(1, m - 25), m))


def test_order_one_quantities_scale_as_one_over_n():
    """regime_grid relies on c/n at equal widths; check it against advise at other widths."""
    g = regime_grid("tanh", [4], [20, 50, 80], [1.0])
    for j, n in enumerate((50, 80)):
        a = advise("tanh", 4, n, [[1.0]])
        assert g["kurtosis"][0, j + 1] == pytest.approx(a.kurtosis, rel=1e-10)
        assert g["ntk_rel_var"][0, j + 1] == pytest.approx(a.ntk_rel_var, rel=1e-10)
        assert g["ntk_change"][0, j + 1] == pytest.approx(a.ntk_change, rel=1e-10)


def test_regimes_on_clear_cases():
    wide = advise("tanh", 2, 4096, [[1.0]])
    assert wide.regime == "kernel" and abs(wide.ntk_change) < KERNEL_MAX_CHANGE
    mid = advise("tanh", 8, 64, [[1.0]])
    assert mid.regime == "feature-learning"
    assert mid.series_reliable and abs(mid.ntk_change) >= KERNEL_MAX_CHANGE
    deep = advise("tanh", 40, 64, [[1.0]])
    assert deep.regime == "non-perturbative" and deep.depth / deep.width >= RATIO_MAX
    relu = advise("relu", 8, 64, [[1.0]])     # L/n = 1/8 but κ4/K² = 15 L/n ≈ 1.9: series unreliable
    assert relu.regime == "non-perturbative" and relu.kurtosis >= SERIES_MAX > relu.depth / relu.width
    for a in (wide, mid, deep, relu):
        assert any(line.startswith(f"regime = {a.regime}") for line in a.notes)


def test_user_initialisation_reports_phase(capsys):
    adv = cli_json(capsys, "advise", "--activation", "tanh", "--depth", "4", "--width", "64", "--x", "1",
                   "--cw", "0.5")
    assert adv["C_W"] == 0.5 and adv["phase"] == "ordered"
    assert math.isfinite(adv["xi_c"]) and adv["depth_over_xi"] == pytest.approx(4 / adv["xi_c"])
    assert any("phase = ordered" in line and "critical C_W" in line for line in adv["notes"])


def test_no_critical_point_exit_2(capsys):
    status, out, err = cli(capsys, "advise", "--activation", "softplus", "--depth", "3", "--width", "32",
                           "--x", "1")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "no critical point" in err and "C_b" in err and "--cw" in err


@pytest.mark.parametrize("opt,value", [("--target-kurtosis", "0"), ("--target-ntk-rel-var", "-0.1")])
def test_unreachable_target_exit_2(capsys, opt, value):
    status, out, err = cli(capsys, "advise", "--activation", "relu", "--depth", "2", "--width", "8",
                           "--x", "1", opt, value)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "no finite width" in err


def test_non_finite_target_refused():
    from perturb.errors import PerturbError

    with pytest.raises(PerturbError, match="finite number > 0"):
        advise("relu", 2, 8, [[1.0]], target_kurtosis=float("nan"))


def test_depth_bounded(capsys):
    status, out, err = cli(capsys, "advise", "--activation", "tanh", "--depth", "1000", "--width", "8", "--x", "1")
    assert status == 2 and out == "" and err.count("\n") == 1 and "at most 300" in err


def test_huge_target_width_is_null_with_a_note():
    a = advise("relu", 2, 8, [[1.0]], target_kurtosis=1e-14)
    # 15·2/n <= 1e-14  ⇔  n >= 3e15: null, with a note giving the width needed
    assert a.width_for_kurtosis is None
    assert any("width_for_kurtosis = null" in line and "3e+15" in line and "practically unreachable" in line
               for line in a.notes)


def test_singular_ntk_note_and_zero_ntk_error(capsys, tmp_path):
    p = tmp_path / "dup.json"
    p.write_text(json.dumps([[1.0, 0.0], [1.0, 0.0]]))
    adv = cli_json(capsys, "advise", "--activation", "tanh", "--depth", "2", "--width", "32", "--inputs", str(p))
    assert any("singular" in line and "lambda_min/lambda_max" in line for line in adv["notes"])
    assert adv["eta_lazy_max"] > 0
    status, out, err = cli(capsys, "advise", "--activation", "tanh", "--depth", "2", "--width", "32",
                           "--x", "0,0")
    assert status == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err


def test_text_output(capsys):
    status, out, _ = cli(capsys, "advise", "--activation", "relu", "--depth", "2", "--width", "32", "--x", "1")
    assert status == 0 and "regime:" in out and "eta_lazy_max" in out and "kurtosis_exact" in out


@pytest.mark.slow
def test_tour_section_quick(tmp_path):
    """Tour s90 (quick): the regime map has all three regimes, and the figure is written."""
    from perturb.tour import TourContext
    from perturb.tour import s90_advise as s

    ctx = TourContext(out=tmp_path, quick=True)
    lines = s.run(ctx)
    assert (tmp_path / "regime_map.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "regime_map.json").read_text())
    assert {0, 1, 2} <= {v for row in data["regime"] for v in row}
    assert any("regime map" in ln for ln in lines)
