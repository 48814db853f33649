"""neural-tangents' timing for the architecture benchmark (bench_arch.py), for the comparison in
docs/architectures.md.  Needs neural-tangents (not a perturb dependency); run as

    /work/venv-nt/bin/python benchmarks/nt_arch_timing.py [--n 100] [--depth 5]

(neural-tangents 0.6.5, jax 0.4.30 CPU, float64).  Same network as bench_arch.py: depth × (conv
3×3 SAME, C_W = W_std², C_b = b_std² = 0.1, activation), global average pooling, dense readout,
on N random 8×8×3 images (seed 0).  Prints the first (compiling) and second jitted kernel_fn call (wall and process CPU time)
and writes both kernels to --out for the accuracy comparison.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--acts", default="relu,erf")
    p.add_argument("--out", default=None, help="write the kernels to this .npz")
    args = p.parse_args(argv)
    import jax

    jax.config.update("jax_enable_x64", True)
    from neural_tangents import stax

    X = np.random.default_rng(0).standard_normal((args.n, 8, 8, 3))
    saved = {}
    for a in args.acts.split(","):
        cw = 2.0 if a == "relu" else 1.5
        layer = stax.Relu() if a == "relu" else stax.Erf()
        layers = []
        for _ in range(args.depth):
            layers += [stax.Conv(64, (3, 3), padding="SAME", W_std=math.sqrt(cw), b_std=math.sqrt(0.1)), layer]
        _, _, kernel_fn = stax.serial(*layers, stax.GlobalAvgPool(), stax.Dense(1, W_std=1.0))
        kf = jax.jit(kernel_fn, static_argnames="get")
        t0, c0 = time.perf_counter(), time.process_time()
        k = kf(X, None, get=("nngp", "ntk"))
        k.nngp.block_until_ready()
        t1, c1 = time.perf_counter(), time.process_time()
        k = kf(X, None, get=("nngp", "ntk"))
        k.nngp.block_until_ready()
        t2, c2 = time.perf_counter(), time.process_time()
        print(f"neural-tangents {a}: N={args.n}, depth {args.depth}: first call {t1 - t0:.2f} s wall "
              f"({c1 - c0:.2f} s CPU), second call {t2 - t1:.2f} s wall ({c2 - c1:.2f} s CPU)", flush=True)
        saved[f"{a}_nngp"], saved[f"{a}_ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)
    if args.out:
        np.savez(args.out, **saved)


if __name__ == "__main__":
    main()
