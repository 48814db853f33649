"""The derived dNTK statistics E[z O3] = (P + 2Q)/n (perturb.ntk.dntk): exact and numeric checks.

Independent methods:
* an exact Gaussian integration-by-parts (Stein) identity over the parameters: for ReLU or linear
  networks with C_b = λ_b = 0, z is homogeneous of degree L+1 in the weights and Δz = 0 a.e., so
  E[z O3] = (L+1) E[Θ z²] − E[Θ²]; its order-1/n part is built from the *NTK* statistics
  (perturb.ntk.chain: H, H1, K, G1, (D + 2F)/n, (A + 2B)/n), which never see P or Q;
* the identity itself checked by Monte Carlo on tiny linear networks (where it is exact at any n);
* the forward-mode O3 of real networks against a central finite difference along g.
"""

import numpy as np
import pytest
import sympy as sp

from perturb.activations import Z
from perturb.dynamics.ntk_move import network_dntk, sample_dntk
from perturb.errors import PerturbError
from perturb.montecarlo import assert_agrees, moment
from perturb.montecarlo._simulate import _draw_params
from perturb.network import Network
from perturb.ntk.dntk import (
    derive_dntk_layer_map,
    dntk_statistics,
    dntk_statistics_exact,
    sift_delta,
)


def _stein_order1(st, L):
    """n_L × [(L+1) E[Θ z²] − E[Θ²]] at order 1/n, from the NTK statistics alone."""
    H, H1, K, G1, D, F, A, B = (st.ntk.last(k) for k in ("H", "H1", "K", "G1", "D", "F", "A", "B"))
    order0 = (L + 1) * H * K - H**2
    order1 = (L + 1) * (H * G1 + K * H1 + D + 2 * F) - (2 * H * H1 + A + 2 * B)
    return order0, order1


@pytest.mark.parametrize("activation, C_W, widths", [
    ("relu", 2, [10]),
    ("relu", 2, [7, 12, 5]),
    ("relu", sp.Rational(3, 2), [4, 9]),
    ("linear", 1, [6, 3, 8]),
    ("linear", sp.Rational(1, 2), [5, 5]),
])
def test_derived_map_equals_stein_identity_exactly(activation, C_W, widths):
    st = dntk_statistics_exact(activation, widths, [1, sp.Rational(1, 2)], C_W=C_W, C_b=0)
    order0, order1 = _stein_order1(st, len(widths))
    assert sp.simplify(order0) == 0                       # E[z O3] has no O(1) part
    assert sp.simplify(st.z_dntk * widths[-1] - order1) == 0


def test_symbolic_widths_stein():
    n1, n2 = sp.symbols("n1 n2", positive=True)
    st = dntk_statistics_exact("relu", [n1, n2], [1], C_W=2, C_b=0)
    assert sp.simplify(st.z_dntk * n2 - _stein_order1(st, 2)[1]) == 0


def test_critical_relu_values():
    # exact fold (closed-form atoms; P, Q at ℓ = 2, 3, 4 for C_W = λ_W = 2, x = 1, n_0 = 1);
    # the values equal the Stein identity's order-1/n part (test above)
    st = dntk_statistics_exact("relu", [10, 10, 10], [1], C_W=2, C_b=0)
    assert [p + 2 * q for p, q in zip(st.layers["P"], st.layers["Q"], strict=True)] == [0, 32, 128, 320]


def test_numeric_fold_matches_exact_and_mpmath():
    ex = dntk_statistics_exact("relu", [8, 16, 4], [1, 2], C_W=sp.Rational(9, 5), C_b=0)
    nu = dntk_statistics("relu", [8, 16, 4], [1.0, 2.0], C_W=1.8, C_b=0.0)
    assert float(nu.z_dntk) == pytest.approx(float(ex.z_dntk), rel=1e-12)
    # tanh: numpy quadrature vs 30-digit mpmath
    a = dntk_statistics("tanh", [30, 40], [0.8], C_W=1.3, C_b=0.2)
    b = dntk_statistics("tanh", [30, 40], [0.8], C_W=1.3, C_b=0.2, dps=30)
    assert float(a.z_dntk) == pytest.approx(float(b.z_dntk), rel=1e-10)


def test_derived_structure():
    rec = derive_dntk_layer_map()
    P, Q = rec["P"], rec["Q"]
    y = rec.syms
    # linear in the incoming P, Q (each map only feeds itself) and in B, F
    assert sp.diff(P, y["Q"]) == 0 and sp.diff(Q, y["P"]) == 0
    assert sp.diff(P, y["B"]) == 0 and sp.diff(Q, y["B"]) != 0
    for e in (P, Q):
        for s in (y["P"], y["Q"], y["B"], y["F"]):
            assert sp.diff(e, s, 2) == 0
    # the λ_W-part of P is twice that of Q (σᵀDΘDσ enters P̃ with 2λ_W/C_W, Q̃ with λ_W/C_W)
    assert sp.simplify(sp.diff(P, y["lambda_W"]) - 2 * sp.diff(Q, y["lambda_W"])) == 0


def test_sift_delta():
    K = sp.Symbol("K", positive=True)
    assert sift_delta(Z**2, K) is None
    assert sp.simplify(sift_delta(sp.exp(Z) * sp.DiracDelta(Z - 1), K)
                       - sp.exp(1) * sp.exp(-1 / (2 * K)) / sp.sqrt(2 * sp.pi * K)) == 0
    with pytest.raises(PerturbError, match="Heaviside"):
        sift_delta(sp.Heaviside(Z) * sp.DiracDelta(Z), K)


