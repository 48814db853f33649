"""NTK statistics at order 1/n: the derived recursions against REFERENCE §3, exact values, fidelities.

The recursions of REFERENCE §3 (B', F', D', A' for the generic σ) are typed in this file only;
the library derives its own (perturb.ntk.derive) and the two are compared as symbolic
expressions in the Gaussian-expectation atoms.
"""

from __future__ import annotations

import json
import subprocess
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp

from perturb.activations import SIGMA, Z
from perturb.errors import NotImplementedOrderError, PerturbError
from perturb.finite.layer import LayerMap, moment_symbol
from perturb.gaussian import E
from perturb.gaussian.atom import atom_canonical
from perturb.ntk.chain import ntk_statistics, ntk_statistics_exact, relu_ntk_exponential
from perturb.ntk.derive import derive_ntk_layer_map


def same(a, b) -> bool:
    return atom_canonical(a - b) == 0


@pytest.fixture(scope="module")
def rec():
    return derive_ntk_layer_map()


@pytest.fixture(scope="module")
def reference(rec):
    """REFERENCE §3 'NTK at order 1/n' (PDLT ch. 8; GMG), typed here only."""
    y = rec.syms
    K, H, C_W, lam_W, r = y.K, y.H, y.C_W, y.lam_W, y.r
    A, B, D, F, V = (y.stats[k] for k in ("A", "B", "D", "F", "V"))
    s = SIGMA(Z)
    ds = sp.diff(s, Z)
    Om = lam_W * s**2 + C_W * H * ds**2          # Ω = λ_W σ² + C_W H σ'²
    q = Z**2 - K
    return {
        "B": C_W**2 * (E(ds**4, K) * H**2 + r * E(ds**2, K) ** 2 * B),
        "F": C_W**2 * H * E(s**2 * ds**2, K) + C_W**2 * r * (E(s * ds * Z, K) / K) ** 2 * F,
        "D": (C_W * (E(s**2 * Om, K) - E(s**2, K) * E(Om, K))
              + C_W * r / 4 * V / K**4 * E(q * s**2, K) * E(q * Om, K)
              + C_W**2 * r / 2 * D * E(q * s**2, K) / K**2 * E(ds**2, K)),
        "A": (E(Om**2, K) - E(Om, K) ** 2 + r / 4 * V * (E(Om * q, K) / K**2) ** 2
              + r * C_W**2 * E(ds**2, K) ** 2 * A + r * C_W * E(Om * q, K) / K**2 * E(ds**2, K) * D),
        "H": y.lam_b + lam_W * E(s**2, K) + C_W * H * E(ds**2, K),      # REFERENCE §1
        "K": y.C_b + C_W * E(s**2, K),
    }


@pytest.mark.parametrize("name", ["B", "F", "D", "A", "H", "K"])
def test_derived_recursion_equals_reference(rec, reference, name):
    assert same(rec[name], reference[name]), f"{name}: derived − REFERENCE = {atom_canonical(rec[name] - reference[name])}"


def test_comparison_can_fail(rec, reference):
    """A REFERENCE form with a wrong factor (2B → B-type slip in A's D-term) is rejected."""
    y = rec.syms
    wrong = reference["A"] + y.r * y.stats["D"] * E(sp.diff(SIGMA(Z), Z) ** 2, y.K)
    assert not same(rec["A"], wrong)


def test_sigma_statistics_equal_the_finite_engine(rec):
    """G1 and V of the NTK chain equal the finite-width engine's independently derived map."""
    lm = LayerMap(n_inputs=1, order=1)
    y = rec.syms
    n, n_prev = lm.syms.n, sp.Symbol("n_prev", positive=True)
    incoming = {moment_symbol((1,), 1): y.stats["G1"] / n_prev, moment_symbol((2,), 1): y.stats["V"] / n_prev}
    to_ntk = {lm.K[(0, 0)]: y.K, lm.syms.C_W: y.C_W}
    V_engine = (n * lm.moment((2,))[1].xreplace(incoming)).xreplace(to_ntk).subs(n, y.r * n_prev)
    G1_engine = (n * lm.moment((1,))[1].xreplace(incoming)).xreplace(to_ntk).subs(n, y.r * n_prev)
    assert same(rec["V"], V_engine)
    assert same(rec["G1"], G1_engine)


