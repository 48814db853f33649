"""User strings are data, never code: the whitelist parser (perturb.safeparse) and every CLI entry
point that turns a string into a SymPy expression.

The payloads below would create a marker file if the string were evaluated as Python (the first
test shows that SymPy's own parse_expr does run one); every other test asserts the marker is
absent after perturb has refused the string with exit status 2.
"""

from __future__ import annotations

import json

import pytest
import sympy as sp

from perturb.cli import main
from perturb.errors import PerturbError
from perturb.safeparse import MATH_FUNCTIONS, parse_expression, parse_number


def _payloads(marker):
    m = str(marker)
    return [
        f'__import__("pathlib").Path({m!r}).touch()',
        f"__import__('pathlib').Path('{m}').touch()",
        "().__class__.__bases__[0].__subclasses__()",
        f'(lambda: __import__("pathlib").Path("{m}").touch())()',
        f'exec("import pathlib; pathlib.Path({m!r}).touch()")',
    ]


def test_sympy_parse_expr_would_run_the_payload(tmp_path):
    """The hole being closed: sympy's parse_expr evaluates the payload (so the tests below are live)."""
    from sympy.parsing.sympy_parser import parse_expr

    marker = tmp_path / "ran"
    try:
        parse_expr(_payloads(marker)[0])
    except Exception:  # noqa: BLE001 - whatever it returns, the side effect already happened
        pass
    assert marker.exists()


@pytest.mark.parametrize("k", range(5))
def test_parser_never_runs_payload(tmp_path, k):
    marker = tmp_path / "ran"
    with pytest.raises(PerturbError, match="not allowed|unknown function"):
        parse_expression(_payloads(marker)[k], symbols={"z": sp.Symbol("z")}, functions=MATH_FUNCTIONS,
                         implicit=True, unknown_symbols=True)
    assert not marker.exists()


@pytest.mark.parametrize("text, msg", [
    ("z.real", "character '.' at position 2"),
    ("z[0]", "character '\\['"),
    ("exp(z, y=1)", "character '='"),
    ("__class__", "may not start with '_'"),
    ("_z", "may not start with '_'"),
    ("foo(z)", "unknown function 'foo'"),
    ("q + z", "unknown name 'q'; allowed names: z"),
    ("exp", "must be called"),
    ("z**(10**10)", "exponent 10000000000 is too large"),
    ("10**10**10", "too large"),
    ("(10**60)**100", "at most 4096 bits"),
    ("1e400", "too large"),
    ("1" * 80, "more than 60 digits"),
    ("z" + "+z" * 1200, "at most 2000"),
    ("Derivative(z, z, 10**6)", "out of range"),
    ("(z, z)", "tuple"),
    ("z < 1", "character '<'"),
    ("σ(z)", "character 'σ'"),
    ("", "empty"),
    ("1/0", "division by zero"),
    ("z +", "position"),
])
def test_parser_rejects(text, msg):
    with pytest.raises(PerturbError, match=msg):
        parse_expression(text, symbols={"z": sp.Symbol("z")}, functions=MATH_FUNCTIONS)


def test_parser_accepts_the_documented_syntax():
    z = sp.Symbol("z")
    p = lambda t: parse_expression(t, symbols={"z": z, "pi": sp.pi}, functions=MATH_FUNCTIONS, implicit=True)  # noqa: E731
    assert p("2z^2 + exp(-z)") == 2 * z**2 + sp.exp(-z)
    assert p("(z+1)(z-1)") == (z + 1) * (z - 1)
    assert p("z tanh(log(1+exp(z)))") == z * sp.tanh(sp.log(1 + sp.exp(z)))
    assert p("max(z, 0) - 1/2*pi") == sp.Max(z, 0) - sp.pi / 2
    assert parse_number("0.1") == sp.Rational(1, 10) and parse_number("-3/4") == sp.Rational(-3, 4)


def _kernel_inputs(tmp_path):
    f = tmp_path / "x.json"
    f.write_text(json.dumps([[1.0, 0.5]]))
    return str(f)


def _entry_points(tmp_path, payload):
    """argv for every command that reads an activation or a claim, with the payload in that slot."""
    inputs = _kernel_inputs(tmp_path)
    net = ["--widths", "3", "--x", "1"]
    return [
        ["kernel", "--activation", payload, "--depth", "1", "--inputs", inputs],
        ["kernel", "--activation", f"leaky_relu:{payload}", "--depth", "1", "--inputs", inputs],
        ["cumulants", "--activation", payload, *net],
        ["ntk-stats", "--activation", payload, *net],
        ["ntk-move", "--activation", payload, *net, "--eta", "0.1"],
        ["mc", "--activation", payload, *net, "--samples", "10"],
        ["criticality", "--activation", payload],
        ["fixed-point", "--activation", payload],
        ["phase-diagram", "--activation", payload, "--out", str(tmp_path / "p.png"), "--n", "2"],
        ["derive", "nngp_recursion", "--activation", payload, "--no-checks"],
        ["verify", "V", "--claim", payload],
        ["verify", "V", "--claim", "V", "--activation", payload],
        ["verify", "Ez2", "--claim", payload, "--activation", "relu"],
        ["verify", "V", "--claim", "\\chi " + payload],
        ["verify", "Ez2", "--claim", "\\frac{K}{1} " + payload, "--activation", "relu"],
    ]


@pytest.mark.parametrize("k", range(5))
def test_cli_never_runs_payload(tmp_path, capsys, k):
    marker = tmp_path / "ran"
    payload = _payloads(marker)[k]
    for argv in _entry_points(tmp_path, payload):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("perturb: error:") and "Traceback" not in err, (argv, err)
        assert not marker.exists(), argv


def test_gaussian_expect_string_is_parsed_safely(tmp_path):
    from perturb.gaussian import expect

    marker = tmp_path / "ran"
    with pytest.raises(PerturbError):
        expect(_payloads(marker)[0], 1.0)
    assert not marker.exists()
    assert float(expect("Max(z, 0)**2", 2.0, method="closed")) == pytest.approx(1.0)  # <relu²>_K = K/2


@pytest.mark.parametrize("claim", ["nan", "zoo", "oo", "I"])
def test_verify_claim_special_names_exit_2(claim, capsys):
    assert main(["verify", "V", "--claim", claim]) == 2
    err = capsys.readouterr().err
    assert f"unknown symbol(s) {claim}" in err


def test_verify_malformed_latex_says_malformed(capsys):
    assert main(["verify", "V", "--claim", "\\frac{1}{"]) == 2
    assert "malformed LaTeX" in capsys.readouterr().err
    assert main(["verify", "V", "--claim", "\\frac{1} V"]) == 2
    assert "\\frac needs two braced arguments" in capsys.readouterr().err


def test_library_numeric_parameters_refuse_strings(tmp_path):
    # widths, C's and K1 of the exact (SymPy) folds were sympify'd: a string there would run as Python
    from perturb.finite import FiniteWidth
    from perturb.ntk.chain import ntk_statistics_exact

    marker = tmp_path / "ran"
    payload = _payloads(marker)[0]
    with pytest.raises(sp.SympifyError):
        ntk_statistics_exact("relu", [payload], [1], C_W=2, C_b=0)
    with pytest.raises(sp.SympifyError):
        FiniteWidth("relu", depth=1, order=1).symbolic(K1=payload, widths=[4])
    assert not marker.exists()
