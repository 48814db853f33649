"""Infinite-width kernels of conv/pool/flatten/residual architectures (perturb.arch).

Independent checks:
* neural-tangents 0.6.5 (stored arrays, tests/data/arch_nt_reference.npz, made by
  tests/data/arch_nt_reference.py — the command is in its docstring);
* mpmath at 30 digits through the dps path (closed forms evaluated in mpmath; expect_mpmath for tanh);
* structural identities: a dense-only spec equals perturb.infinite.kernels of the Network; a VALID
  conv whose filter covers the whole image is a dense layer on the flattened image; blocking and the
  pixel-diagonal shortcut change nothing;
* Monte Carlo of real finite networks: tests/test_arch_mc.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from perturb.arch import (
    Architecture,
    act,
    avg_pool,
    conv,
    dense,
    flatten,
    global_avg_pool,
    kernels,
    plan,
    residual,
    serial,
)
from perturb.errors import PerturbError
from perturb.infinite import kernels as mlp_kernels
from perturb.network import Network

REF = np.load(Path(__file__).parent / "data" / "arch_nt_reference.npz")
CASES = sorted({k.split("_")[0] for k in REF.files})
KINKED = ("relu", "leaky_relu", "abs")


def _rel(A, B):
    return np.abs(np.asarray(A, dtype=float) - B) / np.abs(B).max()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("block", [None, 1])
def test_agrees_with_neural_tangents(case, block):
    spec = str(REF[f"{case}_spec"])
    arch = Architecture.from_json(spec)
    k = kernels(arch, REF[f"{case}_X"], block=block)
    off = ~np.eye(k.nngp.shape[0], dtype=bool)
    kinked = any(n in spec for n in KINKED)
    for name, M in (("nngp", k.nngp), ("ntk", k.ntk)):
        d = _rel(M, REF[f"{case}_{name}"])
        assert d[off].max() <= 1e-10, (case, name, d[off].max())
        # neural-tangents evaluates arccos(ρ) at ρ = 1 - ε on the diagonal of ReLU-type NTKs
        # (~1e-8 there); perturb sets ρ = 1 exactly — checked against mpmath below
        assert np.diag(d).max() <= (1e-8 if (kinked and name == "ntk") else 1e-10), (case, name)


def test_relu_diagonal_against_mpmath():
    """Where neural-tangents' ReLU NTK diagonal is off by ~1e-10, perturb's matches 30 digits."""
    spec = str(REF["case2_spec"])
    arch = Architecture.from_json(spec)
    X = REF["case2_X"][:2, :4]
    k = kernels(arch, X)
    kd = kernels(arch, X, dps=30)
    for M, Md in ((k.nngp, kd.nngp), (k.ntk, kd.ntk)):
        assert _rel(M, np.array(Md, dtype=float)).max() <= 2e-15


@pytest.mark.parametrize("make", [
    lambda: serial(conv([3], C_W=2.0, C_b=0.1), act("relu"), conv([2], C_W=2.0), avg_pool([2]), act("relu"),
                   flatten(), dense(1.0)),
    lambda: serial(conv([2], C_W=1.5), residual(act("erf"), conv([3], C_W=1.3, C_b=0.2)),
                   residual(act("leaky_relu:0.2"), conv([1], C_W=1.0)), global_avg_pool(), dense(1.0, 0.1)),
])
def test_float_against_mpmath(make):
    X = np.random.default_rng(5).standard_normal((2, 4, 2))
    arch = make()
    k, kd = kernels(arch, X), kernels(arch, X, dps=30)
    assert isinstance(kd.nngp[0, 0], type(kd.ntk[0, 0]))
    for M, Md in ((k.nngp, kd.nngp), (k.ntk, kd.ntk)):
        assert _rel(M, np.array(Md, dtype=float)).max() <= 1e-13


@pytest.mark.slow
def test_tanh_against_mpmath():
    """tanh has no closed form: float64 uses the checked Chebyshev interpolant, dps expect_mpmath."""
    X = np.random.default_rng(5).standard_normal((2, 3, 2))
    arch = serial(conv([2], C_W=1.5, C_b=0.1), act("tanh"), global_avg_pool(), dense(1.0))
    k, kd = kernels(arch, X), kernels(arch, X, dps=30)
    for M, Md in ((k.nngp, kd.nngp), (k.ntk, kd.ntk)):
        assert _rel(M, np.array(Md, dtype=float)).max() <= 1e-12


def test_dense_spec_equals_network():
    X = np.array([[1.0, 0.3, -0.5], [0.2, -1.0, 0.7], [-0.8, 0.4, 0.1]])
    for a in ("tanh", "relu", "erf"):
        arch = serial(dense(1.5, 0.1), act(a), dense(1.5, 0.1), act(a), dense(1.5, 0.1))
        k, ref = kernels(arch, X), mlp_kernels(Network(a, depth=2, C_W=1.5, C_b=0.1), X)
        assert _rel(k.nngp, ref.nngp).max() <= 1e-13
        assert _rel(k.ntk, ref.ntk).max() <= 1e-13


def test_full_valid_filter_is_a_dense_layer():
    """conv with filter = image size, VALID: one output position whose kernel is C_b + C_W x·x'/(HWC)."""
    X = np.random.default_rng(2).standard_normal((4, 3, 5, 2))
    arch = serial(conv([3, 5], "VALID", C_W=2.0, C_b=0.1), act("relu"), flatten(), dense(2.0, 0.1))
    ref = mlp_kernels(Network("relu", depth=1, C_W=2.0, C_b=0.1), X.reshape(4, -1))
    k = kernels(arch, X)
    assert _rel(k.nngp, ref.nngp).max() <= 1e-14
    assert _rel(k.ntk, ref.ntk).max() <= 1e-14


