"""``perturb mc``: the JSON contract, reproducibility across workers, bad input, Ctrl-C."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
import time

import pytest

from perturb.cli import main
from perturb.montecarlo import Estimate, assert_agrees

BASE = ["mc", "--activation", "relu", "--cw", "2", "--cb", "0", "--widths", "6,8", "--x", "1,0.5,-0.3",
        "--samples", "60000", "--seed", "5", "--json"]


def _run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_json_contract_and_exact_relu_moments(capsys):
    status, out, _ = _run(BASE, capsys)
    assert status == 0
    data = json.loads(out)
    assert data["samples"] == 60000
    assert set(data["moments"]) == set(data["cumulants"]) == {"2", "4", "6"}
    assert all(len(v) == 2 for v in data["moments"].values())
    # exact ReLU facts (REFERENCE §4): E z² = K1, E z⁴ = 3 K1² Π (n+5)/n
    K1 = 2 * (1 + 0.25 + 0.09) / 3
    m2, m4 = data["moments"]["2"], data["moments"]["4"]
    assert_agrees(K1, Estimate(m2[0], m2[1], 60000, 31), label="E z^2")
    assert_agrees(3 * K1**2 * (11 / 6) * (13 / 8), Estimate(m4[0], m4[1], 60000, 31), label="E z^4")


def test_same_seed_same_json_whatever_workers(capsys):
    argv = BASE[:-1] + ["--samples", "3000", "--ntk", "--json"]
    _, one, _ = _run(argv, capsys)
    _, two, _ = _run(argv + ["--workers", "2"], capsys)
    assert one == two
    data = json.loads(one)
    assert set(data["ntk"]) == {"mean", "var"}
    # E Θ = (L+1) K1 exactly for ReLU at C_W = 2, C_b = 0 (see test_montecarlo_sim)
    mean = data["ntk"]["mean"]
    assert_agrees(3 * 2 * 1.34 / 3, Estimate(mean[0], mean[1], 3000, 31), label="NTK mean")
    assert math.isfinite(data["ntk"]["var"][0])


@pytest.mark.parametrize(
    "change",
    [
        ["--samples", "0"],
        ["--samples", "-3"],
        ["--seed", "1.5"],
        ["--seed", "abc"],
        ["--widths", "0,4"],
        ["--widths", "-2"],
        ["--x", "1,nan"],
        ["--activation", "nosuch"],
        ["--activation", "exp(z)", "--cw", "40", "--widths", "8,8,8,8,8"],
        ["--samples", str(10**12)],
    ],
)
def test_bad_input_exit_2_one_line(change, capsys):
    # argparse refuses malformed values (SystemExit 2); the library refuses the rest (PerturbError
    # -> status 2); either way the last stderr line is one "error:" line, never a traceback
    try:
        status = main(BASE + change)
    except SystemExit as exc:
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2
    last = err.strip().splitlines()[-1]
    assert "error:" in last and "Traceback" not in err


def test_ctrl_c_stops_cleanly():
    # --progress prints a bar once the run is past ~2 s: interrupt only then (not during imports)
    proc = subprocess.Popen(
        [sys.executable, "-m", "perturb", "mc", "--activation", "tanh", "--widths", "64,64,64,64",
         "--x", "1,2", "--samples", "5000000", "--workers", "2", "--progress", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    err_chunks: list[str] = []
    reader = threading.Thread(target=lambda: err_chunks.extend(iter(lambda: proc.stderr.read(1), "")))
    reader.start()
    deadline = time.monotonic() + 120
    while "mc outputs" not in "".join(err_chunks) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=10)
    err = "".join(err_chunks)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


def test_tour_section_quick(tmp_path):
    from perturb.tour import TourContext
    from perturb.tour import s20_montecarlo as section

    ctx = TourContext(out=tmp_path, quick=True)
    lines = section.run(ctx)
    data = json.loads((tmp_path / "montecarlo_kurtosis.json").read_text())
    assert [r["width"] for r in data["rows"]] == [8, 16, 32] and any("kappa4" in s for s in lines)
    # the excess kurtosis is positive and shrinks with width (8 vs 32: ~4σ apart even in quick mode)
    k8, k32 = data["rows"][0]["excess_kurtosis"], data["rows"][2]["excess_kurtosis"]
    assert k8[0] - k32[0] > 2 * math.hypot(k8[1], k32[1])


def test_oversized_widths_and_overflowing_ntk_are_one_line_errors(capsys):
    # found by the slow CLI fuzzer: a width beyond int64 reached numpy ("Maximum allowed dimension
    # exceeded" traceback), and an overflowing backward pass leaked raw RuntimeWarnings
    import warnings

    assert main(["mc", "--activation", "relu", "--widths", "99999999999999999999", "--x", "1",
                 "--samples", "10", "--seed", "0"]) == 2
    err = capsys.readouterr().err
    assert "parameters" in err and "Traceback" not in err and err.count("\n") == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert main(["mc", "--activation", "exp(z**2)", "--cw", "1", "--widths", "2,3", "--x", "0.3,-1",
                     "--ntk", "--weight-law", "uniform", "--samples", "100", "--seed", "0", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("perturb: error:") and err.count("\n") == 1
