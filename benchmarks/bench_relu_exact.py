"""Speed of the exact ReLU statistics (perturb.relu_exact).  Run: python benchmarks/bench_relu_exact.py

Prints one row per task: the work size and the wall time (best of a few repeats).
"""

from __future__ import annotations

import functools

import numpy as np
from _timing import best

_best = functools.partial(best, repeat=3)


def main() -> None:
    from perturb.relu_exact import (
        chi2_binomial_moment,
        lognormal_error,
        moment_symbolic,
        relu_output_law,
    )

    rows = []
    for ws in ((8, 8, 8), (100,) * 10, (1000,) * 50):
        def exact_moments(ws=ws):
            chi2_binomial_moment.cache_clear()
            law = relu_output_law(ws, [1.0, 0.5])
            for M in (2, 4, 6, 8):
                law.moment(M)
        rows.append(("moments M=2..8 (Fraction)", f"L={len(ws)}, n={ws[0]}", _best(exact_moments)))
    rows.append(("symbolic E z^8, 5 symbolic widths", "SymPy", _best(lambda: moment_symbolic(8, 5), repeat=1)))
    for ws in ((8, 8, 8), (100,) * 10, (1000,) * 50):
        law = relu_output_law(ws, [1.0])
        rows.append(("log_moments (mpmath, 30 digits)", f"L={len(ws)}, n={ws[0]}",
                     _best(lambda law=law: law.log_moments(dps=30), repeat=1)))
    for ws in ((2, 3), (8, 8, 8)):
        law = relu_output_law(ws, [1.0])
        terms = len(law._multisets(10 ** 6))
        rows.append(("density, Meijer-G mixture, 1 point, 30 digits", f"{terms} terms (widths {ws})",
                     _best(lambda law=law: law.density(1.0, dps=30), repeat=1)))
    z = np.linspace(-4, 4, 1000)
    for ws in ((8, 8, 8), (20,) * 20, (200,) * 50):
        law = relu_output_law(ws, [1.0])
        rows.append(("density_numpy, 1000 points", f"L={len(ws)}, n={ws[0]}",
                     _best(lambda law=law: law.density_numpy(z), repeat=2)))
    rows.append(("lognormal_error", "L=20, n=20", _best(lambda: lognormal_error((20,) * 20), repeat=1)))

    w = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    print(f"{'task':<{w}}  {'size':<{w2}}  {'time':>10}")
    print("-" * (w + w2 + 14))
    for name, size, t in rows:
        print(f"{name:<{w}}  {size:<{w2}}  {t * 1e3:>8.1f} ms")


if __name__ == "__main__":
    main()
