"""A fuzzed command line: random argv for every subcommand, built from the parser's own flags.

For each subcommand of ``perturb.cli.build_parser()`` the flags are read from the parser
(positionals, options, their ``type``/``choices``, store-true flags) and hypothesis draws an argv:
every required argument and a random subset of the optional ones, each with a value drawn from a
pool of valid and hostile values (empty, NaN, ±inf, huge, negative, non-ASCII, code, odd paths).
Each case runs in-process (``perturb.cli.main`` with captured stdout/stderr, in a scratch folder)
and must

* exit with 0 or 2 (``verify`` may also exit 1: its documented "not equal" verdict);
* never print "Traceback" on stderr, nor leak a numpy RuntimeWarning;
* with ``--json`` (and exit 0), print strict JSON on stdout (no NaN/Infinity);
* finish within ``CASE_SECONDS`` (SIGALRM).

Bounded inputs (so that each case stays cheap; every bound is a *valid* large value a user may
legitimately ask for, which would only be slow): flags that set the amount of work (``--samples``,
``--widths``, ``--n``, ``--steps``, ``--width``, ``--depth``, ``--dps``, ``--order``, ``--moment``,
``--block``, ``--cb-values``) draw from small valid values plus invalid ones (``0``, ``-1``,
``nan``, beyond-limit values that must be refused at once); ``--workers`` is 1 and the Dask flags
(``--scheduler``, ``--dask-local``) are not drawn (they start processes/clusters); ``tour`` always
runs ``--quick --only S`` with S one cheap section or no match; ``derive`` draws its derivation name from the cheap ones and unknown names.

A modest number of examples runs in the default suite (derandomised; the commands in
``SLOW_ONLY`` only under ``slow``); more, random ones, under ``slow``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import tempfile
import warnings
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from perturb.cli import build_parser, main  # noqa: E402

CASE_SECONDS = 90  # generous: the CI machine is shared; a healthy case takes a few seconds

_SCRATCH = Path(tempfile.mkdtemp(prefix="perturb-fuzz-"))


def _files() -> dict[str, str]:
    """Input files the fuzzer may point flags at (valid and broken)."""
    d = _SCRATCH / "inputs"
    d.mkdir(exist_ok=True)
    files = {
        "inputs_ok.json": "[[1, 0.5], [0.2, -1]]",
        "inputs_one.json": "[[1, 0.5]]",
        "inputs_bad.json": "[[1, 0.5], [1]]",
        "inputs_text.json": "not json",
        "inputs_nan.json": "[[NaN, 1]]",
        "inputs_huge.json": "[[1e308, 1e308]]",
        "inputs_zero.json": "[[0, 0]]",
        "inputs_empty.json": "[]",
        "ïnputs ñ.json": "[[1, 2]]",
        "arch.json": '{"layers": "nope"}',
    }
    for name, text in files.items():
        (d / name).write_text(text, encoding="utf-8")
    (d / "afile").write_text("x")
    return {name: str(d / name) for name in files} | {"afile": str(d / "afile")}


FILES = _files()

GENERIC = ["", " ", "nan", "NaN", "inf", "-inf", "1e308", "-1e308", "1e999", "-1", "0", "-0", "1", "0.5", "2",
           "3", "1,2", "1,,2", ",", "ñ", "∞", "a b", "0x10", "1/3", "99999999999999999999999", "1e-320",
           "--", "-", "__import__('os')"]
PATHS = ["-", "out.json", "out.png", "out.tex", "out.dot", "sub/missing/out.json", "/nonexistent-dir/x.json",
         f"{FILES['afile']}/x.json", FILES["afile"], ".", "", "ñ dir/x.json", str(_SCRATCH)]
ACTIVATIONS = ["relu", "tanh", "erf", "gelu", "step", "generic", "linear", "leaky_relu:0.2", "leaky_relu:nan",
               "leaky_relu:1e999", "z**2", "exp(z**2)", "log(z)", "z+(", "sigma(z)", "1e999*z", "z**(10**10)",
               "", "nan", "ñ", "relu:2", "__import__('os').getcwd()", "().__class__"]
CLAIMS = ["V", "K", "C_W**2*(E(s**4) - E(s**2)**2) + r*chi**2*V", "3*K**2*(1 + 5/n)", "nan", "zoo", "oo", "",
          "\\frac{1}{", "\\frac{K}{n}", "\\alpha", "E(s**2", "z", "1e999", "K**(10**10)", "s", "__import__('os')",
          "K^2", "2K"]

#: flags that set the amount of work: (small valid values, invalid or beyond-limit ones) — module docstring
BOUNDED = {
    "--samples": (["7", "200"], ["0", "-5", "nan", "1e3", ""]),
    "--widths": (["3", "2,3", "1", "3,3,3"], ["0", "-1", "10,,10", "", "a", "3,", "1e3", "99999999999999999999"]),
    "--n": (["2", "3"], ["0", "1", "-1", "100000", "nan"]),
    "--steps": (["1", "5"], ["0", "-1", "nan", "2.5", "99999999999"]),
    "--width": (["1", "5"], ["0", "-3", "20000000"]),
    "--depth": (["1", "2"], ["0", "-1", "1000", "nan"]),
    "--dps": (["5", "15"], ["0", "-1", "1001", "100000", "nan"]),
    "--order": (["0", "1", "2"], ["7", "-1", "nan", "99"]),
    "--moment": (["2", "4"], ["1", "0", "-2", "1000", "nan"]),
    "--block": (["1", "2"], ["0", "-1"]),
    "--cb-values": (["0,0.1", "0"], ["nan", "", "-1", "1,,2"]),
    "--workers": (["1"], ["0"]),
    "--density": (["0.5", "0.5,1"], ["0", "nan", "1e999", ""]),
}
NOT_DRAWN = {"--scheduler", "--dask-local", "--help", "--version"}
FORCED = {"tour": ["--quick"]}
#: optional flags always drawn (tour: --only picks one cheap section or none, the whole tour takes minutes;
#: phase-diagram: --n, its default 60 × 60 grid takes minutes)
ALWAYS = {"tour": {"--only"}, "phase-diagram": {"--n"}}
#: valid values by flag (an argv is built from these, then 0-2 of its values are replaced by hostile ones)
VALID = {
    "--activation": ["relu", "tanh", "erf", "gelu", "linear", "leaky_relu:0.2", "z*tanh(z)"],
    "--claim": ["V", "K", "C_W**2*(E(s**4) - E(s**2)**2) + r*chi**2*V", "3*K**2*(1 + 5/n)", "\\frac{K}{n}", "2K"],
    "--x": ["1", "1,0.5", "0.3,-1"], "--y": ["0", "0.5"], "--cw": ["1", "2", "1.5"], "--cb": ["0", "0.1"],
    "--eta": ["0.1", "0.5"], "--eta-lambda": ["0.5", "3", "5"], "--xi": ["0.5"], "--gamma": ["1"],
    "--lw": ["1"], "--lb": ["0"], "--only": ["s10", "zzz"], "--cw-min": ["0.5"], "--cw-max": ["3"],
    "--cb-max": ["1"], "--weight-law": ["gaussian", "rademacher"],
}
VALID_POSITIONAL = {("derive", "name"): ["nngp_recursion", "ntk_recursion", "catapult"],
                    ("verify", "quantity"): ["V", "G1", "K", "Ez2", "kappa4"]}
POSITIONALS = {
    ("derive", "name"): ["zzz", "", "__init__"],
    ("verify", "quantity"): ["W", "", "v"],
}
VALUES_BY_FLAG = {"--activation": ACTIVATIONS, "--claim": CLAIMS, "--only": ["s10", "zzz", ""],
                  "--inputs": [FILES["inputs_ok.json"], FILES["inputs_one.json"], FILES["inputs_bad.json"],
                               FILES["inputs_text.json"], FILES["inputs_nan.json"], FILES["inputs_huge.json"],
                               FILES["inputs_zero.json"], FILES["inputs_empty.json"], FILES["ïnputs ñ.json"],
                               "/nonexistent.json", FILES["afile"], str(_SCRATCH)],
                  "--arch": [FILES["arch.json"], "/nonexistent.json", ""]}
PATH_FLAGS = {"--out", "--graph"}


def _subparsers():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


COMMANDS = sorted(_subparsers())


def _values(cmd: str, action) -> list[str]:
    """Hostile (and some valid) values for a flag or positional."""
    flag = action.option_strings[0] if action.option_strings else None
    if flag is None:
        return POSITIONALS.get((cmd, action.dest), GENERIC)
    if action.choices:
        return [*map(str, action.choices), "", "nope"]
    if flag in BOUNDED:
        return BOUNDED[flag][1]
    if flag in VALUES_BY_FLAG:
        return VALUES_BY_FLAG[flag]
    if flag in PATH_FLAGS or (flag == "--json" and action.nargs is None):  # phase-diagram --json FILE
        return PATHS
    return GENERIC


def _valid(cmd: str, action) -> list[str]:
    """Values a user would plausibly pass (so that a case gets past argument parsing)."""
    flag = action.option_strings[0] if action.option_strings else None
    if flag is None:
        return VALID_POSITIONAL.get((cmd, action.dest), ["1"])
    if action.choices:
        return [str(c) for c in action.choices]
    if flag in BOUNDED:
        return BOUNDED[flag][0]
    if flag == "--inputs":
        return [FILES["inputs_ok.json"], FILES["inputs_one.json"]]
    if flag in PATH_FLAGS or (flag == "--json" and action.nargs is None):
        suffix = {"--graph": ".json"}.get(flag, ".png" if cmd == "phase-diagram" and flag == "--out" else ".json")
        return [f"out{suffix}"] if cmd != "tour" else ["tour-out"]
    return VALID.get(flag, ["1", "0.5"])


def _is_flag(action) -> bool:
    return action.nargs == 0  # store_true / store_const / count


@st.composite
def argv_for(draw, cmd: str):
    """Required arguments and about a third of the optional ones, with valid values; then 0-2 of the
    values replaced by hostile ones."""
    p = _subparsers()[cmd]
    chosen = []  # (action, value or None for a flag)
    for a in p._actions:
        if set(a.option_strings) & (NOT_DRAWN | set(FORCED.get(cmd, []))):
            continue
        if not a.option_strings:  # positional
            if a.required or a.nargs != "?" or draw(st.booleans()):
                chosen.append((a, draw(st.sampled_from(_valid(cmd, a)))))
            continue
        always = a.required or a.option_strings[0] in ALWAYS.get(cmd, ())
        if not (always or draw(st.integers(0, 2)) == 0):
            continue
        chosen.append((a, None if _is_flag(a) else draw(st.sampled_from(_valid(cmd, a)))))
    valued = [i for i, (a, v) in enumerate(chosen) if v is not None]
    if valued:
        for i in draw(st.lists(st.sampled_from(valued), max_size=2, unique=True)):
            chosen[i] = (chosen[i][0], draw(st.sampled_from(_values(cmd, chosen[i][0]))))
    argv = [cmd, *FORCED.get(cmd, [])]
    for a, v in chosen:
        if not a.option_strings:
            argv.append(v)
        elif v is None:
            argv.append(a.option_strings[0])
        elif v.startswith("-"):  # "--x=-1": a value starting with '-' as a user would have to write it
            argv.append(f"{a.option_strings[0]}={v}")
        else:
            argv += [a.option_strings[0], v]
    return argv


class _Timeout(BaseException):  # not an Exception: code that catches Exception must not swallow it
    pass


def _run(argv: list[str]) -> tuple[int, str, str, list]:
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    work = Path(tempfile.mkdtemp(dir=_SCRATCH))

    def alarm(signum, frame):
        raise _Timeout(f"{argv} ran longer than {CASE_SECONDS} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_SECONDS)
    try:
        os.chdir(work)
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            warnings.simplefilter("always")
            try:
                code = main(argv)
            except SystemExit as e:  # argparse
                code = e.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(cwd)
    return code, out.getvalue(), err.getvalue(), caught


def _strict_json(text: str):
    def refuse(c):
        raise ValueError(f"non-standard JSON constant {c}")

    return json.loads(text, parse_constant=refuse)


def _wants_json(cmd: str, argv: list[str]) -> bool:
    """--json as a flag (stdout JSON), not phase-diagram's --json FILE; derive --json is its format."""
    p = _subparsers()[cmd]
    flag = next((a for a in p._actions if "--json" in a.option_strings), None)
    if flag is not None and not _is_flag(flag):  # phase-diagram --json FILE: '-' is stdout
        return "--json=-" in argv or any(a == "--json" and b == "-" for a, b in zip(argv, argv[1:]))
    if flag is None or "--json" not in argv:
        return False
    return not (cmd == "derive" and any(a == "--out" or a.startswith("--out=") for a in argv))