def test_blocks_and_pixel_diagonal_change_nothing():
    X = np.random.default_rng(4).standard_normal((5, 4, 4, 2))
    base = [conv([3, 3], C_W=2.0, C_b=0.1), act("gelu"), conv([2, 2], C_W=1.5), act("relu")]
    diag = serial(*base, flatten(), dense(1.0))
    full = serial(*base, avg_pool([1, 1]), flatten(), dense(1.0))   # a pooling layer forces K(p, p')
    assert not plan(diag, X.shape).full and plan(full, X.shape).full
    ref = kernels(full, X)
    for arch, block in ((diag, None), (diag, 2), (full, 2), (full, 1)):
        k = kernels(arch, X, block=block)
        assert _rel(k.nngp, ref.nngp).max() <= 1e-14
        assert _rel(k.ntk, ref.ntk).max() <= 1e-14


def test_blocks_without_closed_form():
    """tanh (no closed form): off-diagonal blocks go through the Gram engine on an embedded matrix."""
    X = np.random.default_rng(8).standard_normal((4, 3, 3, 2))
    arch = serial(conv([2, 2], C_W=1.5, C_b=0.1), act("tanh"), avg_pool([3, 3]), flatten(), dense(1.0))
    ref = kernels(arch, X)
    k = kernels(arch, X, block=1)
    assert _rel(k.nngp, ref.nngp).max() <= 1e-12 and _rel(k.ntk, ref.ntk).max() <= 1e-12


def test_zero_variance_pixels():
    """Black regions with C_b = 0 give pixels of zero variance: σ(0)E σ(u) there, checked at 30 digits."""
    X = np.random.default_rng(6).standard_normal((2, 5, 1))
    X[:, :3] = 0.0
    for a in ("erf", "cos"):          # relu: in tests/test_arch_mc.py (its mpmath E relu(u) is slow)
        arch = serial(conv([2], C_W=1.0), act(a), global_avg_pool(), dense(1.0))
        k, kd = kernels(arch, X), kernels(arch, X, dps=30)
        assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
        assert _rel(k.nngp, np.array(kd.nngp, dtype=float)).max() <= 1e-13, a
        assert _rel(k.ntk, np.array(kd.ntk, dtype=float)).max() <= 1e-13, a


