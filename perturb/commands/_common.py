"""Shared argument parsing and output helpers for the subcommands."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import mpmath
import numpy as np

from ..errors import PerturbError

#: the largest magnitude of a number given on the command line (inputs, C_W, C_b, η, ...): moments of
#: the output are products over layers of powers of these, and overflow float64 (1e308) long before
#: 1e308 itself; no sensible network needs more
MAX_MAGNITUDE = 1e8


def real(text: str) -> float:
    """Parse a finite number of magnitude at most MAX_MAGNITUDE (argparse ``type``; replaces ``float``)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if abs(v) > MAX_MAGNITUDE:
        raise argparse.ArgumentTypeError(f"{text!r} is too large (at most {MAX_MAGNITUDE:g} in magnitude)")
    return v


def float_list(text: str) -> list[float]:
    """Parse ``"1,0.5,-0.3"`` into floats (argparse ``type``)."""
    toks = text.split(",")
    if any(t.strip() == "" for t in toks) and text.strip():
        raise argparse.ArgumentTypeError(f"empty entry in {text!r}; expected comma-separated numbers like 1,0.5,-0.3")
    try:
        vals = [float(t) for t in toks if t.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one number")
    if not all(math.isfinite(v) for v in vals):
        raise argparse.ArgumentTypeError(f"numbers must be finite, got {text!r}")
    if any(abs(v) > MAX_MAGNITUDE for v in vals):
        raise argparse.ArgumentTypeError(f"numbers must be at most {MAX_MAGNITUDE:g} in magnitude, got {text!r}")
    return vals


def width_list(text: str) -> list[int]:
    """Parse ``"16,16,16"`` into positive integer widths (argparse ``type``)."""
    toks = text.split(",")
    if any(t.strip() == "" for t in toks) and text.strip():
        raise argparse.ArgumentTypeError(f"empty entry in {text!r}; expected comma-separated widths like 16,16,16")
    try:
        vals = [int(t) for t in toks if t.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be comma-separated integers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one width")
    bad = [v for v in vals if v < 1]
    if bad:
        raise argparse.ArgumentTypeError(f"widths must be >= 1, got {bad[0]}")
    return vals


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v}")
    return v


def add_network_args(p: argparse.ArgumentParser, *, activation_default: str | None = None) -> None:
    """--activation, --cw, --cb (the spellings every command shares)."""
    p.add_argument("--activation", required=activation_default is None, default=activation_default,
                   help="activation name (relu, leaky_relu:A, tanh, erf, ...) or SymPy expression in z")
    p.add_argument("--cw", type=float, default=1.0, help="weight variance C_W (default 1)")
    p.add_argument("--cb", type=float, default=0.0, help="bias variance C_b (default 0)")


#: the most digits --dps accepts (mpmath work grows faster than D²; 1000 digits already takes minutes)
MAX_DPS = 1000


def dps_int(text: str) -> int:
    """Parse --dps: an integer 1..MAX_DPS (argparse ``type``)."""
    v = positive_int(text)
    if v > MAX_DPS:
        raise argparse.ArgumentTypeError(f"at most {MAX_DPS} digits, got {v}")
    return v


def add_dps_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dps", type=dps_int, default=None,
                   help=f"evaluate with mpmath at D significant digits (1..{MAX_DPS}); numbers print as strings")


def to_jsonable(value: Any, dps: int | None = None) -> Any:
    """Convert numbers/arrays/mpf (nested) to JSON: floats, or D-digit strings when dps is set."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, dps) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, dps) for v in value]
    if isinstance(value, np.ndarray):
        if value.ndim and not dps and value.dtype.kind in "biuf":    # fast path: no per-element recursion
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                raise PerturbError("result is not finite (inf or nan); refusing to print it as a number")
            return value.tolist()
        return [to_jsonable(v, dps) for v in value.tolist()] if value.ndim else to_jsonable(value.item(), dps)
    if isinstance(value, (mpmath.mpf, mpmath.mpc)):
        return mpmath.nstr(value, dps) if dps else float(value)
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise PerturbError(f"result is not finite ({f}); refusing to print it as a number")
        if dps:
            return mpmath.nstr(mpmath.mpf(f), dps)
        return f
    try:
        import sympy as sp

        if isinstance(value, sp.Basic):
            if value.is_number:
                return to_jsonable(mpmath.mpf(sp.N(value, (dps or 17) + 5)), dps) if dps else float(value)
            return str(value)
    except ImportError:  # pragma: no cover
        pass
    return value


#: JSON with more numbers than this is printed compactly (one line, no spaces)
COMPACT_ABOVE = 10_000


def _count_numbers(data: Any, limit: int = COMPACT_ABOVE) -> int:
    """How many leaves ``data`` holds, counting no further than just past ``limit``."""
    stack, n = [data], 0
    while stack and n <= limit:
        x = stack.pop()
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            if x and not isinstance(x[0], (list, dict)):
                n += len(x)
            else:
                stack.extend(x)
        else:
            n += 1
    return n


def emit_json(obj: Any, dps: int | None = None) -> None:
    """Print ``obj`` as strict JSON (RFC 8259: no NaN/Infinity), all at once or not at all."""
    data = to_jsonable(obj, dps)
    try:   # big payloads (e.g. N×N Gram matrices) compact: indentation would triple their size
        text = (json.dumps(data, indent=2, allow_nan=False) if _count_numbers(data) <= COMPACT_ABOVE
                else json.dumps(data, separators=(",", ":"), allow_nan=False))
    except ValueError:
        raise PerturbError("a result is not finite (inf or nan); refusing to print it as a JSON number") from None
    sys.stdout.write(text + "\n")
