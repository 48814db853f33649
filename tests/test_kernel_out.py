"""``perturb kernel --out FILE.npz|.npy`` and the fast JSON path of emit_json, against the
library call (``perturb.infinite.kernels``) on the same inputs: the files hold exactly the
library's float64 matrices, the JSON parses back to exactly the same numbers, bad paths are
refused before any work, and non-finite results are still refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

import perturb.infinite as inf
from perturb.cli import main
from perturb.commands._common import COMPACT_ABOVE, emit_json, to_jsonable
from perturb.errors import PerturbError
from perturb.infinite import kernels
from perturb.network import Network


def _inputs(tmp_path, N=30, seed=0):
    X = np.random.default_rng(seed).standard_normal((N, 4))
    p = tmp_path / "x.json"
    p.write_text(json.dumps(X.tolist()))
    return p, X


def _no_work(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("the kernels were computed before the output path was checked")
    monkeypatch.setattr(inf, "kernels", fail)


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_out_npz_and_npy_hold_the_library_matrices(tmp_path, act, capsys):
    xin, X = _inputs(tmp_path)
    ref = kernels(Network(act, depth=3, C_W=1.7, C_b=0.1), X)
    base = ["kernel", "--activation", act, "--depth", "3", "--cw", "1.7", "--cb", "0.1", "--inputs", str(xin)]
    assert main(base + ["--out", str(tmp_path / "k.npz")]) == 0
    assert "wrote nngp, ntk (30×30)" in capsys.readouterr().out
    with np.load(tmp_path / "k.npz") as z:
        assert sorted(z.files) == ["nngp", "ntk"]
        assert np.array_equal(z["nngp"], ref.nngp) and np.array_equal(z["ntk"], ref.ntk)
    assert main(base + ["--out", str(tmp_path / "k.npy")]) == 0
    stacked = np.load(tmp_path / "k.npy")
    assert stacked.shape == (2, 30, 30)
    assert np.array_equal(stacked[0], ref.nngp) and np.array_equal(stacked[1], ref.ntk)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.npy", "k.npz", "x.json"]   # no temporaries left


def test_out_with_json_prints_json_and_writes(tmp_path, capsys):
    xin, X = _inputs(tmp_path, N=5)
    code = main(["kernel", "--activation", "tanh", "--depth", "2", "--inputs", str(xin), "--json",
                 "--out", str(tmp_path / "k.npz")])
    out = capsys.readouterr()
    assert code == 0 and "wrote" in out.err
    data = json.loads(out.out)
    with np.load(tmp_path / "k.npz") as z:
        assert np.array_equal(np.array(data["nngp"]), z["nngp"])


@pytest.mark.parametrize("target, message", [
    ("k.txt", "must end in .npz"),
    ("missing/k.npz", "does not exist"),
])
def test_bad_out_refused_before_work(tmp_path, target, message, monkeypatch, capsys):
    xin, _ = _inputs(tmp_path)
    _no_work(monkeypatch)
    code = main(["kernel", "--activation", "relu", "--depth", "2", "--inputs", str(xin), "--out", str(tmp_path / target)])
    assert code == 2 and message in capsys.readouterr().err


def test_npy_refused_when_ntk_undefined_npz_holds_nngp_only(tmp_path, monkeypatch, capsys):
    xin, X = _inputs(tmp_path)
    base = ["kernel", "--activation", "step", "--depth", "2", "--inputs", str(xin)]
    assert main(base + ["--out", str(tmp_path / "k.npz")]) == 0
    with np.load(tmp_path / "k.npz") as z:
        assert z.files == ["nngp"]
        assert np.array_equal(z["nngp"], kernels(Network("step", depth=2), X).nngp)
    _no_work(monkeypatch)
    assert main(base + ["--out", str(tmp_path / "k.npy")]) == 2
    assert "use a .npz file" in capsys.readouterr().err
    assert main(base + ["--dps", "20", "--out", str(tmp_path / "k.npz")]) == 2
    assert "use --json" in capsys.readouterr().err


def test_large_json_is_compact_and_exact(tmp_path, capsys):
    """N = 80: 2·6400 numbers > COMPACT_ABOVE, printed on one line; every float round-trips."""
    xin, X = _inputs(tmp_path, N=80)
    assert 2 * 80 * 80 > COMPACT_ABOVE
    assert main(["kernel", "--activation", "erf", "--depth", "3", "--inputs", str(xin), "--json"]) == 0
    text = capsys.readouterr().out
    assert text.count("\n") == 1
    data = json.loads(text)
    ref = kernels(Network("erf", depth=3), X)
    assert np.array_equal(np.array(data["nngp"]), ref.nngp) and np.array_equal(np.array(data["ntk"]), ref.ntk)


def test_small_json_stays_indented_and_fast_path_matches_recursion(capsys):
    A = np.array([[1.0, 0.25], [0.25, 2.0]])
    emit_json({"nngp": A, "n": np.int64(3), "flags": np.array([True, False])})
    text = capsys.readouterr().out
    assert text.startswith("{\n  ") and json.loads(text) == {"nngp": A.tolist(), "n": 3, "flags": [True, False]}
    # the ndarray fast path gives what the element-by-element conversion gives
    assert to_jsonable(A) == [[to_jsonable(float(v)) for v in row] for row in A]
    assert to_jsonable(A, dps=5) == [["1.0", "0.25"], ["0.25", "2.0"]]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_arrays_still_refused(bad, capsys):
    A = np.ones((200, 200))
    A[3, 7] = bad
    with pytest.raises(PerturbError, match="not finite"):
        emit_json({"nngp": A})
    assert capsys.readouterr().out == ""