def test_step_activation_has_no_ntk():
    k = kernels(serial(dense(1.0), act("step"), dense(1.0)), np.eye(2))
    assert k.ntk is None and np.isfinite(k.nngp).all()


def test_plan_sizes():
    arch = serial(conv([3, 3], C_W=2.0), act("relu"), global_avg_pool(), dense(1.0))
    p = plan(arch, (100, 8, 8, 3))
    assert (p.full, p.positions, p.full_bytes) == (True, 64, 100 * 100 * 64 * 64 * 8)
    assert p.block == 27 and p.blocks == 4 and p.block_bytes <= 24 * 2**20     # the default budget
    p2 = plan(arch, (100, 8, 8, 3), max_block_bytes=64 * 2**20)
    assert p2.block == 45 and p2.blocks == 3 and p2.pairs == 6 and p2.block_bytes <= 64 * 2**20
    p1 = plan(serial(conv([3, 3]), act("relu"), flatten(), dense()), (100, 8, 8, 3))
    assert not p1.full and p1.blocks == 1 and p1.full_bytes == 100 * 100 * 64 * 8


# ----------------------------------------------------------------------------- spec and JSON


def test_round_trip_python_json():
    arch = serial(conv([3, 3], "SAME", 2.0, 0.1), act("relu"), avg_pool([2, 2]),
                  residual(act("z*tanh(z)"), conv([1, 1], C_W=1.5)), act("leaky_relu:0.1"),
                  conv([2, 2], "VALID"), global_avg_pool(), flatten(), dense(1.0, 0.2))
    assert Architecture.from_json(arch.to_json()) == arch
    assert Architecture.from_spec(json.loads(arch.to_json(indent=2))).to_spec() == arch.to_spec()
    for case in CASES:
        spec = json.loads(str(REF[f"{case}_spec"]))
        assert Architecture.from_spec(spec).to_spec() == spec


def test_python_api_splices_and_accepts_sympy():
    import sympy as sp

    from perturb.activations import Z

    head = serial(conv([3]), act(sp.erf(Z)))
    a = serial(head, global_avg_pool(), dense())
    assert len(a.layers) == 4 and a.layers[1].name == "erf(z)"
    assert residual(serial(act("relu"), conv([3]))).block == (act("relu"), conv([3]))


BAD = [
    ('[{"type": "cnv"}, {"type": "dense"}]', "unknown layer type 'cnv'"),
    ('[{"type": "conv", "filter": [5, 5], "padding": "VALID"}, {"type": "flatten"}, {"type": "dense"}]',
     "larger than the 4×4 input"),
    ('[{"type": "conv", "filter": [3]}, {"type": "flatten"}, {"type": "dense"}]', "spatial dimension"),
    ('[{"type": "conv", "filter": [3, 3]}, {"type": "dense"}]', "flatten or global_avg_pool"),
    ('[{"type": "conv", "filter": [3, 3]}, {"type": "act", "name": "relu"}]', "dense readout"),
    ('[{"type": "act", "name": "relu"}, {"type": "flatten"}, {"type": "dense"}]', "Gaussian"),
    ('[{"type": "conv", "filter": [3, 3], "C_W": -1}, {"type": "flatten"}, {"type": "dense"}]', "C_W"),
    ('[{"type": "conv", "filter": [3, 3]}, {"type": "residual", "block": [{"type": "act", "name": "relu"}]}, '
     '{"type": "flatten"}, {"type": "dense"}]', "must end with a dense or conv"),
    ('[{"type": "conv", "filter": [3, 3]}, {"type": "residual", "block": [{"type": "conv", "filter": [3, 3], '
     '"padding": "VALID"}]}, {"type": "flatten"}, {"type": "dense"}]', "same shape"),
    ('[{"type": "conv", "filter": [3, 3], "stride": 2}, {"type": "flatten"}, {"type": "dense"}]', "unknown key"),
    ('[{"type": "conv", "filter": [3, 3]', "not valid JSON"),
    ('{"type": "dense"}', "non-empty JSON list"),
    ('[{"type": "dense"}, {"type": "flatten"}, {"type": "global_avg_pool"}, {"type": "dense"}]',
     "needs spatial inputs"),
    ('[{"type": "conv", "filter": [0, 3]}, {"type": "flatten"}, {"type": "dense"}]', "positive integers"),
    ('[{"type": "avg_pool", "window": [2, 2], "padding": "SAME"}, {"type": "flatten"}, {"type": "dense"}]',
     "VALID"),
]


