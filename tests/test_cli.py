"""CLI-wide checks: every command has --help, and bad input exits 2 with one line and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from perturb.cli import build_parser, main


def _commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(sub.choices)


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("cmd", _commands())
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "usage" in capsys.readouterr().out


@pytest.mark.parametrize("cmd", _commands())
def test_bad_option_exits_2(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--no-such-option"])
    assert e.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_python_dash_m_entry():
    r = subprocess.run([sys.executable, "-m", "perturb", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "kernel" in r.stdout


@pytest.fixture
def inputs(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps([[1.0, 0.2], [0.5, -1.0]]))
    return str(p)


def test_kernel_json_contract(inputs, capsys):
    code, out, _ = run(["kernel", "--activation", "relu", "--cw", "2", "--cb", "0", "--depth", "3",
                        "--inputs", inputs, "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"nngp", "ntk"}
    # critical ReLU: diagonal K = C_W |x|²/n0, NTK = (L+1) K
    assert data["nngp"][0][0] == pytest.approx(2 * 1.04 / 2)
    assert data["ntk"][0][0] == pytest.approx(4 * 1.04)


def test_kernel_dps_strings(inputs, capsys):
    code, out, _ = run(["kernel", "--activation", "erf", "--depth", "1", "--inputs", inputs, "--json",
                        "--dps", "25"], capsys)
    data = json.loads(out)
    assert code == 0 and isinstance(data["nngp"][0][1], str)
    assert len(data["nngp"][0][0].replace(".", "").lstrip("0")) >= 24


def test_kernel_latex(inputs, capsys):
    code, out, _ = run(["kernel", "--activation", "relu", "--depth", "1", "--inputs", inputs, "--latex"], capsys)
    assert code == 0 and "\\begin{align}" in out and "acos" in out


@pytest.mark.parametrize("extra, msg", [
    (["--activation", "foo"], "valid names"),
    (["--activation", "z+("], "cannot parse"),
    (["--activation", "exp(z**2)", "--cw", "1"], "diverges"),
    (["--activation", "relu", "--cw", "-1"], "C_W"),
    (["--activation", "relu", "--cb", "-1"], "C_b"),
])
def test_kernel_bad_input(inputs, capsys, extra, msg):
    code, _, err = run(["kernel", *extra, "--depth", "2", "--inputs", inputs], capsys)
    assert code == 2 and msg in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("content, msg", [
    ("[[1, 2], [1]]", "different dimensions"),
    ("[[1, NaN]]", "NaN"),
    ("not json", "not valid JSON"),
    ("[]", "non-empty list"),
])
def test_kernel_bad_inputs_file(tmp_path, capsys, content, msg):
    p = tmp_path / "bad.json"
    p.write_text(content)
    code, _, err = run(["kernel", "--activation", "relu", "--depth", "1", "--inputs", str(p)], capsys)
    assert code == 2 and msg in err


def test_kernel_depth_zero_is_usage_error(inputs, capsys):
    with pytest.raises(SystemExit) as e:
        main(["kernel", "--activation", "relu", "--depth", "0", "--inputs", inputs])
    assert e.value.code == 2
