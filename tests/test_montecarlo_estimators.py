"""Estimators and verdicts of the Monte Carlo laboratory.

Unbiasedness is checked on distributions with known cumulants, averaging the estimator over
many independent small samples (where a biased plug-in estimator is visibly off); the coverage
of the reported standard errors is checked over repeated seeds with a binomial test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from perturb.errors import PerturbError
from perturb.montecarlo import (
    Estimate,
    assert_agrees,
    cumulant,
    jackknife,
    joint_cumulant,
    log_moment,
    moment,
    standardized_cumulant,
    standardized_moment,
    verdict,
)


def _mean_estimate(values: np.ndarray) -> Estimate:
    """Mean of independent replicate values with its plain standard error (the replicates are iid)."""
    return Estimate(float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size)), values.size)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_kstat_matches_scipy(k):
    x = np.random.default_rng(10 + k).exponential(size=500)
    # independent implementation: scipy.stats.kstat (Fisher's formulas, k <= 4)
    assert cumulant(x, k).value == pytest.approx(stats.kstat(x, k), rel=1e-12, abs=1e-14)


def test_joint_cumulant_reduces_to_cumulant():
    x = np.random.default_rng(3).standard_normal(300) ** 2
    y = np.stack([x, x, x], axis=1)
    for k in (2, 3, 4, 5, 6):
        assert joint_cumulant(y, [0, 1, 2, 0, 1, 2][:k]).value == pytest.approx(cumulant(x, k).value, rel=1e-10)


# Known cumulants. Exponential(1): κ_k = (k−1)!. Gaussian: κ2 = 1, κ_k = 0 for k != 2.
# Student-t with ν dof: κ2 = ν/(ν−2), κ4 = 6/(ν−4) κ2² (excess kurtosis 6/(ν−4)); odd ones 0.
NU = 30
CASES = [
    ("gaussian", lambda r, s: r.standard_normal(s), {2: 1.0, 3: 0.0, 4: 0.0, 5: 0.0, 6: 0.0}),
    ("exponential", lambda r, s: r.exponential(size=s), {2: 1.0, 3: 2.0, 4: 6.0, 5: 24.0, 6: 120.0}),
    ("student_t", lambda r, s: r.standard_t(NU, size=s),
     {2: NU / (NU - 2), 3: 0.0, 4: 6 / (NU - 4) * (NU / (NU - 2)) ** 2}),
]


@pytest.mark.parametrize("name,draw,kappas", CASES, ids=[c[0] for c in CASES])
def test_kstat_unbiased_on_small_samples(name, draw, kappas):
    # 20 000 independent samples of size 12: the k-statistic is unbiased at any n
    rng = np.random.default_rng(2024)
    x = draw(rng, (12, 20_000))
    for k, kappa in kappas.items():
        est = cumulant(x, k)  # vectorised over the 20 000 columns
        assert_agrees(kappa, _mean_estimate(np.asarray(est.value)), label=f"{name} k{k}")


def test_plugin_cumulant_bias_is_detected():
    # the test above has power: the plug-in variance (ddof=0) at n = 12 is biased by −1/12
    x = np.random.default_rng(5).standard_normal((12, 20_000))
    plugin = x.var(axis=0)
    assert not verdict(1.0, _mean_estimate(plugin)).passed
    assert verdict(1.0, _mean_estimate(plugin * 12 / 11)).passed


def test_joint_cumulant_unbiased_nongaussian():
    # x = e1, y = e1 + e2 (iid exponentials): κ(x,x,y,y) = κ4(e1) = 6, κ(x,y) = 1, κ(x,y,y) = 2
    rng = np.random.default_rng(77)
    e1, e2 = rng.exponential(size=(2, 12, 20_000))
    xy = np.stack([e1, e1 + e2], axis=1)  # (12, 2, 20000)
    for idx, truth in (([0, 1], 1.0), ([0, 1, 1], 2.0), ([0, 0, 1, 1], 6.0)):
        est = joint_cumulant(xy, idx)
        assert_agrees(truth, _mean_estimate(np.asarray(est.value)), label=f"kappa{idx}")


def _coverage(zs: np.ndarray, dof: int | None) -> None:
    inside = int(np.sum(np.abs(zs) < 2))
    expected = 1 - 2 * (stats.t.sf(2, dof) if dof else stats.norm.sf(2))  # 0.9455 for 31 dof
    p = stats.binomtest(inside, zs.size, expected).pvalue
    assert p > 0.01, f"coverage {inside}/{zs.size} vs expected {expected:.4f} (binomial p = {p:.3g})"


def test_stderr_coverage_moment_gaussian():
    zs, dof = [], None
    for seed in range(300):
        x = np.random.default_rng(seed).standard_normal(2000)
        e = moment(x, 2)
        zs.append(e.z(1.0))
        dof = e.dof
    _coverage(np.array(zs), dof)


def test_stderr_coverage_kstat4_exponential():
    zs, dof = [], None
    # n large enough for the k-statistic's sampling law to be near normal (at n = 4000 the
    # exponential's k4 is still visibly skewed and 2σ intervals cover only ~86%)
    for seed in range(200):
        x = np.random.default_rng(1000 + seed).exponential(size=40_000)
        e = cumulant(x, 4)
        zs.append(e.z(6.0))
        dof = e.dof
    _coverage(np.array(zs), dof)


def test_stderr_coverage_ratio_heavy_tail():
    # Student-t, ν = 12: kurtosis E x⁴/(E x²)² = 3 + 6/(ν−4) = 3.75; the ratio's error comes from
    # the jackknife (a delta method); the tail is heavy (the 8th moment needed for its variance
    # exists only just) — this checks the errors stay honest there
    zs, dof = [], None
    for seed in range(200):
        x = np.random.default_rng(5000 + seed).standard_t(12, size=40_000)
        e = standardized_moment(x, 4)
        zs.append(e.z(3.75))
        dof = e.dof
    zs = np.array(zs)
    # jackknife ratio estimators carry an O(1/n) bias; coverage must still be near nominal
    _coverage(zs, dof)


def test_jackknife_matches_analytic_error_for_mean():
    x = np.random.default_rng(0).standard_normal(10_000)
    e = jackknife(x, np.mean, n_groups=10_000)  # delete-one jackknife of the mean = s/√n exactly
    assert e.stderr == pytest.approx(x.std(ddof=1) / 100, rel=1e-9)


def test_log_moment_and_zeros():
    x = np.exp(np.random.default_rng(1).normal(0.3, 1.0, 40_000))  # log x ~ N(0.3, 1)
    assert_agrees(0.3, log_moment(x, 1))
    with pytest.raises(PerturbError, match="exactly 0"):
        log_moment(np.array([0.0, 1.0, 2.0]), 1)
    assert log_moment(np.array([0.0, 1.0, np.e, np.e]), 1, zeros="drop").value == pytest.approx(2 / 3)


def test_vectorised_estimates_shape():
    x = np.random.default_rng(2).standard_normal((5000, 3, 2))
    e = cumulant(x, 2)
    assert np.shape(e.value) == (3, 2) and np.shape(e.stderr) == (3, 2)
    assert_agrees(np.ones((3, 2)), e)


@pytest.mark.parametrize(
    "call",
    [
        lambda: moment(np.array([1.0, np.nan, 2.0]), 2),
        lambda: moment(np.ones(10), 0),
        lambda: moment(np.ones(10), 2.5),
        lambda: cumulant(np.ones(3), 4),
        lambda: moment(5.0, 1),
        lambda: moment(np.ones(10), 1, n_groups=1),
        lambda: joint_cumulant(np.ones((10, 2)), [0, 2]),
    ],
)
def test_bad_input(call):
    with pytest.raises(PerturbError):
        call()


# --------------------------------------------------------------------------- verdict


def test_verdict_scalar_and_prediction_stderr():
    est = Estimate(1.05, 0.01, 10_000)
    assert not verdict(1.0, est).passed
    v = verdict(1.0, est, prediction_stderr=0.03)
    assert v.passed and float(v.z) == pytest.approx(0.05 / math.hypot(0.01, 0.03))
    # an Estimate as the prediction contributes its own stderr
    assert verdict(Estimate(1.0, 0.03, 100), est).passed


def test_verdict_bonferroni_and_t_reference():
    # z = 3 on one of 10 elements: p_each (normal) = 0.0027, Bonferroni p = 0.027 → passes at 0.99
    est = Estimate(np.r_[3.0, np.zeros(9)], np.ones(10), 10_000)
    v = verdict(np.zeros(10), est)
    assert v.p_value == pytest.approx(10 * 2 * stats.norm.sf(3))
    assert v.passed
    # the same z with 31 dof is less significant (heavier-tailed reference)
    v31 = verdict(np.zeros(10), Estimate(est.value, est.stderr, 10_000, 31))
    assert v31.p_value == pytest.approx(min(1, 10 * 2 * stats.t.sf(3, 31)))


def test_verdict_exact_and_zero_error():
    assert verdict(2.0, Estimate(2.0, 0.0, 1)).passed
    assert not verdict(2.0, Estimate(2.0 + 1e-9, 0.0, 1)).passed


def test_assert_agrees_message():
    with pytest.raises(AssertionError, match=r"(?s)kurtosis: Monte Carlo DISAGREES.*z = \+5\.00"):
        assert_agrees(3.0, Estimate(3.5, 0.1, 1000), label="kurtosis")


@pytest.mark.parametrize(
    "call",
    [
        lambda: verdict(np.nan, Estimate(1.0, 0.1, 10)),
        lambda: verdict(1.0, Estimate(np.nan, 0.1, 10)),
        lambda: verdict([1.0, 2.0, 3.0], Estimate(np.ones(2), np.ones(2), 10)),
        lambda: verdict(1.0, 1.0),
        lambda: verdict(1.0, Estimate(1.0, 0.1, 10), confidence=1.5),
    ],
)
def test_verdict_bad_input(call):
    with pytest.raises(PerturbError):
        call()


def test_standardized_cumulant_matches_ratio_of_kstats():
    x = np.random.default_rng(12).exponential(size=3000)
    e = standardized_cumulant(x, 4)
    assert e.value == pytest.approx(stats.kstat(x, 4) / stats.kstat(x, 2) ** 2, rel=1e-12)
    # and its jackknife error equals the generic jackknife of the same statistic
    g = jackknife(x, lambda s: stats.kstat(s, 4) / stats.kstat(s, 2) ** 2)
    assert e.stderr == pytest.approx(g.stderr, rel=1e-9)