def _cli(capsys, *args):
    from perturb.cli import main

    status = main(["kernel", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_cli_arch_json_and_errors(tmp_path, capsys):
    X = np.random.default_rng(1).standard_normal((3, 4, 4, 2)).round(3)
    (tmp_path / "x.json").write_text(json.dumps(X.tolist()))
    arch = serial(conv([3, 3], C_W=2.0, C_b=0.1), act("relu"),
                  residual(conv([3, 3]), act("erf"), conv([1, 1])), global_avg_pool(), dense(1.0))
    (tmp_path / "a.json").write_text(arch.to_json())
    x, a, b = (str(tmp_path / f) for f in ("x.json", "a.json", "b.json"))
    status, out, err = _cli(capsys, "--arch", a, "--inputs", x, "--json")
    assert status == 0, err
    res = json.loads(out)
    k = kernels(arch, X)
    assert set(res) == {"nngp", "ntk"}
    assert np.array_equal(np.array(res["nngp"]), k.nngp) and np.array_equal(np.array(res["ntk"]), k.ntk)
    for spec, msg in BAD:
        (tmp_path / "b.json").write_text(spec)
        status, out, err = _cli(capsys, "--arch", b, "--inputs", x)
        assert status == 2 and out == "", spec
        assert err.count("\n") == 1 and msg in err, (spec, err)
    (tmp_path / "rag.json").write_text("[[[1, 2], [3]], [[1, 2], [3, 4]]]")
    status, out, err = _cli(capsys, "--arch", a, "--inputs", str(tmp_path / "rag.json"))
    assert status == 2 and "mismatch" in err and err.count("\n") == 1
    (tmp_path / "s.json").write_text(json.dumps(X[:2, :2, :3, :1].tolist()))
    tiny = serial(conv([2, 2], C_W=2.0, C_b=0.1), act("relu"), global_avg_pool(), dense(1.0))
    (tmp_path / "t.json").write_text(tiny.to_json())
    status, out, err = _cli(capsys, "--arch", str(tmp_path / "t.json"), "--inputs", str(tmp_path / "s.json"),
                            "--dps", "25", "--json")
    res = json.loads(out)
    assert status == 0 and isinstance(res["ntk"][0][1], str) and len(res["ntk"][0][1].lstrip("-0.")) >= 20
    ref = kernels(tiny, X[:2, :2, :3, :1])
    assert np.allclose(np.array(res["ntk"], dtype=float), ref.ntk, rtol=1e-14, atol=0)
    status, out, err = _cli(capsys, "--arch", a, "--inputs", x, "--out", str(tmp_path / "k.npz"))
    assert status == 0 and "wrote nngp, ntk (3×3)" in out
    saved = np.load(tmp_path / "k.npz")
    assert np.array_equal(saved["nngp"], k.nngp) and np.array_equal(saved["ntk"], k.ntk)
    status, out, err = _cli(capsys, "--arch", a, "--inputs", x, "--out", str(tmp_path / "k.txt"))
    assert status == 2 and ".npz" in err
    status, out, err = _cli(capsys, "--arch", a, "--inputs", x, "--depth", "2")
    assert status == 2 and "--depth does not apply" in err


@pytest.mark.parametrize("spec, msg", BAD)
def test_api_errors(spec, msg):
    with pytest.raises(PerturbError, match=None) as exc:
        Architecture.from_json(spec).check((4, 4, 2))
    assert msg in str(exc.value)


@pytest.mark.parametrize("module", ["spec", "maps", "fold", "networks", "criticality"])
def test_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"perturb.arch.{module}")
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted > 0
