"""Benchmark of the Monte Carlo laboratory: networks per second vs raw numpy throughput.

Width 64, depth 10 (ten hidden layers), one input, ReLU.  Three rows:

* ``sample_outputs``: the laboratory (draws explicit weights, forward pass, overflow checks);
* ``raw matmul``: the same stacked matmuls ``(B, 64, 64) @ (B, 64, 1)`` on weights drawn
  beforehand (the issue's reference; target: the laboratory at >= 50% of it);
* ``raw RNG + matmul``: the same, drawing the Gaussian weights inside the loop — the floor
  any explicit-weight simulation pays (most of the cost is the random numbers).

A second table compares the two samplers at widths 512×4 (tanh, C_W = 1), one input and ten
inputs: ``sampler="weights"`` (explicit weight matrices, the reference) and ``sampler="law"``
(each layer's preactivations from their exact Gaussian law given the previous layer; issue
target: ≥ 20× the weights sampler at one input).

Run: ``python benchmarks/bench_montecarlo.py [--samples N]``.
"""

from __future__ import annotations

import argparse
import functools

import numpy as np
from _timing import best

from perturb.montecarlo import chunk_size, sample_ntk, sample_outputs
from perturb.network import Network

WIDTH, DEPTH = 64, 10


_best = functools.partial(best, repeat=3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20_000)
    args = ap.parse_args()
    n = args.samples
    net = Network("relu", widths=(WIDTH,) * DEPTH, C_W=2.0)
    x = np.ones(WIDTH)
    B = chunk_size(net, WIDTH)
    n_chunks = -(-n // B)
    rng = np.random.default_rng(0)
    dims = (WIDTH,) * (DEPTH + 1) + (1,)
    Ws = [rng.standard_normal((B, dims[i + 1], dims[i])) for i in range(len(dims) - 1)]

    def raw_matmul():
        for _ in range(n_chunks):
            h = np.broadcast_to(x[:, None], (B, WIDTH, 1))
            for W in Ws:
                h = np.maximum(np.matmul(W, h), 0.0)

    def raw_rng_matmul():
        r = np.random.default_rng(1)
        for _ in range(n_chunks):
            h = np.broadcast_to(x[:, None], (B, WIDTH, 1))
            for W in Ws:
                h = np.maximum(np.matmul(r.standard_normal(W.shape), h), 0.0)

    rows = [
        ("sample_outputs", _best(lambda: sample_outputs(net, x, n, seed=0))),
        ("raw matmul (weights drawn beforehand)", _best(raw_matmul)),
        ("raw RNG + matmul", _best(raw_rng_matmul)),
        ("sample_ntk (one input)", _best(lambda: sample_ntk(net, x, n // 4, seed=0), repeat=1) * 4),
    ]
    ref, floor = rows[1][1], rows[2][1]
    print(f"width {WIDTH}, depth {DEPTH}, one input, {n} networks, chunk {B}")
    print(f"{'what':<40} {'networks/s':>12} {'vs raw matmul':>14} {'vs RNG+matmul':>14}")
    for name, t in rows:
        print(f"{name:<40} {n / t:>12.0f} {ref / t:>13.0%} {floor / t:>13.0%}")
    samplers()


def samplers() -> None:
    """networks/s of sampler="weights" vs sampler="law" at widths 512×4."""
    net = Network("tanh", widths=(512,) * 4)
    print("\nwidths 512x4, tanh: networks/s by sampler (best of 3)")
    print(f"{'inputs':>6} {'weights':>12} {'law':>12} {'law/weights':>12}")
    for n_inputs, n_w, n_l in ((1, 400, 40_000), (10, 200, 10_000)):
        X = np.random.default_rng(0).standard_normal((n_inputs, 16)) / 4
        tw = _best(lambda: sample_outputs(net, X, n_w, seed=0)) / n_w  # noqa: B023
        tl = _best(lambda: sample_outputs(net, X, n_l, seed=0, sampler="law")) / n_l  # noqa: B023
        print(f"{n_inputs:>6} {1 / tw:>12.0f} {1 / tl:>12.0f} {tw / tl:>11.0f}x")


if __name__ == "__main__":
    main()
