"""The exact one-input law by density evolution (perturb.exact), each against an independent method.

* ReLU: the matrix model of [LH] Prop. 5.2 (perturb.relu_exact: exact Fractions, mpmath
  log-moments, its own numpy density), both for the product moments and the density evolution,
  including the general S-interpolated transfer (forced);
* linear σ: the chi-square product law Σ^{(L)} = K Π (C_W/n_ℓ) χ²_{n_ℓ}, derived here:
  E Σ^k = K^k Π (C_W/n)^k n(n+2)⋯(n+2k−2), E log Σ = log K + Σ [ψ(n/2) + log(2C_W/n)],
  Var log Σ = Σ ψ'(n/2);
* smooth σ: Monte Carlo of real networks (explicit weights, perturb.montecarlo) through the one
  verdict rule; the 1/n series of perturb.finite where it converges (tanh, n = 6, L = 6);
* bad input exits 2.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.special as sc

from perturb.errors import PerturbError
from perturb.exact import exact_law
from perturb.exact.law import _run, _z_stats
from perturb.relu_exact import relu_output_law


def _rel(a, b):
    return abs(a / b - 1)


# ------------------------------------------------------------------------------------------ ReLU


@pytest.mark.parametrize("widths", [[4, 4], [8, 8, 8]])
def test_relu_product_moments_equal_matrix_model(widths):
    law = exact_law("relu", widths, [1.0, 0.5], C_W=2.0)
    ref = relu_output_law(widths, [1.0, 0.5])
    assert law.method == "product"
    for M in (2, 4, 6, 8):
        assert _rel(law.moments[M], float(ref.moment(M))) < 1e-12
        assert _rel(law.cumulants[M], float(ref.cumulant(M))) < 1e-12
    assert abs(law.p_zero - float(ref.p_zero())) < 1e-15


def test_relu_density_evolution_equals_matrix_model_within_its_error():
    widths = [8, 8, 8]
    law = exact_law("relu", widths, [1.0], C_W=2.0, method="evolution")
    ref = relu_output_law(widths, [1.0])
    for M in (2, 4, 6, 8):
        err = abs(law.moments[M] - float(ref.moment(M)))
        assert err <= law.error["moments"][M]
        assert err / float(ref.moment(M)) < 2e-8                # measured 4e-11 .. 1.2e-8
    lm, lv = (float(v) for v in ref.log_moments(dps=20))
    assert abs(law.log_mean - lm) <= law.error["log_mean"]
    assert abs(law.log_var - lv) <= law.error["log_var"]
    z = np.array([0.3, 1.0, 2.5])
    dens, derr = law.density(z)
    assert np.all(np.abs(dens - law_density(ref, z)) <= derr + 1e-11)   # relu's numpy: ~1e-12
    assert abs(law.p_zero - float(ref.p_zero())) < 1e-15


def law_density(ref, z):
    return np.asarray(ref.density_numpy(z), dtype=float)


def test_relu_interpolated_transfer_converges_to_matrix_model():
    """The general transfer (kernel shapes interpolated in log S, as for non-homogeneous σ),
    forced on ReLU: fourth-order convergence to the exact moments."""
    from perturb.activations import get_activation

    sig = get_activation("relu").numpy()
    widths = [4, 4]
    ref = relu_output_law(widths, [1.0])
    errs = []
    for r in (1, 2):
        _, sm = _run(sig, widths, (2.0,) * 3, (0.0,) * 3, 2.0, r, False, None, ((-math.inf, 0.0),))
        mom, _ = _z_stats(sm)
        errs.append(np.array([mom[M] / float(ref.moment(M)) - 1 for M in (2, 4, 6, 8)]))
    assert np.all(np.abs(errs[1]) < 2e-7)
    rich = (16 * (errs[1] + 1) - (errs[0] + 1)) / 15 - 1
    # Richardson (order 4) helps down to the interpolation floor in log S (~1e-9, DT = 0.2)
    assert np.all(np.abs(rich) < np.maximum(np.abs(errs[1]) / 3, 1e-9))


def test_relu_with_biases_mean_is_linear_and_agrees_with_monte_carlo():
    """C_b > 0: every neuron off gives the atom Σ = C_b (kept exactly). E[relu(√S g)²] = S/2, so
    E Σ^{(ℓ)} = C_b + (C_W/2) E Σ^{(ℓ−1)} exactly at any width: 1.2 → 1.4 → 1.6 → 1.8 here."""
    law = _mc_check("relu", [3, 3, 3], 2.0, 0.2, 100_000, seed=5)
    assert law.method == "density evolution" and law.p_zero == 0
    assert abs(law.moments[2] - 1.8) <= law.error["moments"][2]


# ---------------------------------------------------------------------------------------- linear


def _chi2_product_moment(widths, K, cw, k):
    out = K ** k
    for n in widths:
        out *= (cw / n) ** k * math.prod(n + 2 * j for j in range(k))
    return out


@pytest.mark.parametrize("method,widths", [("auto", [3, 5, 2]), ("evolution", [3, 5, 2]),
                                           ("evolution", [1, 2, 1])])   # n = 1: no lattice at all
def test_linear_is_the_chi_square_product_law(method, widths):
    cw, x = 1.5, [1.0, -2.0]
    K = cw * (1 + 4) / 2
    law = exact_law("linear", widths, x, C_W=cw, method=method)
    for k in (1, 2, 3, 4):
        exact = math.prod(range(1, 2 * k, 2)) * _chi2_product_moment(widths, K, cw, k)
        assert abs(law.moments[2 * k] - exact) <= max(law.error["moments"][2 * k], 1e-13 * exact)
        assert _rel(law.moments[2 * k], exact) < 1e-7            # measured up to 3.5e-8 (n = 2, 3)
    lm = math.log(K) + sum(sc.digamma(n / 2) + math.log(2 * cw / n) for n in widths)
    lv = sum(sc.polygamma(1, n / 2) for n in widths)
    assert abs(law.log_mean - lm) <= law.error["log_mean"] and abs(law.log_mean - lm) < 1e-4
    assert abs(law.log_var - lv) <= law.error["log_var"] and abs(law.log_var - lv) < 1e-3
    assert law.p_zero == 0


# ------------------------------------------------------------------------- smooth σ: Monte Carlo


def _mc_check(act, widths, cw, cb, n_samples, seed, fourth=True):
    """E z², tail probabilities P[|z| > t] (t = 1, 3 standard deviations: bounded statistics) and
    E log|z| = (E log Σ + ψ(½) + log 2)/2 by the one verdict rule; E z⁴ and κ4 only with ``fourth``:
    at L/n ~ 1 the sample mean of z⁴ = Σ²ξ⁴ needs N ≫ exp(4 Var log Σ) samples to be reliable
    (the law of Σ is close to log-normal), which no affordable run has."""
    from perturb.montecarlo import (
        Estimate,
        assert_agrees,
        cumulant,
        log_moment,
        moment,
        sample_outputs,
    )
    from perturb.network import Network

    x = np.array([1.0, 0.0])
    law = exact_law(act, widths, x, C_W=cw, C_b=cb)
    z = sample_outputs(Network(act, widths=widths, C_W=cw, C_b=cb), x, n_samples, seed)[:, 0]
    sd = math.sqrt(law.moments[2])
    tails, terr = law.tail([sd, 3 * sd])
    checks = [(law.moments[2], moment(z, 2))]
    for t, p in zip((sd, 3 * sd), tails, strict=True):
        ind = (np.abs(z) > t).astype(float)
        checks.append((p, Estimate(ind.mean(), ind.std() / math.sqrt(ind.size), ind.size)))
    if law.p_zero == 0:
        # E log|z| = (E log Σ + E log ξ²)/2, E log ξ² = ψ(½) + log 2
        checks.append(((law.log_mean + sc.digamma(0.5) + math.log(2)) / 2, log_moment(z, 1)))
    if fourth:
        checks += [(law.moments[4], moment(z, 4)), (law.cumulants[4], cumulant(z, 4))]
    for p, e in checks:
        assert_agrees(p, e, confidence=0.999)
    return law


def test_tanh_agrees_with_monte_carlo_quick():
    _mc_check("tanh", [6, 6, 6], 1.0, 0.0, 60_000, seed=11)      # L/n = 0.5


@pytest.mark.slow
@pytest.mark.parametrize("act,cw,cb", [("tanh", 1.0, 0.0), ("gelu", 2.0, 0.0), ("erf", math.pi / 4, 0.0),
                                       ("silu", 2.0, 0.1)])
@pytest.mark.parametrize("L", [4, 8])                          # n = 8: L/n = 0.5 and 1
def test_smooth_activations_agree_with_monte_carlo(act, cw, cb, L):
    _mc_check(act, [8] * L, cw, cb, 200_000, seed=100 + L, fourth=L <= 4)


# ---------------------------------------------------------------------------- the 1/n series


@pytest.mark.slow                                              # the order-4 derivation: ~30 s
def test_series_agrees_where_it_converges():
    """tanh, C_W = 1, n = 6, L = 6: the series of perturb.finite at orders 2..4 is within the
    size of its last term of the exact law (the asymptotic-series criterion) — and the exact
    law's own error estimate is far below that."""
    from perturb.finite import FiniteWidth

    widths, x = [6] * 6, [1.0]
    law = exact_law("tanh", widths, x, C_W=1.0)
    fw = FiniteWidth("tanh", depth=6, order=4)
    st = fw.evaluate(K1=1.0, widths=widths, C_W=[1.0] * 7, C_b=[0.0] * 7)
    for key, exact in (("2", law.moments[2]), ("4", law.moments[4])):
        terms = st.series("moments", int(key))
        for k in (2, 3, 4):
            assert abs(sum(terms[:k + 1]) - exact) <= abs(terms[k])
    assert law.error["moments"][2] < 1e-3 * abs(st.series("moments", 2)[4])


