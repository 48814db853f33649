"""Speed of the finite-width engine (perturb.finite).  Run: python benchmarks/bench_finite.py

Targets from the issue: derive one-input order 2 for a generic activation in < 10 s; ReLU order
4 in < 60 s; the order-1 kurtosis of tanh on a 10⁶-point (C_W, C_b) grid in seconds.
Derivation times are cold (fresh layer maps, caches cleared).
"""

from __future__ import annotations

import numpy as np
from _timing import best

_time = best  # one timed (cold) call


def main() -> None:
    from perturb.finite import FiniteWidth
    from perturb.finite.layer import LayerMap, layer_map

    rows = []

    def derive(n_inputs, order):
        lm = LayerMap(n_inputs=n_inputs, order=order)
        for a in lm.multi_indices():
            lm.moment(a)

    for order in (1, 2, 3, 4):
        rows.append((f"derive layer map, generic σ, 1 input, order {order}", "", _time(lambda o=order: derive(1, o))))
    rows.append(("derive layer map, generic σ, 2 inputs, order 1", "", _time(lambda: derive(2, 1))))
    layer_map.cache_clear()
    rows.append(("ReLU order 4: derive + exact SymPy fold, L = 3 symbolic widths", "",
                 _time(lambda: FiniteWidth("relu", depth=3, order=4).symbolic(C_W=2, C_b=0))))
    for side in (100, 1000):
        cw = np.linspace(0.5, 2.5, side)[:, None]
        cb = np.linspace(0.0, 0.5, side)[None, :]
        fw = FiniteWidth("tanh", depth=3, order=1)
        fw.evaluate(K1=1.0, widths=[30] * 3, C_W=1.0, C_b=0.0)  # compile once
        t = _time(lambda fw=fw, cw=cw, cb=cb: fw.evaluate(K1=cw + cb, widths=[30] * 3, C_W=cw, C_b=cb).total_cumulant(4))
        rows.append(("tanh order-1 kurtosis, L = 3, (C_W, C_b) grid", f"{side * side:,} points", t))
    fw = FiniteWidth("tanh", depth=6, order=3)
    fw.evaluate(K1=1.0, widths=[30] * 6, C_W=1.0)
    rows.append(("tanh order 3, L = 6, one point (compiled)", "", _time(
        lambda: fw.evaluate(K1=1.0, widths=[30] * 6, C_W=1.0))))
    rows.append(("tanh order 2, L = 3, one point at 30 digits (mpmath)", "", _time(
        lambda: FiniteWidth("tanh", depth=3, order=2).evaluate(K1=1.0, widths=[30] * 3, C_W=1.0, dps=30))))
    w = max(len(r[0]) for r in rows)
    print(f"{'task':<{w}}  {'size':>16}  {'seconds':>9}")
    for name, size, t in rows:
        print(f"{name:<{w}}  {size:>16}  {t:>9.3f}")


if __name__ == "__main__":
    main()
