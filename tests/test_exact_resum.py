"""Resummation of the 1/n series and the reliability note of `perturb cumulants` (perturb.exact.resum).

The resummations are checked on series with known sums; the note against the exact law
(perturb.exact) on the issue-15 example, where the series is useless, and on a wide network,
where it is accurate.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from perturb.errors import PerturbError
from perturb.exact.resum import resum, series_note


@pytest.mark.parametrize("a", [0.3, 1.0, 2.5])
def test_log_resummation_is_exact_for_a_lognormal(a):
    # E e^{aε} at ε = 1 has terms a^k/k!: its log series stops at order 1, so any K ≥ 1 is exact
    for K in (1, 2, 4):
        terms = [a ** k / math.factorial(k) for k in range(K + 1)]
        assert resum(terms, "log") == pytest.approx(math.exp(a), rel=1e-14)


def test_pade_resummation_is_exact_for_a_pole():
    # 1/(1 − a ε): terms a^k; [1/1] from three terms is exact, even where the series diverges (a > 1)
    for a in (0.5, 3.0):
        assert resum([a ** k for k in range(3)], "pade") == pytest.approx(1 / (1 - a), rel=1e-14)
    assert resum([1.0, 0.5], "pade") == 1.5


def test_bad_resummation_input():
    with pytest.raises(PerturbError, match="unknown resummation"):
        resum([1.0, 0.1], "borel")
    with pytest.raises(PerturbError, match="positive leading term"):
        resum([-1.0, 0.1], "log")
    with pytest.raises(PerturbError, match="finite"):
        resum([1.0, float("nan")])


def test_note_criterion():
    assert series_note([1.0, 0.05, 0.002]) is None
    assert "not decreasing" in series_note([1.0, 0.05, 0.06])
    assert "of the sum" in series_note([1.0, 0.5])
    assert "E z^4" in series_note([1.0, 0.01], [3.0, 1.0])
    # rounding remainders of exact zeros are zeros: ReLU at C_W = 2 has E z² = K at every order, and
    # `perturb cumulants --order 4` evaluated its series (widths 3,3) in float64 as these numbers
    assert series_note([2.0, 0.0, -2.66e-14, -5.68e-14, -3.09e-11]) is None
    assert "not decreasing" in series_note([2.0, 0.0, 1e-3, 2e-3])  # a real tail is still flagged


def _cumulants(*args):
    res = subprocess.run([sys.executable, "-m", "perturb", "cumulants", *args, "--json"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_cumulants_notes_the_issue_example_and_not_a_wide_network():
    # GELU, C_W = 2, eight layers of width 8: exact E z² = 1.30769 (perturb exact, test_exact.py's
    # slow Monte Carlo check), the order-1 series gives 1.94
    out = _cumulants("--activation", "gelu", "--cw", "2", "--widths", ",".join(["8"] * 8), "--x", "1")
    assert out["moments"]["2"] == pytest.approx(1.9356, abs=1e-3)
    assert "unreliable" in out["note"]
    out = _cumulants("--activation", "tanh", "--cw", "1", "--widths", "100,100", "--x", "1")
    assert "note" not in out
