"""perturb verify for output statistics by order in 1/n: equal / equal up to order k / not equal.

The independent source is perturb.relu_exact.moment_series: the exact finite-width law of a ReLU
network (products of scaled χ² variables), expanded in 1/n by SymPy — not the layer-map engine.
"""

from __future__ import annotations

import pytest
import sympy as sp

from perturb.cli import main
from perturb.errors import PerturbError
from perturb.relu_exact import moment_series
from perturb.verify import ClaimParseError, verify_order_claim

DEPTH, ORDER = 3, 3


def _exact_Ez4(order: int) -> str:
    """E z^4 = K1**2 * moment_series(4, L, order) (ReLU, C_W = 2, C_b = 0, so K^{(L+1)} = K^{(1)})."""
    return f"K1**2*({moment_series(4, DEPTH, order)})"


def test_exact_relu_series_is_equal():
    res = verify_order_claim("Ez4", _exact_Ez4(ORDER), activation="relu", depth=DEPTH, C_W=2, order=ORDER)
    assert res.verdict == "equal" and res.holds and res.method == "exact"
    assert res.agree_to == ORDER and not res.claim_beyond
    assert all(r.agrees and r.difference == 0 for r in res.rows)
    # the engine's own coefficients are the exact ones: 3, 45, 225, 375 (= 3 (1 + 5/n)^3)
    n, K1 = sp.Symbol("n", positive=True), sp.Symbol("K_1", positive=True)
    assert [sp.expand(r.engine * n**r.order / K1**2) for r in res.rows] == [3, 45, 225, 375]


def test_truncated_at_order_1_is_equal_up_to_order_1():
    res = verify_order_claim("Ez4", _exact_Ez4(1), activation="relu", depth=DEPTH, C_W=2, order=ORDER)
    assert res.verdict == "equal up to order 1" and not res.holds and res.agree_to == 1
    assert [r.agrees for r in res.rows] == [True, True, False, False]
    assert any("first difference at order 2" in line for line in res.lines)


def test_wrong_second_order_coefficient_differs_at_order_2():
    claim = _exact_Ez4(ORDER).replace("225/n**2", "226/n**2")
    assert claim != _exact_Ez4(ORDER)
    res = verify_order_claim("Ez4", claim, activation="relu", depth=DEPTH, C_W=2, order=ORDER)
    assert res.verdict == "equal up to order 1" and not res.holds
    bad = [r for r in res.rows if not r.agrees]
    assert [r.order for r in bad] == [2]
    n, K1 = sp.Symbol("n", positive=True), sp.Symbol("K_1", positive=True)
    assert sp.simplify(bad[0].difference - K1**2 / n**2) == 0


def test_kappa4_example_from_the_issue_and_default_order():
    # no --order: the engine goes one order beyond the claim and finds the missing 375/n^3 term
    res = verify_order_claim("kappa4", "3*K**2*(15/n + 75/n**2)", activation="relu", depth=3, C_W=2)
    assert res.engine_order == 3 and res.verdict == "equal up to order 2" and not res.holds
    # asked for order 2 only: equal up to 2 >= 2 exits 0
    res2 = verify_order_claim("kappa4", "3*K**2*(15/n + 75/n**2 + 125/n**3)", activation="relu", depth=3, C_W=2,
                              order=2)
    assert res2.verdict == "equal up to order 2" and res2.claim_beyond and res2.holds


def test_order_1_difference_is_not_equal_and_per_layer_widths():
    assert verify_order_claim("kappa4", "3*K**2*16/n", activation="relu", depth=3, C_W=2).verdict == "not equal"
    # per-layer widths, C_W symbolic: E z^4 = 3 K^2 (1 + 5/n_1)(1 + 5/n_2) exactly, K = C_W^2 K1 / 4
    res = verify_order_claim("Ez4", "3*K**2*(1 + 5/n_1)*(1 + 5/n_2)", activation="relu", depth=2)
    assert res.verdict == "equal" and res.engine_order == 3


def test_non_polynomial_claim_has_unchecked_higher_orders():
    # the exact law is 3 K^2 (1 + 5/n)^3 for ReLU; (1 - 5/n)^{-3} agrees only at orders 0 and 1
    res = verify_order_claim("Ez4", "3*K**2/(1 - 5/n)**3", activation="relu", depth=3, C_W=2, order=3)
    assert res.verdict == "equal up to order 1"
    res = verify_order_claim("Ez4", "3*K**2*exp(15/n)", activation="relu", depth=3, C_W=2, order=1)
    assert res.verdict == "equal up to order 1" and res.claim_beyond and res.holds


def test_numeric_path_for_tanh():
    # no closed form: E z^2 = K at order 0 holds, but tanh has a nonzero 1/n correction G1 (REFERENCE §3)
    res = verify_order_claim("Ez2", "K", activation="tanh", depth=2, C_W=1, order=1)
    assert res.method == "numeric" and res.verdict == "not equal"
    assert [r.agrees for r in res.rows] == [True, False]


@pytest.mark.parametrize("args, msg", [
    (("Ez4", "3*K**2*q"), "unknown symbol"),
    (("Ez4", "3*K**2*(1+5/n"), "position"),
    (("Ez4", "3*K**2/n + 1/n_1"), "mixes"),
    (("Ez4", "3*K**2/n_4"), "unknown symbol"),
])
def test_parse_errors(args, msg):
    with pytest.raises(ClaimParseError, match=msg):
        verify_order_claim(*args, activation="relu", depth=3, C_W=2)


def test_bad_options():
    with pytest.raises(PerturbError, match="concrete activation"):
        verify_order_claim("Ez4", "3*K**2", activation="generic", depth=1)
    with pytest.raises(PerturbError, match="--order"):
        verify_order_claim("Ez4", "3*K**2", activation="relu", depth=1, order=9)
    with pytest.raises(PerturbError, match="kappa4"):
        verify_order_claim("kappa5", "0", activation="relu", depth=1)


def test_cli_exit_codes(capsys):
    base = ["verify", "kappa4", "--activation", "relu", "--cw", "2", "--depth", "3"]
    assert main(base + ["--claim", "3*K**2*(15/n + 75/n**2)"]) == 1
    out = capsys.readouterr().out
    assert "verdict: equal up to order 2" in out and "order 3: engine 375*K_1**2/n**3" in out
    assert main(base + ["--claim", "3*K**2*(15/n + 75/n**2)", "--order", "2"]) == 0
    assert main(base + ["--claim", "3*K**2*(15/n + 75/n**2 + 125/n**3)", "--order", "3"]) == 0
    assert "verdict: equal\n" in capsys.readouterr().out
    assert main(base + ["--claim", "3*K**2*(15/n"]) == 2
    assert main(["verify", "kappa5", "--claim", "0"]) == 2
    assert "kappa4" in capsys.readouterr().err
