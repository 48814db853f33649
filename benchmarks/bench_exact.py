"""Speed of the exact one-input law by density evolution (perturb.exact).  Run: python benchmarks/bench_exact.py

The issue-15 benchmark: GELU, C_W = 2, eight hidden layers of width 8.  One row per resolution R
(each call runs R and 2R): wall time, CPU time, and the largest relative error estimate of the
moments E z², E z⁸ (the estimate is conservative; see docs/exact.md).  Also ReLU (the product
path and the density evolution) and tanh.
"""

from __future__ import annotations

import time

from _timing import best


def main() -> None:
    from perturb.exact import exact_law

    rows = []
    cases = [("gelu", 2.0, [8] * 8, "auto", (1.0, 2.0)), ("tanh", 1.0, [6] * 6, "auto", (1.0,)),
             ("relu", 2.0, [8] * 8, "auto", (1.0,)), ("relu", 2.0, [8] * 8, "evolution", (1.0, 2.0))]
    for act, cw, widths, method, levels in cases:
        for R in levels:
            out = {}

            def job(act=act, cw=cw, widths=widths, method=method, R=R, out=out):
                c0 = time.process_time()
                out["law"] = exact_law(act, widths, [1.0], C_W=cw, resolution=R, method=method, progress=False)
                out["cpu"] = time.process_time() - c0

            t = best(job)
            law = out["law"]
            e2 = law.error["moments"][2] / law.moments[2]
            e8 = law.error["moments"][8] / law.moments[8]
            rows.append((f"{act} {method}", f"L={len(widths)}, n={widths[0]}, R={R:g}", t, out["cpu"], e2, e8))
    w = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    print(f"{'task':<{w}}  {'size':<{w2}}  {'wall':>8}  {'cpu':>8}  {'rel err E z²':>12}  {'rel err E z⁸':>12}")
    print("-" * (w + w2 + 52))
    for name, size, t, cpu, e2, e8 in rows:
        print(f"{name:<{w}}  {size:<{w2}}  {t:>6.1f} s  {cpu:>6.1f} s  {e2:>12.2g}  {e8:>12.2g}")


if __name__ == "__main__":
    main()