def test_relu_critical_ratios_exact():
    """(A + 2B)/H² = 3, 58/9, 10, 68/5 at ℓ = 2..5 (REFERENCE §3; critical ReLU, λ_b = 0)."""
    st = ntk_statistics_exact("relu", [7, 7, 7, 7], [1], C_W=2, C_b=0, lambda_W=1, lambda_b=0)
    got = [st.ratio(ell) for ell in (2, 3, 4, 5)]
    assert got == [3, sp.Rational(58, 9), 10, sp.Rational(68, 5)]
    # H = ℓ Θ^{(1)}, V = 5(ℓ−1) K², H1 = 0 (the weight part of E Θ is width-independent for ReLU)
    K1 = st.layers["K"][0]
    assert st.layers["H"] == [ell * st.layers["H"][0] for ell in range(1, 6)]
    assert st.layers["V"] == [5 * (ell - 1) * K1**2 for ell in range(1, 6)]
    assert st.layers["H1"] == [0] * 5


def test_relu_ratio_symbolic_widths_is_width_independent():
    """With symbolic equal widths the critical ratios are pure numbers (r = 1)."""
    n = sp.Symbol("n", positive=True)
    st = ntk_statistics_exact("relu", [n, n], [1], C_W=2, C_b=0, lambda_W=1, lambda_b=0)
    assert st.ratio(3) == sp.Rational(58, 9)
    assert sp.simplify(st.var - sp.Rational(58, 9) * st.H**2 / n) == 0


def test_relu_mean_matches_exact_ntk_mean():
    """ReLU E Θ at order 1/n equals relu_exact.ntk_mean (exact at any width, zero biases)."""
    from perturb.relu_exact import ntk_mean

    st = ntk_statistics_exact("relu", [5, 9, 4], [1, 2], C_W=[2, sp.Rational(3, 2), 2, 1], C_b=0,
                              lambda_W=[1, 2, 1, 3], lambda_b=0)
    exact = ntk_mean([5, 9, 4], [1, 2], C_W=[2, sp.Rational(3, 2), 2, 1], lambda_W=[1, 2, 1, 3], lambda_b=0)
    assert st.mean == sp.Rational(exact.numerator, exact.denominator)


def test_exact_fold_equals_mpmath_fold_at_40_digits():
    """Non-critical ReLU with biases: SymPy exact fold vs mpmath fold (closed forms) at 40 digits."""
    kw = dict(C_W=sp.Rational(17, 10), C_b=sp.Rational(3, 10), lambda_W=1, lambda_b=sp.Rational(1, 2))
    ex = ntk_statistics_exact("relu", [8, 12, 10], [1, sp.Rational(-1, 2)], **kw)
    with mpmath.workdps(50):          # the parameters themselves to 50 digits
        cw, cb = mpmath.mpf(17) / 10, mpmath.mpf(3) / 10
    mp = ntk_statistics("relu", [8, 12, 10], [1, -0.5], C_W=cw, C_b=cb, lambda_W=1, lambda_b=0.5, dps=40)
    with mpmath.workdps(45):
        for a, b in ((ex.mean, mp.mean), (ex.var, mp.var)):
            assert abs(mpmath.mpf(sp.N(a, 50)) - b) < mpmath.mpf(10) ** -38 * abs(b)


def _numpy_vs_mpmath(act, cw, widths, dps):
    """numpy (closed forms / quadrature) vs mpmath.

    Tolerance 1e-12 relative: the shared quadrature layer (composite Gauss–Legendre panels) is
    accurate to ~1e-15 per atom, also for sech⁸ (tanh's poles at ±iπ/2).
    """
    if True:
        a = ntk_statistics(act, widths, [1.0, 0.3], C_W=cw, C_b=0.1)
        b = ntk_statistics(act, widths, [1.0, 0.3], C_W=cw, C_b=0.1, dps=dps)
        for name in ("K", "H", "G1", "V", "H1", "A", "B", "D", "F"):
            x, y = float(a.last(name)), float(b.last(name))
            assert abs(x - y) <= 1e-12 * abs(y) + 1e-15, (act, name, x, y)