def check(argv: list[str]) -> None:
    cmd = argv[0]
    code, out, err, caught = _run(argv)
    allowed = {0, 1, 2} if cmd == "verify" else {0, 2}
    assert code in allowed, f"exit {code} for {argv}\n{err[-3000:]}"
    assert "Traceback" not in err, f"traceback for {argv}\n{err[-3000:]}"
    leaked = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not leaked, f"RuntimeWarning for {argv}: {[str(w.message) for w in leaked]}"
    if code == 0 and _wants_json(cmd, argv):
        try:
            _strict_json(out)
        except ValueError as exc:
            raise AssertionError(f"stdout is not strict JSON for {argv}: {exc}\n{out[:2000]}") from None
    if code == 2:
        assert err.strip(), f"exit 2 without a message for {argv}"


_SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)


#: commands whose valid cases take 5-30 s each (derived NTK/ddNTK folds, grids of fixed points): the
#: default suite leaves them to the slow one, to stay within its time budget
SLOW_ONLY = {"ntk-move", "advise", "phase-diagram", "residual-criticality"}


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c not in SLOW_ONLY])
@settings(max_examples=2, derandomize=True, **_SETTINGS)
@given(data=st.data())
def test_fuzz_cli(cmd, data):
    check(data.draw(argv_for(cmd)))


