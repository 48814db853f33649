"""``perturb tour``: a short showcase of every capability, on defaults that need no input.

Sections are modules in this package named ``sNN_topic.py`` (run in order of ``NN``), each
defining ``TITLE`` and ``run(ctx) -> list[str]``: it writes its outputs (JSON, LaTeX,
figures) under ``ctx.out`` and returns the summary lines printed to the terminal.  Adding a
capability to the tour is adding one file.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TourContext", "run_tour", "sections"]


@dataclass
class TourContext:
    """What a tour section gets: the output folder and a place to record files written."""

    out: Path
    quick: bool = False
    files: list[str] = field(default_factory=list)
    progress: Any = None  # a TourProgress while run_tour runs; sections report steps via step()

    def step(self, text: str) -> None:
        """Say what the section is doing now (shown on the progress line when stderr is a terminal)."""
        if self.progress is not None:
            self.progress.step(text)

    def write_json(self, name: str, data: Any) -> Path:
        from .._io import atomic_write_text
        from ..commands._common import to_jsonable

        path = atomic_write_text(self.out / name, json.dumps(to_jsonable(data), indent=2) + "\n")
        self.files.append(name)
        return path

    def write_text(self, name: str, text: str) -> Path:
        from .._io import atomic_write_text

        path = atomic_write_text(self.out / name, text)
        self.files.append(name)
        return path

    def path(self, name: str) -> Path:
        """A path under the output folder for a file the section writes itself (figures)."""
        self.files.append(name)
        return self.out / name


def sections() -> list:
    mods = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("s") and info.name[1:3].isdigit():
            mods.append(importlib.import_module(f"{__name__}.{info.name}"))
    return mods


def run_tour(out: str | Path = "perturb-tour", *, quick: bool = False, only: list[str] | None = None,
             stream=None, progress: bool | None = None) -> TourContext:
    """Run every tour section, writing outputs under ``out``; print a readable summary.

    ``progress``: a status line on stderr (section k/N, step, elapsed, ETA; see
    :mod:`perturb.tour._progress`); None shows it only when stderr is a terminal.
    """
    stream = stream or sys.stdout
    chosen = [m for m in sections() if not only or any(o in m.__name__.rsplit(".", 1)[-1] for o in only)]
    if not chosen:
        from ..errors import PerturbError

        names = ", ".join(m.__name__.rsplit(".", 1)[-1] for m in sections())
        raise PerturbError(f"no tour section matches --only {only!r}; sections: {names}")
    from .._io import check_writable_dir

    ctx = TourContext(out=check_writable_dir(out, "--out"), quick=quick)
    ctx.out.mkdir(parents=True, exist_ok=True)
    print(f"perturb tour — outputs in {ctx.out.resolve()}", file=stream)
    from ._progress import TourProgress

    ctx.progress = bar = TourProgress([m.__name__.rsplit(".", 1)[-1] for m in chosen], quick=quick,
                                      enabled=progress)
    try:
        for i, mod in enumerate(chosen):
            print(f"\n== {mod.TITLE} ==", file=stream)
            stream.flush()
            bar.start_section(i, mod.TITLE)
            lines = list(mod.run(ctx))
            took = bar.end_section()
            for line in lines:
                print(f"  {line}", file=stream)
            print(f"  ({took:.1f} s)", file=stream)
            stream.flush()
    finally:
        bar.close()
        ctx.progress = None
    print(f"\nwrote {len(ctx.files)} files: {', '.join(ctx.files)}", file=stream)
    return ctx
