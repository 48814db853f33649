"""Benchmarks of perturb.dynamics: symbolic derivation of GD maps and catapult iteration.

Run: ``python benchmarks/bench_dynamics.py`` (prints a table).
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp
from _timing import best

_time = functools.partial(best, repeat=3)  # best of 3


def main() -> None:
    from perturb.dynamics import catapult as cat
    from perturb.dynamics import hierarchy as h

    rows = []
    rows.append(("derive uv maps (f, λ)", _time(lambda: h.uv_maps(), repeat=3), "s"))
    X = sp.Matrix([[1, sp.Rational(-1, 2), 2], [sp.Rational(3, 10), sp.Rational(6, 5), sp.Rational(-7, 10)]])
    m = h.two_layer_linear_model(2, 3, X=X)
    rows.append(("derive two-layer linear maps (N=2, d=3, numeric X)",
                 _time(lambda: h.try_close(m, h.two_layer_linear_variables(m)), repeat=1), "s"))
    rows.append(("derive two-layer linear maps (N=2, d=2, symbolic X)",
                 _time(lambda: h.two_layer_linear_maps(2, 2), repeat=1), "s"))
    cat._compiled()
    rows.append(("uv_catapult R=3, n=1e4, to convergence", _time(lambda: cat.uv_catapult(3.0, 10_000)), "s"))
    rows.append(("uv_catapult R=1.99, n=1e4, 1000 steps",
                 _time(lambda: cat.uv_catapult(1.99, 10_000, steps=1000)), "s"))
    u, v = cat.uv_init(10_000, 0)
    f0, l0 = u @ v / 100.0, (u @ u + v @ v) / 10_000
    Rs = np.linspace(0.5, 5, 10_000)
    t = _time(lambda: cat.uv_iterate(f0, l0, Rs / l0, 10_000, 200), repeat=1)
    rows.append(("uv_iterate 10^4 runs × 200 steps (vectorised)", t, "s"))
    rows.append(("  per run-step", t / (10_000 * 200) * 1e9, "ns"))
    rows.append(("explicit vector GD n=1e4, 200 steps", _time(lambda: cat.uv_gd_vectors(u, v, 1.0, 200)), "s"))
    w = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{w}}  {'time':>10}")
    for name, val, unit in rows:
        print(f"{name:<{w}}  {val:>10.4g} {unit}")


if __name__ == "__main__":
    main()
