"""Benchmark: infinite-width NNGP + NTK Gram matrices, depth 10, N random inputs (issue 2).

Prints a table: activation, N, seconds for NNGP+NTK, and the engine used; plus the compile time
of the symbolic-to-numeric step (closed form -> numpy via perturb.compile.compile_expr).

    python benchmarks/bench_kernels.py [--sizes 1000,2000] [--depth 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import sympy as sp


def main(argv=None) -> None:
    from perturb.compile import compile_expr
    from perturb.gaussian import closed_form, zvars
    from perturb.infinite import kernels
    from perturb.network import Network

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,2000")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--acts", default="relu,erf,tanh")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    params = {"relu": (2.0, 0.0), "erf": (1.5, 0.05), "tanh": (1.5, 0.05)}
    print(f"{'activation':<10} {'N':>6} {'depth':>5} {'seconds':>9}  engine")
    for act in args.acts.split(","):
        cw, cb = params.get(act, (1.0, 0.0))
        net = Network(act, depth=args.depth, C_W=cw, C_b=cb)
        kernels(net, rng.standard_normal((8, 10)))          # warm caches (compile once)
        for N in sizes:
            X = rng.standard_normal((N, 10))
            t0 = time.perf_counter()
            k = kernels(net, X)
            dt = time.perf_counter() - t0
            print(f"{act:<10} {N:>6} {args.depth:>5} {dt:>9.3f}  {k.methods[0]}", flush=True)
    z1, z2 = zvars(2)
    a, b, c = sp.symbols("a b c", real=True)
    M = sp.ImmutableMatrix([[a, c], [c, b]])
    print(f"\n{'symbolic -> numeric':<28} {'seconds':>9}")
    for name, f in (("relu <σσ>", sp.Max(z1, 0) * sp.Max(z2, 0)), ("erf <σσ>", sp.erf(z1) * sp.erf(z2)),
                    ("erf' <σ'σ'>", sp.exp(-z1**2) * sp.exp(-z2**2))):
        t0 = time.perf_counter()
        expr = closed_form(f, M)
        t1 = time.perf_counter()
        compile_expr(expr, [a, b, c])
        t2 = time.perf_counter()
        print(f"{name + ' closed form':<28} {t1 - t0:>9.3f}")
        print(f"{name + ' compile':<28} {t2 - t1:>9.3f}")


if __name__ == "__main__":
    main()
