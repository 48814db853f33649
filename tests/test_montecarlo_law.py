"""The exact-law sampler (``sampler="law"``) against explicit weight matrices.

Both samplers draw real finite-width networks in law; explicit weights are the reference.  The
comparison is a two-sample test through the verdict API: each statistic of the law sampler is the
"prediction" with its own jackknife error, that of the weights sampler the estimate
(z = Δ/√(se₁² + se₂²), Student-t, Bonferroni over all statistics, confidence 0.99).  Widths are
small (4) so that the finite-width statistics (κ4 ≫ its error) are what is being compared, and a
negative control shows that the same test rejects infinite-width Gaussian samples.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from perturb.cli import main
from perturb.errors import PerturbError
from perturb.montecarlo import (
    Estimate,
    cumulant,
    joint_cumulant,
    moment,
    sample_jacobian,
    sample_ntk,
    sample_outputs,
    sample_preactivations,
    standardized_moment,
    verdict,
)
from perturb.network import Network

N_MC = 100_000


def _stats(z: np.ndarray) -> Estimate:
    """E z², E z⁴ and κ4 of one-input samples, stacked into one Estimate (3 comparisons)."""
    parts = [moment(z, 2), moment(z, 4), cumulant(z, 4)]
    return Estimate(np.array([float(p.value) for p in parts]), np.array([float(p.stderr) for p in parts]),
                    len(z), parts[0].dof)


CASES = [
    # (activation, widths, C_W, C_b, x): small widths, κ4/κ2² of order 1
    ("relu", (6, 6), 2.0, 0.0, [1.0, 0.5]),
    ("tanh", (4, 4, 4), 1.5, 0.1, [1.0]),
]


@pytest.mark.parametrize("act,widths,cw,cb,x", CASES)
def test_law_agrees_with_weights_and_rejects_infinite_width(act, widths, cw, cb, x):
    net = Network(act, widths=widths, C_W=cw, C_b=cb)
    zw = sample_outputs(net, x, N_MC, seed=1)[:, 0]
    zl = sample_outputs(net, x, N_MC, seed=2, sampler="law")[:, 0]
    sw, sl = _stats(zw), _stats(zl)
    # the finite-width effect is resolved: κ4 is many standard errors from 0
    assert abs(sw.value[2]) > 8 * sw.stderr[2]
    v = verdict(sl, sw)
    assert v.passed, v.report(f"{act}: law vs weights (E z², E z⁴, κ4)")
    # negative control: Gaussian samples with the measured variance (the infinite-width law up to
    # the O(1/n) shift of the variance) — the same test must reject them
    zg = np.random.default_rng(3).standard_normal(N_MC) * math.sqrt(float(sw.value[0]))
    assert not verdict(_stats(zg), sw).passed


def test_law_relu_matches_the_exact_matrix_model():
    # independent exact result (Hanin–Nica matrix model, LH §5 Prop. 5.2): ReLU at C_W = 2, C_b = 0,
    # E z² = K1 = 2|x|²/n0 and E z⁴ = 3 K1² Π_ℓ (1 + 5/n_ℓ)
    widths, x = (6, 6), [1.0, 0.5]
    net = Network("relu", widths=widths, C_W=2.0)
    z = sample_outputs(net, x, N_MC, seed=7, sampler="law")[:, 0]
    k1 = 2 * (1.0 + 0.25) / 2
    exact = np.array([k1, 3 * k1**2 * math.prod(1 + 5 / n for n in widths)])
    est = _stats(z)
    v = verdict(exact, Estimate(est.value[:2], est.stderr[:2], est.n, est.dof))
    assert v.passed, v.report("ReLU matrix model (law sampler)")


def test_law_two_inputs_joint_statistics_agree():
    # two inputs exercise the eigendecomposition path: E z_a z_b, joint κ(z1,z1,z2,z2), κ4 of z2
    net = Network("relu", widths=(4, 4), C_W=2.0, C_b=0.2)
    X = [[1.0, 0.0], [0.6, 0.8]]
    zw = sample_outputs(net, X, N_MC, seed=4)
    zl = sample_outputs(net, X, N_MC, seed=5, sampler="law")

    def stats(z):
        parts = [moment(z[:, 0] * z[:, 1], 1), joint_cumulant(z, [0, 0, 1, 1]), cumulant(z[:, 1], 4)]
        return Estimate(np.array([float(p.value) for p in parts]),
                        np.array([float(p.stderr) for p in parts]), len(z), parts[0].dof)

    sw, sl = stats(zw), stats(zl)
    assert abs(sw.value[1]) > 8 * sw.stderr[1]
    v = verdict(sl, sw)
    assert v.passed, v.report("two inputs: law vs weights")


def test_law_deep_linear_exact_kurtosis():
    # independent exact result: deep linear network, E z⁴/(E z²)² = 3 Π_ℓ (1 + 2/n_ℓ) (product of
    # independent χ²_{n_ℓ}/n_ℓ factors: E (χ²_n/n)² = 1 + 2/n; the linear case of LH §5 Prop. 5.2)
    widths = (3, 5, 4)
    net = Network("linear", widths=widths)
    z = sample_outputs(net, [1.0, -1.0], 200_000, seed=6, sampler="law")[:, 0]
    exact = 3 * math.prod(1 + 2 / n for n in widths)
    v = verdict(exact, standardized_moment(z, 4))
    assert v.passed, v.report("deep linear kurtosis (law sampler)")


def test_law_singular_gram_equal_inputs_give_equal_outputs():
    # equal inputs: every G is rank one; the exact law puts z(x1) = z(x2) (as real networks do)
    net = Network("tanh", widths=(5, 5), C_W=1.2, C_b=0.0)
    z = sample_outputs(net, [[0.3, 0.4], [0.3, 0.4]], 500, seed=0, sampler="law")
    np.testing.assert_allclose(z[:, 0], z[:, 1], rtol=1e-10, atol=1e-12)


def test_law_reproducible_whatever_workers_and_preactivations_consistent():
    net = Network("tanh", widths=(6, 5), C_W=1.5, C_b=0.1)
    X = [[1.0, 0.5], [0.2, -0.3], [0.0, 1.0]]
    a = sample_outputs(net, X, 700, seed=11, chunk=100, sampler="law")
    b = sample_outputs(net, X, 700, seed=11, chunk=100, sampler="law", workers=2)
    assert np.array_equal(a, b)
    zs = sample_preactivations(net, X, 700, seed=11, chunk=100, sampler="law")
    assert [z.shape for z in zs] == [(700, 6, 3), (700, 5, 3), (700, 1, 3)]
    assert np.array_equal(zs[-1][:, 0, :], a)


def test_law_refuses_what_needs_the_weights():
    net = Network("tanh", widths=(4,))
    with pytest.raises(PerturbError, match="NTK needs the weights"):
        sample_ntk(net, [1.0], 10, seed=0, sampler="law")
    with pytest.raises(PerturbError, match="Jacobian needs the weights"):
        sample_jacobian(net, [1.0], 10, seed=0, sampler="law")
    with pytest.raises(PerturbError, match="Gaussian weights only"):
        sample_outputs(net, [1.0], 10, seed=0, sampler="law", weight_law="uniform")
    with pytest.raises(PerturbError, match="unknown sampler 'exact'; valid: weights, law"):
        sample_outputs(net, [1.0], 10, seed=0, sampler="exact")


def test_cli_sampler_law_and_refusals(capsys):
    base = ["mc", "--activation", "tanh", "--widths", "8,8", "--x", "1,0.5", "--samples", "5000", "--seed", "0"]
    assert main([*base, "--sampler", "law", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sampler"] == "law" and set(data["moments"]) == {"2", "4", "6"}
    assert main([*base, "--sampler", "law", "--ntk"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "--ntk" in err and "needs the weights" in err
    assert main([*base, "--sampler", "law", "--weight-law", "rademacher"]) == 2
    assert "Gaussian weights only" in capsys.readouterr().err


def test_tour_section_quick(tmp_path):
    from perturb.tour import TourContext
    from perturb.tour import s21_law_sampler as section

    lines = section.run(TourContext(out=tmp_path, quick=True))
    assert any("(agree)" in s for s in lines) and any("networks/s" in s for s in lines)
