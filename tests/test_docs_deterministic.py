"""Generated documentation does not depend on the process's hash seed.

``docs/gen_pages.py`` renders every derivation into a committed Markdown page; a set or dict
iterated in hash order anywhere between the engine's expression graph and the writers made
``docs/derivations/order_k.md`` differ from one ``PYTHONHASHSEED`` to the next (the expression
graph's dependency edges were added from a ``set``).  The test renders the same derivations, in
Markdown and in LaTeX, in two fresh interpreters with different hash seeds and with the disk
cache off (a pickled result would hide the difference), and compares the text byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_RENDER = """
import sys
import derivations
from perturb.latex import to_latex, to_markdown
for name in sys.argv[1:]:
    doc = derivations.build(name, checks=False)
    sys.stdout.write(to_markdown(doc))
    sys.stdout.write(to_latex(doc))
"""

# pages built on the engine's expression graph (order_k was the one that changed), ~1 s each
# to render; the slow test below renders every registered derivation
CHEAP = ["order_k", "four_point_vertex", "kernel_correction"]


def _render(names: list[str], seed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=seed, PERTURB_CACHE="off")
    res = subprocess.run([sys.executable, "-c", _RENDER, *names], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _assert_same(names: list[str]) -> None:
    a, b = _render(names, "1"), _render(names, "12345")
    assert a, "nothing was rendered"
    if a != b:
        la, lb = a.splitlines(), b.splitlines()
        first = next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
        pytest.fail(f"output depends on PYTHONHASHSEED; first difference at line {first + 1}:\n"
                    f"  seed 1:     {la[first] if first < len(la) else '<end>'}\n"
                    f"  seed 12345: {lb[first] if first < len(lb) else '<end>'}")


def test_cheap_derivations_do_not_depend_on_hash_seed():
    _assert_same(CHEAP)


@pytest.mark.slow
def test_every_derivation_does_not_depend_on_hash_seed():
    import derivations

    _assert_same(list(derivations.REGISTRY))
