"""``perturb tour`` shows progress on a terminal (section k/N, step, elapsed, ETA) and nowhere else."""

from __future__ import annotations

import io
import sys

import pytest

from perturb.tour import TourContext, run_tour
from perturb.tour._progress import TourProgress


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_terminal_gets_a_redrawn_status_line_that_is_erased(monkeypatch, tmp_path):
    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    out = io.StringIO()
    run_tour(tmp_path, quick=True, only=["s10"], stream=out)
    text = err.getvalue()
    assert "[1/1] Infinite-width kernels" in text and "tour ETA ~" in text
    assert "\n" not in text                        # redrawn in place with \r, never scrolls
    assert text.endswith("\r")                     # erased before the summary line was printed
    assert "== Infinite-width kernels" in out.getvalue()


def test_no_terminal_no_progress(capsys, tmp_path):
    run_tour(tmp_path, quick=True, only=["s10"])
    assert capsys.readouterr().err == ""


def test_forced_without_terminal_writes_plain_step_lines():
    err = io.StringIO()
    p = TourProgress(["s10_kernels", "s20_montecarlo"], quick=True, stream=err, enabled=True)
    ctx = TourContext(out=None, progress=p)
    p.start_section(0, "Kernels")
    ctx.step("NNGP at 30 digits")
    p.end_section()
    p.close()
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in err.getvalue()
    assert lines[1].startswith("[1/2] Kernels · NNGP at 30 digits · ")


def test_eta_scales_the_typical_times_by_the_observed_speed(monkeypatch):
    """Sections with typical times 10 and 30 s: after the first took 20 s (twice its typical time),
    the second is expected to take 60 s."""
    import perturb.tour._progress as prog

    monkeypatch.setitem(prog.TYPICAL_SECONDS, "sA", (10, 10))
    monkeypatch.setitem(prog.TYPICAL_SECONDS, "sB", (30, 30))
    clock = [0.0]
    monkeypatch.setattr(prog.time, "perf_counter", lambda: clock[0])
    p = TourProgress(["sA", "sB"], stream=io.StringIO(), enabled=False)
    p.start_section(0, "A")
    assert p.eta() == pytest.approx(40)
    clock[0] = 20.0
    p.end_section()
    p.start_section(1, "B")
    assert p.eta() == pytest.approx(60)
    clock[0] = 50.0
    assert p.eta() == pytest.approx(30)
