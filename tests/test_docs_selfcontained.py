"""The documentation is self-contained: it never points at files users do not have.

Rules (checked below):

1. No file of README.md, docs/, perturb/ or derivations/ mentions ``shared/``, ``REFERENCE.md``
   or a "REFERENCE §N" / "REFERENCE section N" pointer: those named a development-only file
   outside this repository.  The project's own reference page is ``docs/reference.md``.
2. Every link in README.md and docs/**/*.md (``[text](target)`` and ``![alt](target)``, outside
   code) is either
   * relative, resolves to an existing file *inside* the repository (``..`` may not climb out of
     it), and, when it has a ``#anchor`` into a Markdown page, names a heading of that page; or
   * an http(s) citation of the literature: host ``arxiv.org`` or ``doi.org``.  Any other
     absolute URL (another repository, a personal page, a CDN) fails: no link leaves the
     repository except to cite a paper.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
CITATION_HOSTS = {"arxiv.org", "doi.org"}
FORBIDDEN = re.compile(r"shared/|REFERENCE\.md|REFERENCE (?:§|section)")
TEXT_SUFFIXES = {".md", ".py", ".yml", ".yaml", ".txt", ".js", ".tex", ".json", ".toml", ".cfg"}


def _text_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for top in ("docs", "perturb", "derivations"):
        files += [p for p in sorted((ROOT / top).rglob("*"))
                  if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts]
    return files


def test_no_file_points_outside_the_repository():
    hits = []
    for path in _text_files():
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    assert not hits, "references to files users do not have:\n" + "\n".join(hits)


def _strip_code(md: str) -> str:
    """Markdown without fenced code, inline code and math (brackets there are not links)."""
    md = re.sub(r"^( *)(```|~~~).*?^\1\2", "", md, flags=re.S | re.M)
    md = re.sub(r"`[^`\n]*`", "", md)
    md = re.sub(r"\$\$.*?\$\$", "", md, flags=re.S)
    return re.sub(r"\$[^$\n]*\$", "", md)


_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _slug(heading: str) -> str:
    """Python-Markdown's default toc slug (what mkdocs' permalinks use)."""
    value = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)       # a link in a heading: its text
    value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def _anchors(md_path: Path) -> set[str]:
    text = _strip_code(md_path.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, flags=re.M)}


def _md_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _links():
    for path in _md_files():
        for target in _LINK.findall(_strip_code(path.read_text(encoding="utf-8"))):
            yield path, target


def test_the_checker_sees_links():
    """The link pattern finds the README's docs links and the reference page's citations."""
    targets = {t for _, t in _links()}
    assert "docs/conventions.md" in targets and "https://arxiv.org/abs/2309.01592" in targets
    assert _slug("3. Finite width at initialisation") == "3-finite-width-at-initialisation"


@pytest.mark.parametrize("path", _md_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository(path):
    bad = []
    for target in _LINK.findall(_strip_code(path.read_text(encoding="utf-8"))):
        url = urlparse(target)
        if url.scheme in ("http", "https"):
            host = url.hostname or ""
            if not any(host == h or host.endswith("." + h) for h in CITATION_HOSTS):
                bad.append(f"{target}: external link that is not a citation ({', '.join(sorted(CITATION_HOSTS))})")
            continue
        if url.scheme or target.startswith("/"):
            bad.append(f"{target}: absolute link")
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path.resolve()
        try:
            dest.relative_to(ROOT)
        except ValueError:
            bad.append(f"{target}: leaves the repository")
            continue
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading '#{anchor}' in {dest.relative_to(ROOT)}")
    assert not bad, f"{path.relative_to(ROOT)}:\n" + "\n".join(bad)
