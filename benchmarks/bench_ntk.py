"""Benchmark of perturb.ntk: derivation, numpy / mpmath / exact folds, vectorised sweeps.

    python benchmarks/bench_ntk.py

prints a table of wall times (best of a few repeats; the derivation is timed once, uncached).
"""

from __future__ import annotations

import time

import numpy as np


def best(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    from perturb.ntk.chain import _compiled, ntk_statistics, ntk_statistics_exact
    from perturb.ntk.derive import derive_ntk_layer_map

    rows = []
    t0 = time.perf_counter()
    derive_ntk_layer_map()
    rows.append(("derive the order-1 NTK layer map (generic σ, SymPy)", time.perf_counter() - t0))
    for act in ("relu", "tanh", "gelu"):
        t0 = time.perf_counter()
        _compiled(act)
        rows.append((f"compile the map for {act}", time.perf_counter() - t0))
    for act, cw in (("relu", 2.0), ("tanh", 1.0), ("gelu", 1.5)):
        rows.append((f"numpy fold, {act}, L = 10",
                     best(lambda act=act, cw=cw: ntk_statistics(act, [64] * 10, [1.0], C_W=cw))))
    cws = np.linspace(0.5, 2.5, 1000)
    rows.append(("numpy fold, tanh, L = 10, 1000 values of C_W (vectorised)",
                 best(lambda: ntk_statistics("tanh", [64] * 10, [1.0], C_W=cws))))
    rows.append(("numpy fold, relu, L = 10, 1000 values of C_W (vectorised)",
                 best(lambda: ntk_statistics("relu", [64] * 10, [1.0], C_W=cws + 1))))
    rows.append(("mpmath fold, relu, L = 10, dps = 50",
                 best(lambda: ntk_statistics("relu", [64] * 10, [1.0], C_W=2.0, dps=50), 1)))
    rows.append(("mpmath fold, tanh, L = 3, dps = 30",
                 best(lambda: ntk_statistics("tanh", [64] * 3, [1.0], C_W=1.0, dps=30), 1)))
    rows.append(("exact SymPy fold, relu, L = 10",
                 best(lambda: ntk_statistics_exact("relu", [64] * 10, [1], C_W=2, C_b=0), 1)))
    rows.extend(order2_rows())
    w = max(len(r[0]) for r in rows)
    print(f"{'task':<{w}}  {'seconds':>9}")
    print("-" * (w + 11))
    for name, t in rows:
        print(f"{name:<{w}}  {t:>9.4f}")


def order2_rows() -> list[tuple[str, float]]:
    """Issue 13: order-1/n² NTK statistics, tanh, L = 3, one input: cold (derive + compile + fold), then cached.

    "Cold" derives the map without the disk cache (``derive_layer_map.uncached``), "cached" is a
    new process's path: the map read from the disk cache, compiled, folded.
    """
    import os
    import subprocess
    import sys

    from perturb.engine.fold import _compiled, ntk_series
    from perturb.engine.layermap import _derive_layer_map, derive_layer_map

    rows = []
    t0 = time.perf_counter()
    _derive_layer_map(2)
    rows.append(("derive the order-2 NTK map (generic σ, no cache)", time.perf_counter() - t0))
    derive_layer_map(2)                              # fills the disk cache
    t0 = time.perf_counter()
    _compiled(2, "tanh")
    rows.append(("compile the order-2 map for tanh", time.perf_counter() - t0))
    rows.append(("numpy fold at order 2, tanh, L = 3",
                 best(lambda: ntk_series("tanh", [64] * 3, [1.0], C_W=1.0, order=2))))
    cmd = [sys.executable, "-m", "perturb", "ntk-stats", "--activation", "tanh", "--cw", "1", "--widths", "64,64,64",
           "--x", "1", "--order", "2", "--json"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ))
    rows.append(("ntk-stats --order 2, tanh, L = 3, new process, map cached", time.perf_counter() - t0))
    return rows


if __name__ == "__main__":
    main()
