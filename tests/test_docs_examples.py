"""Every code example in README.md and docs/*.md runs (the generated docs/derivations/ excepted).

What each fenced block is, by its contents and language:

* a block with ``>>>`` prompts is a **doctest**: run with :mod:`doctest` (ELLIPSIS,
  NORMALIZE_WHITESPACE), its printed output compared;
* a ``python`` block without prompts is a **snippet**: executed (in a fresh namespace, so every
  block is self-contained) and must not raise; when the next non-blank line after it is
  ``prints`` (or ``prints:``) followed by an unlabelled block, that block is its expected
  standard output (compared line by line, trailing spaces ignored);
* ``perturb ...`` command lines — every line of a ``bash``/``sh`` block, and the ``$ ``-prompted
  lines of ``console`` or unlabelled blocks — are **parsed by the CLI's own parser**
  (:func:`perturb.cli.build_parser`): a misspelt command or option, or a value of the wrong
  type, fails; other programs (pip, pytest, mkdocs, echo) are skipped;
* ``text`` blocks (usage synopses with placeholders such as ``--cw X``) and unlabelled blocks
  without prompts (program output) are not run.

A block that is correct but too slow for the default suite is preceded by the marker
``<!-- docs-test: slow -->`` on the line before its fence: it then runs only under
``pytest -m slow``.  ``<!-- docs-test: skip REASON -->`` skips a block outright (REASON
required).  No block carries either marker unless it is truly long.
"""

from __future__ import annotations

import doctest
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)
_MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<kind>slow|skip)(?P<reason>[^>]*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str
    marker: str | None
    stdout: str | None = None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _blocks() -> list[Block]:
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            before = text[:m.start()].rstrip("\n ").rsplit("\n", 1)[-1]
            mk = _MARKER.search(before)
            marker = None
            if mk:
                marker = mk.group("kind")
                assert marker == "slow" or mk.group("reason").strip(), f"{page}:{line}: skip needs a reason"
            rest = text[m.end():]
            shown = re.match(r"\s*\n\s*prints:?\s*\n\s*\n```\n(.*?)^```", rest, flags=re.S | re.M)
            out.append(Block(page, line, m.group("lang").lower(), textwrap.dedent(m.group("body")), marker,
                             shown.group(1) if shown else None))
    return out


BLOCKS = _blocks()


def _params(kind):
    params = []
    for b in BLOCKS:
        if _kind(b) != kind:
            continue
        marks = []
        if b.marker == "slow":
            marks.append(pytest.mark.slow)
        elif b.marker == "skip":
            marks.append(pytest.mark.skip(reason="docs-test: skip marker"))
        params.append(pytest.param(b, id=b.id, marks=marks))
    return params


def _kind(b: Block) -> str | None:
    if b.lang == "text":
        return None
    if ">>>" in b.body:
        return "doctest"
    if b.lang == "python":
        return "snippet"
    if b.lang in ("bash", "sh", "shell") or any(ln.startswith("$ ") for ln in b.body.splitlines()):
        return "commands"
    return None


def _command_lines(b: Block) -> list[str]:
    lines = b.body.splitlines()
    if b.lang in ("bash", "sh", "shell"):
        cmds = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    else:
        cmds = [ln[2:] for ln in lines if ln.startswith("$ ")]
    out = []
    for c in cmds:
        c = c.split(" #", 1)[0]
        out += [part.strip() for part in re.split(r"&&|;|\|", c) if part.strip()]
    return out


@pytest.mark.parametrize("block", _params("doctest"))
def test_doctest_block(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.body, {}, block.id, str(block.page), block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert test.examples, "no examples found"
    assert runner.failures == 0, "".join(out)


@pytest.mark.parametrize("block", _params("snippet"))
def test_python_snippet(block, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = compile(block.body, block.id, "exec")
    capsys.readouterr()
    exec(code, {"__name__": "__docs__"})
    printed = capsys.readouterr().out
    if block.stdout is not None:
        def norm(t):
            return [ln.rstrip() for ln in t.strip("\n").splitlines()]
        assert norm(printed) == norm(block.stdout), f"{block.id} printed:\n{printed}"


@pytest.mark.parametrize("block", _params("commands"))
def test_cli_lines_parse(block):
    from perturb.cli import build_parser

    parser = build_parser()
    seen = 0
    for cmd in _command_lines(block):
        argv = shlex.split(cmd)
        argv = argv[:next((i for i, a in enumerate(argv) if re.fullmatch(r"\d?>>?", a)), len(argv))]  # "> out.json"
        if not argv or argv[0] != "perturb":
            continue
        seen += 1
        try:
            args = parser.parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{block.id}: `{cmd}` does not parse (exit {exc.code})")
        assert getattr(args, "func", None), f"{block.id}: `{cmd}` names no command"
    if block.lang not in ("bash", "sh", "shell"):
        assert seen, f"{block.id}: a $-prompted block with no perturb command"


def test_every_block_is_classified():
    """The classifier sees the examples it should (a regex slip would silently test nothing)."""
    kinds = [_kind(b) for b in BLOCKS]
    assert kinds.count("doctest") >= 10 and kinds.count("snippet") >= 5 and kinds.count("commands") >= 10
    assert any(b.stdout for b in BLOCKS), "no snippet with a 'prints' block found"
