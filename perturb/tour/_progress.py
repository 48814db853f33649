"""Progress of ``perturb tour`` on a terminal: section k of N, the current step, elapsed time, ETA.

Some sections run for a minute (Monte Carlo of real networks, derivations from scratch), and the
summary lines of a section are printed only when it ends.  While the tour runs, a single status
line on **stderr** is redrawn in place twice a second::

    [4/12] Exact finite-width statistics of ReLU networks · density of z · 12s · tour ETA ~1m40s

It is shown only when stderr is a terminal (``enabled=None``, the default), so logs and pipes get
no carriage-return noise: there the per-section ``(12.3 s)`` lines of the summary are the record.
Forced on without a terminal (``enabled=True``, ``perturb tour --progress``) it writes one plain
line per section and per step instead of redrawing.
The line is erased before any summary line is printed, so the two never interleave.

The ETA is the sum of the typical durations of the remaining sections (:data:`TYPICAL_SECONDS`,
measured on two loaded cores; a section not listed counts as the median), scaled by how fast
the finished sections ran compared with their typical time.  Sections report what they are
doing with ``ctx.step("...")``.

>>> import io
>>> class Tty(io.StringIO):
...     def isatty(self):
...         return True
>>> err = Tty()
>>> p = TourProgress(["s10_kernels", "s20_montecarlo"], quick=True, stream=err, interval=None)
>>> p.start_section(0, "Kernels"); p.step("NNGP"); p.redraw()
>>> "[1/2] Kernels · NNGP" in err.getvalue() and "ETA" in err.getvalue()
True
>>> p.clear(); p.close()
>>> silent = io.StringIO()                       # not a terminal: nothing is written
>>> q = TourProgress(["s10_kernels"], stream=silent); q.start_section(0, "Kernels"); q.redraw(); q.close()
>>> silent.getvalue()
''
"""

from __future__ import annotations

import statistics
import sys
import threading
import time

__all__ = ["TourProgress", "TYPICAL_SECONDS", "format_seconds"]

#: typical seconds per section, (quick, full); only used to estimate the time left.  The quick
#: column is ``perturb tour --quick`` measured on the 2-core development machine under load
#: (about 3 min in all); the full column is an estimate (the longest full section ran ~73 s)
TYPICAL_SECONDS: dict[str, tuple[float, float]] = {
    "s10_kernels": (4, 5),
    "s20_montecarlo": (8, 40),
    "s21_law_sampler": (2, 10),
    "s30_criticality": (55, 73),
    "s40_relu_exact": (9, 40),
    "s50_finite": (24, 45),
    "s60_catapult": (13, 35),
    "s65_ntk_move": (13, 45),
    "s66_ntk_run": (15, 60),
    "s70_ntk": (6, 40),
    "s72_ntk_multi": (30, 50),
    "s80_derivations": (8, 10),
}


def format_seconds(s: float) -> str:
    """``75.2 -> '1m15s'``, ``8.4 -> '8s'``.

    >>> format_seconds(75.2), format_seconds(8.4), format_seconds(3725)
    ('1m15s', '8s', '1h02m')
    """
    s = int(round(max(s, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class TourProgress:
    """A status line for a run of tour sections (see the module docstring).

    ``names`` are the section module names (for the typical durations), ``enabled`` None means
    "when ``stream`` is a terminal"; ``interval`` is the redraw period of the background thread
    (None: no thread, the caller calls :meth:`redraw`).
    """

    def __init__(self, names: list[str], *, quick: bool = False, stream=None, enabled: bool | None = None,
                 interval: float | None = 0.5):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty())   # redraw in place; otherwise one line per event
        self.enabled = self.live if enabled is None else enabled
        col = 0 if quick else 1
        known = [TYPICAL_SECONDS[n][col] for n in names if n in TYPICAL_SECONDS]
        default = statistics.median(known) if known else 10.0
        self.expected = [TYPICAL_SECONDS[n][col] if n in TYPICAL_SECONDS else default for n in names]
        self.n = len(names)
        self.index = -1
        self.active = False
        self.title = ""
        self.step_text = ""
        self.t_section = self.t_start = time.perf_counter()
        self.done_actual = 0.0
        self.done_expected = 0.0
        self._width = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if self.enabled and self.live and interval:
            self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ events
    def start_section(self, index: int, title: str) -> None:
        with self._lock:
            self.index, self.title, self.step_text = index, title, ""
            self.t_section = time.perf_counter()
            self.active = True
        self._event()

    def step(self, text: str) -> None:
        with self._lock:
            self.step_text = text
        self._event()

    def _event(self) -> None:
        if self.live:
            self.redraw()
        elif self.enabled:  # forced on (--progress) without a terminal: plain lines, no \r
            with self._lock:
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def end_section(self) -> float:
        """Record the section's duration (returned) and erase the line."""
        with self._lock:
            took = time.perf_counter() - self.t_section
            if 0 <= self.index < self.n:
                self.done_actual += took
                self.done_expected += self.expected[self.index]
            self.step_text = ""
            self.active = False
        self.clear()
        return took

    # ------------------------------------------------------------------ drawing
    def eta(self) -> float:
        """Estimated seconds left in the whole run."""
        speed = self.done_actual / self.done_expected if self.done_expected > 0 else 1.0
        speed = min(max(speed, 0.25), 4.0)
        in_section = time.perf_counter() - self.t_section
        current = self.expected[self.index] * speed if 0 <= self.index < self.n else 0.0
        rest = sum(self.expected[self.index + 1:]) * speed
        return max(current - in_section, 0.0) + rest

    def line(self) -> str:
        parts = [f"[{self.index + 1}/{self.n}] {self.title}"]
        if self.step_text:
            parts.append(self.step_text)
        parts.append(format_seconds(time.perf_counter() - self.t_section))
        parts.append(f"tour ETA ~{format_seconds(self.eta())}")
        return " · ".join(parts)

    def redraw(self) -> None:
        if not (self.enabled and self.live):
            return
        with self._lock:
            if not self.active:
                return
            text = self.line()
            pad = max(self._width - len(text), 0)
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
            self._width = len(text)

    def clear(self) -> None:
        if not self.enabled or not self._width:
            return
        with self._lock:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.redraw()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.clear()