# ----------------------------------------------------------------------------------- bad input


def _cli(capsys, *args):
    from perturb.cli import main

    try:
        code = main(["exact", *args])
    except SystemExit as e:                                    # argparse usage errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("args,needle", [
    (["--activation", "tanh", "--widths", "0,3", "--x", "1"], "widths must be >= 1"),
    (["--activation", "exp(z**2)", "--widths", "3", "--x", "1"], "no finite moments"),
    (["--activation", "tanh", "--widths", "3", "--x", "1", "--tol", "1e-15"], "--resolution"),
    (["--activation", "tanh", "--widths", "3", "--x", "1", "--resolution", "99"], "resolution"),
    (["--activation", "tanh", "--widths", "3", "--x", "0"], "K1 = 0"),
    (["--activation", "tanh", "--widths", "3", "--x", "1", "--density", "/nonexistent/d.png"], "does not exist"),
])
def test_bad_input_exits_2(args, needle, capsys):
    code, _, err = _cli(capsys, *args)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err


def test_cli_json_keys(tmp_path, capsys):
    code, stdout, err = _cli(capsys, "--activation", "erf", "--cw", "0.8", "--widths", "4,4", "--x", "1",
                             "--tail", "0.5", "--density", str(tmp_path / "d.json"), "--json")
    assert code == 0, err
    out = json.loads(stdout)
    for key in ("moments", "cumulants"):
        assert set(out[key]) == {"2", "4", "6", "8"}
        assert set(out["error"][key]) == {"2", "4", "6", "8"}
    assert out["cumulants"]["4"] == pytest.approx(out["moments"]["4"] - 3 * out["moments"]["2"] ** 2)
    d = json.loads((tmp_path / "d.json").read_text())
    # the density integrates to 1 − P[z = 0]
    assert np.trapezoid(d["density"], d["z"]) == pytest.approx(1 - d["p_zero"], abs=1e-4)


def test_library_bad_input():
    with pytest.raises(PerturbError, match="resolution"):
        exact_law("tanh", [3], [1.0], resolution=0.5)
    with pytest.raises(PerturbError, match="generic"):
        exact_law("generic", [3], [1.0])
