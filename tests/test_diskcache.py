"""The on-disk cache of derivations: results identical to recomputation, robust to damage, optional."""

from __future__ import annotations

import pickle

import pytest

from perturb import _diskcache
from perturb._diskcache import disk_cached

CALLS: list = []


@disk_cached
def _toy(x, y=1):
    CALLS.append((x, y))
    return {"sum": x + y, "args": (x, y)}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PERTURB_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PERTURB_CACHE", raising=False)
    CALLS.clear()
    return tmp_path


def test_second_call_is_read_from_disk(cache):
    assert _toy(2, 3) == {"sum": 5, "args": (2, 3)}
    assert _toy(2, 3) == {"sum": 5, "args": (2, 3)}
    assert CALLS == [(2, 3)]                       # computed once
    assert len(list(cache.glob("*.pickle"))) == 1
    assert _toy(3, 2)["args"] == (3, 2)            # other arguments, other entry
    assert CALLS == [(2, 3), (3, 2)]


def test_damaged_entry_is_recomputed(cache):
    _toy(1, 1)
    (entry,) = cache.glob("*.pickle")
    entry.write_bytes(b"not a pickle")
    assert _toy(1, 1)["sum"] == 2
    assert CALLS == [(1, 1), (1, 1)]
    assert pickle.loads(entry.read_bytes())["sum"] == 2   # overwritten with a good entry


def test_disabled(cache, monkeypatch):
    monkeypatch.setenv("PERTURB_CACHE", "off")
    _toy(4, 4)
    _toy(4, 4)
    assert CALLS == [(4, 4), (4, 4)]
    assert not list(cache.glob("*"))


def test_key_depends_on_source_digest(cache, monkeypatch):
    _toy(5, 5)
    monkeypatch.setattr(_diskcache, "source_digest", lambda: "another version of perturb")
    _toy(5, 5)
    assert CALLS == [(5, 5), (5, 5)]               # an edited package never reads old entries


def test_ntk_layer_map_round_trips_exactly():
    from perturb.ntk.derive import derive_ntk_layer_map

    rec = derive_ntk_layer_map()
    back = pickle.loads(pickle.dumps(rec))
    assert back.exprs == rec.exprs and back.syms == rec.syms
