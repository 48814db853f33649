"""Compiled derivations cached on disk across processes (perturb._compiled_cache, the
FiniteWidth bundle, the compiled closed forms of perturb.gaussian.dispatch): a cached run gives
exactly the numbers of an uncached run, a source change or ``PERTURB_CACHE=off`` means a fresh
computation, and a damaged entry is recomputed."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from perturb import _diskcache
from perturb._compiled_cache import _Restored, payload, restore
from perturb.compile import compile_expr
from perturb.finite import FiniteWidth
from perturb.gaussian import dispatch

ARGS = dict(K1=0.9, widths=[20, 30], C_W=2.0, C_b=0.0)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PERTURB_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PERTURB_CACHE", raising=False)
    return tmp_path


def _bundles(folder):
    return sorted(folder.glob("perturb.finite.chain.FiniteWidth.compiled-*.pickle"))


def _numbers(st):
    return [st.total_moment(m) for m in (2, 4, 6, 8)] + [st.total_cumulant(m) for m in (4, 6, 8)]


def _fresh(act="relu"):
    return FiniteWidth(act, depth=2, order=2)


def test_cached_run_equals_uncached(cache, monkeypatch):
    first = _numbers(_fresh().evaluate(**ARGS))                      # computes and stores
    assert len(_bundles(cache)) == 1
    calls = []
    monkeypatch.setattr(FiniteWidth, "_compiled_bundle", lambda self: calls.append(1))
    fw = _fresh()
    second = _numbers(fw.evaluate(**ARGS))                           # read from disk
    assert calls == [] and all(isinstance(f, _Restored) for f, _, _ in fw._compiled.values())
    assert second == first                                           # bit for bit
    monkeypatch.undo()
    monkeypatch.setenv("PERTURB_CACHE", "off")
    assert _numbers(_fresh().evaluate(**ARGS)) == first
    # --dps through a restored function: its expression is unpickled on demand
    monkeypatch.setenv("PERTURB_CACHE_DIR", str(cache))
    monkeypatch.delenv("PERTURB_CACHE")
    mp = _fresh().evaluate(**ARGS, dps=30).total_moment(4)
    assert abs(float(mp) - first[1]) <= 1e-12 * abs(first[1])


def test_source_change_and_off_recompute(cache, monkeypatch):
    _fresh().evaluate(**ARGS)
    calls = []
    real = FiniteWidth._compiled_bundle

    def counting(self):
        calls.append(1)
        return real(self)

    monkeypatch.setattr(FiniteWidth, "_compiled_bundle", counting)
    monkeypatch.setattr(_diskcache, "source_digest", lambda: "an edited perturb")
    _fresh().evaluate(**ARGS)
    assert calls == [1] and len(_bundles(cache)) == 2                # a new key, recomputed
    monkeypatch.setenv("PERTURB_CACHE", "off")
    _fresh().evaluate(**ARGS)
    assert calls == [1, 1] and len(_bundles(cache)) == 2             # nothing read or written


def test_damaged_bundle_is_recomputed(cache):
    first = _numbers(_fresh().evaluate(**ARGS))
    (entry,) = _bundles(cache)
    entry.write_bytes(b"not a pickle")
    assert _numbers(_fresh().evaluate(**ARGS)) == first


def test_closed_forms_cached_across_processes(cache):
    """The compiled closed form of a Gaussian expectation, restored from disk (the in-process
    lru_cache cleared, as in a new process), gives the same numbers and the same expression."""
    f = sp.Max(sp.Symbol("z", real=True), 0) ** 2 * sp.Symbol("z", real=True) ** 2
    dispatch._closed_compiled.cache_clear()
    fresh = dispatch.closed_form_of(f, 1)
    dispatch._closed_compiled.cache_clear()
    back = dispatch.closed_form_of(f, 1)
    assert isinstance(back, _Restored)
    K = np.linspace(0.1, 3, 7)
    assert np.array_equal(back(K), fresh(K)) and back.expr == fresh.expr
    assert dispatch.closed_form_of(sp.tanh(sp.Symbol("z", real=True)) ** 2, 1) is None   # "no closed form" cached too
    dispatch._closed_compiled.cache_clear()


def test_payload_round_trip():
    x, y = sp.symbols("x y")
    f = compile_expr(sp.erf(x) * sp.exp(-y) + sp.sqrt(x * y), [x, y])
    g = restore(payload(f))
    X, Y = np.meshgrid(np.linspace(0.1, 2, 5), np.linspace(0.2, 1, 4))
    assert np.array_equal(g(X, Y), f(X, Y))
    assert g.mpmath(0.5, 0.25, dps=40) == f.mpmath(0.5, 0.25, dps=40)
    assert restore(payload(g))(0.3, 0.4) == f(0.3, 0.4)
