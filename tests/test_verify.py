"""perturb verify: correct PDLT forms accepted, wrong ones rejected with the differing term named."""

from __future__ import annotations

import pytest

from perturb.cli import main
from perturb.verify import ClaimParseError, parse_claim, verify_claim

V_PDLT = "C_W**2*(E(s**4) - E(s**2)**2) + r*chi**2*V"
G1_PDLT = "r*(chi*G1 + C_W/(8*K**4)*E(s**2*(z**4 - 6*K*z**2 + 3*K**2))*V)"


@pytest.mark.parametrize("claim", [
    V_PDLT,
    "r*V*chi**2 + C_W**2*E(s**4) - (C_W*E(s**2))**2",                      # rearranged
    "C_W**2*(E(s**4) - E(s**2)**2) + r*V*(C_W*(E(s**2*z**2) - K*E(s**2))/(2*K**2))**2",  # chi written out
    "C_W^2 (\\langle \\sigma^4 \\rangle_K - \\langle \\sigma^2 \\rangle_K^2) + r \\chi^2 V",  # LaTeX
])
def test_V_accepts_pdlt_forms(claim):
    assert verify_claim("V", claim).holds


@pytest.mark.parametrize("claim, where", [
    ("2*C_W**2*(E(s**4) - E(s**2)**2) + r*chi**2*V", "V-free"),     # wrong coefficient
    ("C_W**2*(E(s**4) - E(s**2)**2) + chi**2*V", "coefficient of V"),  # missing r
    ("C_W**2*(E(s**4) - E(s**2)**2) - r*chi**2*V", "coefficient of V"),  # wrong sign
])
def test_V_rejects_wrong_forms_and_names_the_term(claim, where):
    res = verify_claim("V", claim)
    assert not res.holds
    assert any(where in k for k in res.difference)
    assert res.counterexample is not None and abs(res.counterexample["difference"]) > 1e-6


def test_G1_accepts_and_rejects():
    assert verify_claim("G1", G1_PDLT).holds
    assert verify_claim("G1", "r*(chi*G1 + C_W/2*Derivative(E(s**2), K, 2)*V)").holds
    bad = verify_claim("G1", G1_PDLT.replace("C_W/(8", "C_W/(4"))
    assert not bad.holds and any("coefficient of V" in k for k in bad.difference)


def test_concrete_activation():
    assert verify_claim("V", V_PDLT, activation="relu").holds
    assert not verify_claim("V", V_PDLT.replace("r*", "2*r*"), activation="relu").holds


@pytest.mark.parametrize("claim, msg", [("C_W**2*(E(s**4)", "position"), ("foo*V", "unknown symbol"),
                                        ("bar(s)", "unknown function"), ("\\alpha V", "unsupported LaTeX")])
def test_parse_errors(claim, msg):
    with pytest.raises(ClaimParseError, match=msg):
        parse_claim(claim)


def test_cli_exit_codes(capsys):
    assert main(["verify", "V", "--claim", V_PDLT]) == 0
    assert main(["verify", "V", "--claim", V_PDLT.replace("r*", "")]) == 1
    assert main(["verify", "V", "--claim", "C_W**2*(E(s**4)"]) == 2
    assert main(["verify", "W", "--claim", "V"]) == 2
    err = capsys.readouterr().err
    assert "position" in err and "valid: V, G1, K" in err


def test_cli_monte_carlo_verdict(capsys):
    assert main(["verify", "V", "--claim", V_PDLT, "--mc", "--widths", "10,10", "--samples", "100000",
                 "--seed", "1"]) == 0
    assert "Monte Carlo agrees" in capsys.readouterr().out