def test_bad_input():
    with pytest.raises(PerturbError, match="concrete activation"):
        dntk_statistics("generic", [4], [1.0])
    with pytest.raises(PerturbError, match="widths"):
        dntk_statistics("tanh", [0], [1.0])


# --------------------------------------------------------------------------- real networks


def _fd_o3(params, x, net, t=1e-5, h=1e-6):
    """O3 = d/dt Θ(θ + t g) by central differences, g = λ ∇z itself by central differences."""
    def z_of(p):
        return network_dntk(p, x, net)[0]

    g = []
    for i, (W, b) in enumerate(params):
        lam = (net.lambda_W[i] / W.shape[2], net.lambda_b[i])
        grads = []
        for which, arr in enumerate((W, b)):
            out = np.zeros_like(arr)
            for idx in np.ndindex(arr.shape[1:]):
                sl = (slice(None), *idx)
                plus = [(a.copy(), c.copy()) for a, c in params]
                minus = [(a.copy(), c.copy()) for a, c in params]
                plus[i][which][sl] += h
                minus[i][which][sl] -= h
                out[sl] = lam[which] * (z_of(plus) - z_of(minus)) / (2 * h)
            grads.append(out)
        g.append(grads)
    pp = [(W + t * a, b + t * c) for (W, b), (a, c) in zip(params, g, strict=True)]
    pm = [(W - t * a, b - t * c) for (W, b), (a, c) in zip(params, g, strict=True)]
    return (network_dntk(pp, x, net)[1] - network_dntk(pm, x, net)[1]) / (2 * t)


@pytest.mark.parametrize("activation, C_b", [("tanh", 0.3), ("gelu", 0.1), ("relu", 0.0)])
def test_forward_mode_o3_matches_finite_differences(activation, C_b):
    net = Network(activation, widths=(5, 4, 3), C_W=1.5, C_b=C_b)
    x = np.array([0.7, -1.2])
    params = _draw_params(np.random.default_rng(1), net, 2, 6, "gaussian")
    o3 = network_dntk(params, x, net)[2]
    # central differences: truncation O(h², t²), rounding ~1e-16/h relative
    np.testing.assert_allclose(_fd_o3(params, x, net), o3, rtol=1e-6, atol=1e-8 * np.max(np.abs(o3)))


def test_sample_dntk_sees_the_laboratory_networks():
    from perturb.montecarlo import sample_ntk, sample_outputs

    net = Network("tanh", widths=(6, 5), C_W=1.2, C_b=0.1)
    s = sample_dntk(net, [0.4, 1.0], 300, seed=4)
    np.testing.assert_array_equal(s.z, sample_outputs(net, [0.4, 1.0], 300, seed=4)[:, 0])
    np.testing.assert_allclose(s.ntk, sample_ntk(net, [0.4, 1.0], 300, seed=4)[:, 0, 0], rtol=1e-12)


def test_stein_identity_on_tiny_linear_networks():
    # linear, no biases: z homogeneous of degree L+1, Δz = 0 exactly, so the identity holds at
    # any width: E[z O3 − (L+1) Θ z² + Θ²] = 0 (checked at n = 3, where 1/n is not small)
    L = 2
    net = Network("linear", widths=(3, 3), C_W=1.0, C_b=0.0)
    s = sample_dntk(net, [1.0], 200_000, seed=7)
    resid = s.z * s.o3 - ((L + 1) * s.ntk * s.z**2 - s.ntk**2)
    assert_agrees(0.0, moment(resid, 1), label="Stein identity, linear n=3 L=2")
    assert abs(np.mean(s.z * s.o3)) > 10 * moment(resid, 1).stderr     # the identity is not 0 = 0


# --------------------------------------------------------------------------- CLI


def test_cli_json_contract(ntk_move_cli):
    import json

    status, stdout, err = ntk_move_cli("--activation", "relu", "--cw", "2", "--cb", "0", "--widths", "10,10",
                               "--x", "1", "--eta", "0.1", "--y", "0.3", "--json")
    assert status == 0, err
    out = json.loads(stdout)
    assert {"ntk_mean", "dntk_z", "delta_ntk_step"} <= set(out)
    # critical ReLU, x = 1, λ = C: E[z O3] = 128/10 exactly (test_critical_relu_values); the first-order
    # step is −η E[z O3] whatever y; E Θ = H + H1/n with H = 3 K = 6
    assert out["dntk_z"] == pytest.approx(12.8, rel=1e-12)
    assert out["delta_ntk_step"] == pytest.approx(-1.28, rel=1e-12)
    assert out["order_eta"] == 1 and out["y"] == 0.3


@pytest.mark.parametrize("args, msg", [(["--eta", "0"], "eta"), (["--eta", "-0.5"], "eta"),
                                       (["--cw", "-1"], "cw"), (["--x", "0"], "non-zero")])
def test_cli_bad_input_exit_2(ntk_move_cli, args, msg):
    base = {"--activation": "tanh", "--widths": "8", "--x": "1", "--eta": "0.1"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    status, _, err = ntk_move_cli(*[t for kv in base.items() for t in kv])
    assert status == 2 and msg in err and "Traceback" not in err


def test_cli_bad_width_exit_2_no_traceback():
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "perturb", "ntk-move", "--activation", "tanh", "--widths", "8,0",
                        "--x", "1", "--eta", "0.1"], capture_output=True, text=True)
    assert p.returncode == 2 and "widths must be >= 1" in p.stderr and "Traceback" not in p.stderr
