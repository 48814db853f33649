"""Benchmark: infinite-width NNGP + NTK Gram matrices, depth 10, N random inputs (issue 2).

Prints a table: activation, N, best-of-``--repeat`` seconds for NNGP+NTK (``kernels()``, first
layer included), the engine used, and — for activations computed by the interpolated Mehler
path (tanh) — the accuracy: the largest error of the NNGP and NTK on a subsample of
``--check`` inputs against the same recursion with every two-point expectation by Mehler's
series and direct 2-D quadrature (the recursion is entrywise, so the subsample's kernels are
exactly the corresponding submatrix), relative to the largest entry.  Then the compile time of
the symbolic-to-numeric step (closed form -> numpy via perturb.compile.compile_expr).

    python benchmarks/bench_kernels.py [--sizes 1000,2000] [--depth 10] [--repeat 3] [--check 40]

Threads: ``PERTURB_NUM_THREADS`` (default: the cores available).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import sympy as sp
from _timing import best


def _reference(net, X):
    """The recursion with the interpolant switched off (Mehler series + direct 2-D quadrature)."""
    import perturb.infinite as inf

    saved = inf.gram_expectations
    inf.gram_expectations = lambda *a, **k: None
    try:
        return inf.kernels(net, X)
    finally:
        inf.gram_expectations = saved


def main(argv=None) -> None:
    from perturb.compile import compile_expr
    from perturb.gaussian import closed_form, zvars
    from perturb.gaussian.blocks import num_threads
    from perturb.infinite import _FAST, kernels
    from perturb.network import Network

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,2000")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--acts", default="relu,erf,gelu,sin,tanh")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--check", type=int, default=40, help="inputs in the accuracy subsample (0: skip)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    params = {"relu": (2.0, 0.0), "erf": (1.5, 0.05), "gelu": (1.5, 0.05), "sin": (1.5, 0.05), "tanh": (1.5, 0.05)}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {num_threads()} threads, {os.cpu_count()} cores, load average {load:.2f}")
    print(f"{'activation':<10} {'N':>6} {'depth':>5} {'seconds':>9} {'max rel err':>12}  engine")
    for act in args.acts.split(","):
        cw, cb = params.get(act, (1.0, 0.0))
        net = Network(act, depth=args.depth, C_W=cw, C_b=cb)
        kernels(net, rng.standard_normal((8, 10)))          # warm caches (compile once)
        for N in sizes:
            X = rng.standard_normal((N, 10))
            k = kernels(net, X)
            dt = best(kernels, net, X, repeat=args.repeat)
            err = ""
            if args.check and k.methods[0] == _FAST:
                sub = np.sort(rng.choice(N, size=min(args.check, N), replace=False))
                ref = _reference(net, X[sub])
                e = max(np.max(np.abs(M[np.ix_(sub, sub)] - R)) / np.max(np.abs(R))
                        for M, R in ((k.nngp, ref.nngp), (k.ntk, ref.ntk)))
                err = f"{e:.1e}"
            print(f"{act:<10} {N:>6} {args.depth:>5} {dt:>9.3f} {err:>12}  {k.methods[0]}", flush=True)
            del k
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
