"""Benchmark: fixed points over (C_W, C_b) grids, critical lines, and the mpmath path.

Run: python benchmarks/bench_criticality.py
"""

from __future__ import annotations

import numpy as np
from _timing import best

from perturb.criticality import critical_line, critical_point, fixed_point, fixed_point_grid

_t = best  # one timed call


def main() -> None:
    rows = []
    for act in ("relu", "erf", "tanh"):
        fixed_point_grid(act, 1.5, 0.1)  # warm caches (compilation, q tables)
        for n in (10, 30, 60):
            cw, cb = np.linspace(0.5, 4.5, n)[:, None], np.linspace(0, 2, n)[None, :]
            rows.append((f"fixed_point_grid {act}", f"{n}x{n}", _t(fixed_point_grid, act, cw, cb)))
        rows.append((f"critical_line {act}", "200 C_b", _t(critical_line, act, np.linspace(0, 2, 200))))
        for d in (15, 30):
            rows.append((f"critical_point {act} dps", str(d), _t(critical_point, act, 0.3, dps=d)))
            cw = 1.5 if act == "relu" else 2.0  # ReLU at C_W = 2, C_b > 0 has no finite fixed point
            rows.append((f"fixed_point {act} dps", str(d), _t(fixed_point, act, cw, 0.3, dps=d)))
    print(f"{'case':<32}{'size':>10}{'seconds':>12}")
    for name, size, t in rows:
        print(f"{name:<32}{size:>10}{t:>12.3f}")


if __name__ == "__main__":
    main()
