"""Benchmark: NNGP + NTK of a conv net on 100 images of 8×8×3 (issue 18 item 5).

depth × (conv 3×3 SAME, C_W = 2 (ReLU) or 1.5 (erf), C_b = 0.1, activation), global average
pooling, dense readout; N random images (seed 0).  Prints wall and process-CPU seconds, the
layout (full pixel-pair kernel, positions, blocks) and the array sizes; with ``--nt FILE.npz``
(written by ``benchmarks/nt_arch_timing.py --out FILE.npz`` under neural-tangents) also the
largest difference from neural-tangents' kernels, relative to the largest entry.

    python benchmarks/bench_arch.py [--n 100] [--depth 5] [--acts relu,erf] [--nt /tmp/nt_bench.npz]

neural-tangents' own timing: ``benchmarks/nt_arch_timing.py`` (run in an environment that has it).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def main(argv=None) -> None:
    from perturb.arch import act, conv, dense, global_avg_pool, kernels, plan, serial

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--acts", default="relu,erf")
    p.add_argument("--block", type=int, default=None, help="inputs per block (default: from the memory budget)")
    p.add_argument("--nt", default=None, help="neural-tangents kernels (.npz from nt_arch_timing.py --out)")
    args = p.parse_args(argv)
    X = np.random.default_rng(0).standard_normal((args.n, 8, 8, 3))
    ref = np.load(args.nt) if args.nt else None
    print(f"{'activation':>10} {'N':>4} {'depth':>5} {'wall s':>8} {'CPU s':>8} {'blocks':>6} "
          f"{'block MiB':>9} {'N×N MiB':>8} {'vs NT (nngp, ntk)':>22}")
    for a in args.acts.split(","):
        cw = 2.0 if a == "relu" else 1.5
        layers = []
        for _ in range(args.depth):
            layers += [conv([3, 3], C_W=cw, C_b=0.1), act(a)]
        net = serial(*layers, global_avg_pool(), dense(1.0))
        pl = plan(net, X.shape, block=args.block)
        t0, c0 = time.perf_counter(), time.process_time()
        k = kernels(net, X, block=args.block)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        diff = ""
        if ref is not None and f"{a}_nngp" in ref.files:
            dn = np.abs(k.nngp - ref[f"{a}_nngp"]).max() / np.abs(ref[f"{a}_nngp"]).max()
            dt = np.abs(k.ntk - ref[f"{a}_ntk"]).max() / np.abs(ref[f"{a}_ntk"]).max()
            diff = f"{dn:.1e}, {dt:.1e}"
        print(f"{a:>10} {args.n:>4} {args.depth:>5} {wall:8.2f} {cpu:8.2f} {pl.blocks:>6} "
              f"{pl.block_bytes / 2**20:9.1f} {pl.full_bytes / 2**20:8.1f} {diff:>22}", flush=True)
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
