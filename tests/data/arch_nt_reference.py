"""Reference NNGP/NTK values of conv/pool/residual architectures from neural-tangents.

Provenance of ``tests/data/arch_nt_reference.npz`` (neural-tangents 0.6.5, jax 0.4.30, float64):

    /work/venv-nt/bin/python tests/data/arch_nt_reference.py

neural-tangents is not a dependency of perturb; this script only regenerates the stored arrays.
Each case is a perturb architecture spec (the JSON of ``perturb kernel --arch``) translated to
``neural_tangents.stax`` layer by layer: dense -> Dense(W_std=√C_W, b_std=√C_b), conv -> Conv
(stride 1), act -> Relu/Erf/LeakyRelu/Abs/Gelu/Sin, avg_pool -> AvgPool(window, strides=window,
'VALID'), global_avg_pool -> GlobalAvgPool, flatten -> Flatten, residual -> serial(FanOut(2),
parallel(Identity(), block), FanInSum()); NTK parameterisation throughout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

CASES = [
    # 2-D conv, SAME, relu, biases, global average pooling
    ([{"type": "conv", "filter": [3, 3], "padding": "SAME", "C_W": 2.0, "C_b": 0.1},
      {"type": "act", "name": "relu"},
      {"type": "conv", "filter": [3, 3], "padding": "SAME", "C_W": 2.0, "C_b": 0.05},
      {"type": "act", "name": "relu"},
      {"type": "global_avg_pool"},
      {"type": "dense", "C_W": 1.5, "C_b": 0.2}], (4, 5, 5, 2)),
    # 2-D conv, VALID, erf, avg_pool, flatten
    ([{"type": "conv", "filter": [2, 3], "padding": "VALID", "C_W": 1.7, "C_b": 0.3},
      {"type": "act", "name": "erf"},
      {"type": "conv", "filter": [2, 2], "padding": "SAME", "C_W": 1.2, "C_b": 0.0},
      {"type": "act", "name": "erf"},
      {"type": "avg_pool", "window": [2, 2], "padding": "VALID"},
      {"type": "flatten"},
      {"type": "dense", "C_W": 1.0, "C_b": 0.1}], (4, 6, 7, 3)),
    # 1-D conv, residual block, flatten (pixel-diagonal path)
    ([{"type": "conv", "filter": [3], "padding": "SAME", "C_W": 1.0, "C_b": 0.0},
      {"type": "residual", "block": [{"type": "act", "name": "relu"},
                                     {"type": "conv", "filter": [3], "padding": "SAME", "C_W": 2.0, "C_b": 0.1}]},
      {"type": "residual", "block": [{"type": "act", "name": "relu"},
                                     {"type": "conv", "filter": [2], "padding": "SAME", "C_W": 1.0, "C_b": 0.0}]},
      {"type": "act", "name": "relu"},
      {"type": "flatten"},
      {"type": "dense", "C_W": 2.0, "C_b": 0.0}], (4, 7, 2)),
    # 2-D ResNet-like: residual conv blocks, avg_pool, GAP, leaky relu and gelu
    ([{"type": "conv", "filter": [3, 3], "padding": "SAME", "C_W": 1.0, "C_b": 0.1},
      {"type": "residual", "block": [{"type": "act", "name": "leaky_relu:0.1"},
                                     {"type": "conv", "filter": [3, 3], "padding": "SAME", "C_W": 1.5, "C_b": 0.0},
                                     {"type": "act", "name": "gelu"},
                                     {"type": "conv", "filter": [1, 1], "padding": "SAME", "C_W": 1.0, "C_b": 0.1}]},
      {"type": "avg_pool", "window": [2, 2], "padding": "VALID"},
      {"type": "act", "name": "abs"},
      {"type": "global_avg_pool"},
      {"type": "dense", "C_W": 1.0, "C_b": 0.0}], (3, 4, 5, 2)),
    # vectors: dense + sin + residual dense
    ([{"type": "dense", "C_W": 1.3, "C_b": 0.2},
      {"type": "act", "name": "sin"},
      {"type": "dense", "C_W": 1.0, "C_b": 0.1},
      {"type": "residual", "block": [{"type": "act", "name": "erf"}, {"type": "dense", "C_W": 2.0, "C_b": 0.0}]},
      {"type": "flatten"},
      {"type": "dense", "C_W": 1.0, "C_b": 0.0}], (5, 4)),
    # 1-D: VALID conv, pooling of sequences, then conv + relu + global pooling
    ([{"type": "conv", "filter": [2], "padding": "VALID", "C_W": 1.4, "C_b": 0.2},
      {"type": "act", "name": "erf"},
      {"type": "avg_pool", "window": [2], "padding": "VALID"},
      {"type": "conv", "filter": [3], "padding": "SAME", "C_W": 2.0, "C_b": 0.0},
      {"type": "act", "name": "relu"},
      {"type": "global_avg_pool"},
      {"type": "dense", "C_W": 1.0, "C_b": 0.1}], (4, 9, 3)),
]


def to_stax(spec, stax, last=True):
    layers = []
    for i, d in enumerate(spec):
        t = d["type"]
        final = last and i == len(spec) - 1
        width = 1 if final else 64
        b = math.sqrt(d.get("C_b", 0.0)) if d.get("C_b", 0.0) else None
        if t == "dense":
            layers.append(stax.Dense(width, W_std=math.sqrt(d["C_W"]), b_std=b))
        elif t == "conv":
            f = tuple(d["filter"])
            dn = ("NHWC", "HWIO", "NHWC") if len(f) == 2 else ("NWC", "WIO", "NWC")
            layers.append(stax.Conv(width, f, strides=None, padding=d["padding"], W_std=math.sqrt(d["C_W"]),
                                    b_std=b, dimension_numbers=dn))
        elif t == "act":
            name = d["name"]
            if name == "relu":
                layers.append(stax.Relu())
            elif name == "erf":
                layers.append(stax.Erf())
            elif name == "abs":
                layers.append(stax.Abs())
            elif name == "gelu":
                layers.append(stax.Gelu())
            elif name == "sin":
                layers.append(stax.Sin())
            elif name.startswith("leaky_relu:"):
                layers.append(stax.LeakyRelu(float(name.split(":")[1])))
            else:
                raise ValueError(name)
        elif t == "avg_pool":
            w = tuple(d["window"])
            layers.append(stax.AvgPool(w, strides=w, padding="VALID"))
        elif t == "global_avg_pool":
            layers.append(stax.GlobalAvgPool())
        elif t == "flatten":
            layers.append(stax.Flatten())
        elif t == "residual":
            block = stax.serial(*to_stax(d["block"], stax, last=False))
            layers.append(stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), block), stax.FanInSum()))
        else:
            raise ValueError(t)
    return layers


def main():
    import jax

    jax.config.update("jax_enable_x64", True)
    from neural_tangents import stax

    rng = np.random.default_rng(20261202)
    out = {}
    for i, (spec, shape) in enumerate(CASES):
        X = rng.standard_normal(shape)
        _, _, kernel_fn = stax.serial(*to_stax(spec, stax))
        k = kernel_fn(X, None, ("nngp", "ntk"))
        out[f"case{i}_spec"] = np.array(json.dumps(spec))
        out[f"case{i}_X"] = X
        out[f"case{i}_nngp"] = np.asarray(k.nngp, dtype=float)
        out[f"case{i}_ntk"] = np.asarray(k.ntk, dtype=float)
        print(i, shape, np.asarray(k.nngp).shape)
    np.savez_compressed(Path(__file__).with_suffix(".npz"), **out)


if __name__ == "__main__":
    main()
