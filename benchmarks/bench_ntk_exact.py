"""Speed of the exact finite-width NTK moments (perturb.ntk_exact, perturb.ntk_exact_leaky).

Run: python benchmarks/bench_ntk_exact.py — one row per task: the work size and the wall time.
"""

from __future__ import annotations

import functools

import sympy as sp
from _timing import best

_best = functools.partial(best, repeat=1)


def main() -> None:
    from perturb.ntk_exact import _relu_layer_int, _relu_layer_sym, ntk_moment, sample_theta
    from perturb.ntk_exact_leaky import _layer, _t_moment, leaky_ntk_moments

    def cold(f):
        def g():
            _relu_layer_int.cache_clear()
            _relu_layer_sym.cache_clear()
            _layer.cache_clear()
            _t_moment.cache_clear()
            return f()
        return g

    rows = []
    for L, n in ((6, 8), (50, 8), (200, 64)):
        rows.append(("ReLU E Θ² exact (Rational)", f"L={L}, n={n}",
                     _best(cold(lambda L=L, n=n: ntk_moment("relu", [n] * L, 2, C_W=2)))))
    rows.append(("ReLU E Θ⁴ exact (Rational)", "L=6, n=8", _best(cold(lambda: ntk_moment("relu", [8] * 6, 4, C_W=2)))))
    nsym = sp.Symbol("n", positive=True)
    for L in (2, 4):
        rows.append(("linear Var Θ, symbolic width n", f"L={L}",
                     _best(cold(lambda L=L: ntk_moment("linear", [nsym] * L, 2)))))
    rows.append(("ReLU E Θ², symbolic width n", "L=3", _best(cold(lambda: ntk_moment("relu", [nsym] * 3, 2)))))
    for L, n in ((6, 8), (4, 32)):
        rows.append(("leaky ReLU E Θ² (mpmath, 30 digits)", f"L={L}, n={n}",
                     _best(cold(lambda L=L, n=n: leaky_ntk_moments([n] * L, [1], alpha=0.2, dps=30)))))
    rows.append(("sample_theta 10^5 samples", "L=20, n=8",
                 _best(lambda: sample_theta("relu", [8] * 20, 10**5, seed=0, C_W=2.0))))

    w = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    print(f"{'task':<{w}}  {'size':<{w2}}  {'time':>10}")
    print("-" * (w + w2 + 14))
    for name, size, t in rows:
        print(f"{name:<{w}}  {size:<{w2}}  {t * 1e3:>8.1f} ms")


if __name__ == "__main__":
    main()