# derandomized too, so that CI is reproducible; explore new cases locally with
# `pytest -m slow tests/test_cli_fuzz.py -p no:randomly --hypothesis-seed=N` and settings edited to
# derandomize=False (random seeds 10-30 found the oversized-width and NTK-overflow bugs)
@pytest.mark.slow
@pytest.mark.parametrize("cmd", COMMANDS)
@settings(max_examples=10, derandomize=True, **_SETTINGS)
@given(data=st.data())
def test_fuzz_cli_more(cmd, data):
    check(data.draw(argv_for(cmd)))


@pytest.mark.parametrize("argv", [
    ["kernel", "--activation", "relu", "--depth", "1", "--inputs", FILES["inputs_nan.json"], "--json"],
    ["relu-exact", "--widths", "3", "--x", "1e200", "--moment", "4", "--json"],
    ["verify", "V", "--claim", "zoo", "--json"],
    ["mc", "--activation", "tanh", "--widths", "3", "--x", "1", "--samples", "1", "--json"],
    ["fixed-point", "--activation", "tanh", "--cw", "1e308", "--json"],
    ["criticality", "--activation", "relu", "--cb", "-1", "--json"],
])
def test_known_hostile_cases(argv):
    """Cases the fuzzer found or the issue listed, pinned."""
    check(argv)