def test_numpy_fold_equals_mpmath_fold_tanh():
    _numpy_vs_mpmath("tanh", 1.0, [30, 50], dps=20)


@pytest.mark.slow
@pytest.mark.parametrize("act, cw", [("tanh", 1.0), ("gelu", 1.5), ("erf", np.pi / 4)])
def test_numpy_fold_equals_mpmath_fold_slow(act, cw):
    _numpy_vs_mpmath(act, cw, [30, 40, 50], dps=30)


def test_vectorised_over_parameters():
    cws = np.array([0.8, 1.0, 1.3])
    st = ntk_statistics("tanh", [32, 32], [1.0], C_W=cws)
    assert np.shape(st.var) == (3,)
    for i, c in enumerate(cws):
        one = ntk_statistics("tanh", [32, 32], [1.0], C_W=float(c))
        assert st.var[i] == pytest.approx(float(one.var), rel=1e-12)


def test_exponential_pictures_order():
    p = relu_ntk_exponential([16, 16, 16])
    assert p.order1 == pytest.approx(10 / 16, rel=1e-12)     # (A+2B)/H² = 10 at ℓ = 4
    assert p.exponentiated == pytest.approx(np.expm1(10 / 16), rel=1e-12)


@pytest.mark.parametrize("kwargs, msg", [
    (dict(widths=[16, 0]), "widths"),
    (dict(widths=[]), "widths"),
    (dict(C_W=-1.0), "C_W"),
    (dict(C_W=0.0), "C_W"),
    (dict(C_b=-0.1), "C_b"),
    (dict(x=[0.0], C_b=0.0), "non-zero"),
    (dict(C_W=[1.0, 1.0]), "one per layer"),
])
def test_bad_input(kwargs, msg):
    args = dict(widths=[16, 16], x=[1.0], C_W=1.0, C_b=0.0)
    args.update(kwargs)
    with pytest.raises(PerturbError, match=msg):
        ntk_statistics("tanh", args.pop("widths"), args.pop("x"), **args)


def test_order_other_than_one_refused():
    with pytest.raises(NotImplementedOrderError, match="order 1"):
        ntk_statistics("tanh", [16], [1.0], order=2)
    with pytest.raises(PerturbError, match="concrete activation"):
        ntk_statistics("generic", [16], [1.0])


def _cli_inprocess(capsys, *args):
    from perturb.cli import main

    status = main(["ntk-stats", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_cli_json_contract(capsys):
    status, stdout, err = _cli_inprocess(capsys, "--activation", "relu", "--cw", "2", "--cb", "0",
                                         "--widths", "64,64,64", "--x", "1,0.5,-0.3", "--json")
    assert status == 0, err
    out = json.loads(stdout)
    assert set(out) == {"mean", "var"}
    # critical ReLU, λ = C: H = 4 Θ^{(1)} with Θ^{(1)} = 2|x|²/3; Var = 10 H²/64 (ratio 10 at ℓ = 4)
    H = 4 * 2 * (1 + 0.25 + 0.09) / 3
    assert out["mean"] == pytest.approx(H, rel=1e-12)
    assert out["var"] == pytest.approx(10 * H**2 / 64, rel=1e-12)


@pytest.mark.parametrize("args, msg", [(["--order", "3"], "not implemented"), (["--cw", "-1"], "cw"),
                                       (["--x", "0"], "non-zero")])
def test_cli_bad_input_exit_2(capsys, args, msg):
    base = {"--activation": "tanh", "--widths": "8", "--x": "1", "--cb": "0"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    status, _, err = _cli_inprocess(capsys, *[t for kv in base.items() for t in kv])
    assert status == 2 and msg in err


def test_cli_subprocess_bad_width_exit_2_no_traceback():
    p = subprocess.run([sys.executable, "-m", "perturb", "ntk-stats", "--activation", "tanh", "--widths", "8,0",
                        "--x", "1", "--json"], capture_output=True, text=True)
    assert p.returncode == 2 and "widths must be >= 1" in p.stderr and "Traceback" not in p.stderr
