"""Bad input is a one-line error with exit status 2 (issue 16): output paths checked before the work
and written atomically, undefined NTKs, bounded work, strict JSON, no silent misparses."""

from __future__ import annotations

import json
import time

import pytest

from perturb._io import atomic_write, atomic_write_text, check_writable_dir, check_writable_file
from perturb.cli import main
from perturb.errors import PerturbError


def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("perturb")]
    assert lines and "Traceback" not in err, err
    return lines[-1]


# ------------------------------------------------------------------ output files


@pytest.fixture
def afile(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    return f


@pytest.mark.parametrize("argv, what", [
    (["derive", "nngp_recursion", "--out", "{missing}/d.tex"], "does not exist"),
    (["derive", "nngp_recursion", "--out", "{afile}/d.tex"], "is not a folder"),
    (["derive", "nngp_recursion", "--out", "{tmp}"], "is a folder"),
    (["phase-diagram", "--out", "{missing}/p.png", "--n", "2"], "does not exist"),
    (["phase-diagram", "--out", "{tmp}/p.png", "--json", "{missing}/p.json", "--n", "2"], "does not exist"),
    (["tour", "--out", "{afile}", "--quick"], "it is a file, not a folder"),
    (["tour", "--out", "{afile}/sub", "--quick"], "is a file, not a folder"),
    (["cumulants", "--activation", "tanh", "--widths", "3", "--x", "1", "--graph", "{missing}/g.json"],
     "does not exist"),
    (["cumulants", "--activation", "tanh", "--widths", "3", "--x", "1", "--graph", "{tmp}/g.txt"], ".json or .dot"),
])
def test_output_path_refused_before_the_work(argv, what, tmp_path, afile, capsys):
    argv = [a.format(missing=tmp_path / "missing", afile=afile, tmp=tmp_path) for a in argv]
    t0 = time.perf_counter()
    code, out, err = run(argv, capsys)
    assert code == 2 and what in _one_line_error(err)
    assert time.perf_counter() - t0 < 20  # refused before computing (the computations take minutes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing written


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    def failing(tmp):
        with open(tmp, "w") as fh:
            fh.write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_check_helpers(tmp_path):
    assert check_writable_file(tmp_path / "a.txt") == tmp_path / "a.txt"
    assert check_writable_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    with pytest.raises(PerturbError, match="needs a file name"):
        check_writable_file("")


def test_derive_out_written(tmp_path, capsys):
    out = tmp_path / "d.md"
    code, _, _ = run(["derive", "nngp_recursion", "--markdown", "--no-checks", "--out", str(out)], capsys)
    assert code == 0 and out.read_text().startswith("#")


# ------------------------------------------------------------------ tracebacks that were exit 1


@pytest.mark.parametrize("cmd", [["ntk-stats", "--widths", "3", "--x", "1"],
                                 ["ntk-move", "--widths", "3", "--x", "1", "--eta", "0.1"]])
def test_step_ntk_is_undefined(cmd, capsys):
    code, _, err = run([*cmd, "--activation", "step"], capsys)
    assert code == 2 and "Dirac delta" in _one_line_error(err)


def test_catapult_negative_seed(capsys):
    code, _, err = run(["catapult", "--eta-lambda", "1", "--width", "3", "--seed", "-1"], capsys)
    assert code == 2 and "non-negative integer" in err and "Traceback" not in err


def test_phase_diagram_grid_bounded(tmp_path, capsys):
    code, _, err = run(["phase-diagram", "--out", str(tmp_path / "p.png"), "--n", "100000"], capsys)
    assert code == 2 and "between 2 and 200" in _one_line_error(err)


# ------------------------------------------------------------------ strict JSON


def _strict(text: str):
    def refuse(c):
        raise ValueError(f"non-standard JSON constant {c}")

    return json.loads(text, parse_constant=refuse)


def test_emit_json_refuses_non_finite(capsys):
    from perturb.commands._common import emit_json

    with pytest.raises(PerturbError, match="not finite"):
        emit_json({"a": 1.0, "b": [2.0, float("inf")]})
    assert capsys.readouterr().out == ""  # nothing half-printed


def test_relu_exact_beyond_float64_is_null_with_note(capsys):
    # one ReLU layer of width n: E z^4 = 3 K² (1 + 5/n) with K = C_W x² = 2e400 (the relu_exact
    # docstring's formula), = 32·10^800 at n = 3: beyond float64
    code, out, _ = run(["relu-exact", "--widths", "3", "--x", "1e200", "--moment", "4", "--json"], capsys)
    d = _strict(out)
    assert code == 0 and d["moment"] is None and d["cumulant"] is None and "moment" in d["note"]
    assert int(d["moment_exact"]) == 32 * 10**800  # the exact value is still there
    code, out, _ = run(["relu-exact", "--widths", "3", "--x", "1e200", "--moment", "4", "--dps", "20", "--json"],
                       capsys)
    assert code == 0 and _strict(out)["moment"] == "3.2e+801"


def test_relu_exact_moment_bounded(capsys):
    code, _, err = run(["relu-exact", "--widths", "3", "--x", "1", "--moment", "1000", "--json"], capsys)
    assert code == 2 and "at most 200" in _one_line_error(err)


def test_latex_json_is_json(tmp_path, capsys):
    f = tmp_path / "x.json"
    f.write_text("[[1, 0], [0.5, 0.5]]")
    code, out, _ = run(["kernel", "--activation", "relu", "--depth", "1", "--inputs", str(f), "--latex", "--json"],
                       capsys)
    d = _strict(out)
    assert code == 0 and "\\" in d["latex"] and len(d["nngp"]) == 2
    code, out, _ = run(["cumulants", "--activation", "relu", "--widths", "3", "--x", "1", "--latex", "--json"],
                       capsys)
    d = _strict(out)
    assert code == 0 and "\\" in d["latex"] and "4" in d["cumulants"]


# ------------------------------------------------------------------ bounded work, silent misparses


@pytest.mark.parametrize("argv", [
    ["kernel", "--activation", "relu", "--depth", "1", "--inputs", "x.json", "--dps", "100000"],
    ["criticality", "--activation", "tanh", "--dps", "1001"],
    ["relu-exact", "--widths", "3", "--x", "1", "--moment", "2", "--dps", "5000"],
])
def test_dps_bounded(argv, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2 and "at most 1000" in err and "Traceback" not in err


@pytest.mark.parametrize("flag, value", [("--widths", "10,,10"), ("--widths", "10,"), ("--x", "1,,2"),
                                         ("--x", ",1")])
def test_empty_list_entries_refused(flag, value, capsys):
    argv = ["mc", "--activation", "tanh", "--widths", "10", "--x", "1", "--samples", "10"]
    argv[argv.index(flag) + 1] = value
    code, _, err = run(argv, capsys)
    assert code == 2 and "empty entry" in err


def test_relu_exact_empty_entry(capsys):
    code, _, err = run(["relu-exact", "--widths", "3", "--x", "1,,2", "--moment", "2"], capsys)
    assert code == 2 and "empty entry" in err


def test_derive_list_filters(capsys):
    code, out, _ = run(["derive", "--list", "ntk"], capsys)
    assert code == 0 and out.splitlines() and all("ntk" in ln.split()[0] for ln in out.splitlines())
    code, out, _ = run(["derive", "--list", "ntk", "--json"], capsys)
    assert code == 0 and {d["name"] for d in _strict(out)} >= {"ntk_recursion", "dntk"}
    code, _, err = run(["derive", "--list", "zzz"], capsys)
    assert code == 2 and "no derivation name contains 'zzz'" in err


def test_verify_json(capsys):
    code, out, _ = run(["verify", "V", "--claim", "C_W**2*(E(s**4) - E(s**2)**2) + r*chi**2*V", "--json"], capsys)
    d = _strict(out)
    assert code == 0 and d["holds"] is True and d["verdict"] == "equal" and d["quantity"] == "V"
    code, out, _ = run(["verify", "Ez2", "--claim", "K", "--activation", "relu", "--depth", "2", "--json"], capsys)
    d = _strict(out)
    # E z^2 of a ReLU network is exactly K at any width (no 1/n terms): the claim holds at every order
    assert code == 0 and d["verdict"] == "equal" and all(r["agrees"] for r in d["rows"])
    code, _, err = run(["verify", "Ez2", "--claim", "K", "--activation", "relu", "--depth", "1000"], capsys)
    assert code == 2 and "at most 20" in err


def test_tour_json(tmp_path, capsys):
    code, out, err = run(["tour", "--quick", "--only", "s10", "--out", str(tmp_path / "t"), "--json"], capsys)
    d = _strict(out)
    assert code == 0 and d["out"] == str((tmp_path / "t").resolve()) and "kernels.json" in d["files"]
    assert all((tmp_path / "t" / f).exists() for f in d["files"])


def test_every_command_has_a_description(capsys):
    from perturb.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        assert p.description and len(p.description) > 40, name
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert p.description.split()[0] in capsys.readouterr().out


# ------------------------------------------------------------------ noise: no raw RuntimeWarnings


@pytest.mark.parametrize("argv, msg", [
    (["fixed-point", "--activation", "tanh", "--cw", "nan"], "finite number"),
    (["fixed-point", "--activation", "tanh", "--cw", "1e308"], "at most 1e+08"),
    (["mc", "--activation", "relu", "--widths", "3", "--x", "1e308", "--samples", "10"], "at most 1e+08"),
    (["ntk-stats", "--activation", "relu", "--widths", "3", "--x", "1e200"], "at most 1e+08"),
    (["ntk-move", "--activation", "tanh", "--widths", "3", "--x", "1", "--eta", "inf"], "finite number"),
])
def test_hostile_numbers_refused_quietly(argv, msg, capsys):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = run(argv, capsys)
    assert code == 2 and msg in err and "Traceback" not in err
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_inputs_file_non_finite(tmp_path, capsys):
    f = tmp_path / "x.json"
    for text in ("[[NaN, 1]]", "[[1e308, 1]]", "[[Infinity, 0]]"):
        f.write_text(text)
        code, _, err = run(["kernel", "--activation", "relu", "--depth", "2", "--inputs", str(f)], capsys)
        assert code == 2 and "finite numbers" in _one_line_error(err)


def test_phase_diagram_json_to_stdout(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code, out, err = run(["phase-diagram", "--activation", "erf", "--n", "2", "--out", str(tmp_path / "p.png"),
                          "--json", "-"], capsys)
    d = _strict(out)
    assert code == 0 and d["activation"] == "erf" and "wrote" in err and (tmp_path / "p.png").exists()
