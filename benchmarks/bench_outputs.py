"""Benchmark: CLI output and warm start (issue 17 items 2–4).

Prints CPU seconds (user + system of the child process; the machine may be shared, so CPU time
is the steadier figure) and wall seconds of:

* ``perturb kernel --json`` and ``--out FILE.npz`` at N = 1000 (ReLU, depth 10) against a Python
  process that only imports perturb and calls ``kernels()`` on the same inputs;
* ``perturb cumulants --activation relu --order 4`` cold (empty cache folder) and warm (the
  compiled derivation read from the on-disk cache), with the outputs compared;
* ``ntk_statistics_multi("gelu", ...)`` at two inputs, in process (second call), with the layer's
  Gaussian atoms batched (``perturb.gaussian.batch``) and one at a time.

    python benchmarks/bench_outputs.py [--n 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(cmd, env=None):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return out.stdout, cpu, wall


def main(argv=None) -> None:
    import numpy as np

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    args = p.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# load average {load:.2f}; CPU = user + system seconds of the child process")
    print(f"{'case':<52} {'CPU s':>7} {'wall s':>7}")
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        X = np.random.default_rng(0).standard_normal((args.n, 10))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        (tmp / "x.json").write_text(json.dumps(X.tolist()))
        lib = ("import json, numpy as np; from perturb.infinite import kernels; from perturb.network import Network; "
               f"kernels(Network('relu', depth=10, C_W=2.0), np.asarray(json.load(open({str(tmp / 'x.json')!r}))))")
        base = ["perturb", "kernel", "--activation", "relu", "--depth", "10", "--cw", "2", "--inputs", str(tmp / "x.json")]
        rows = [(f"import + kernels() (N = {args.n})", [py, "-c", lib]),
                (f"perturb kernel --json (N = {args.n})", base + ["--json"]),
                (f"perturb kernel --out k.npz (N = {args.n})", base + ["--out", str(tmp / "k.npz")])]
        for name, cmd in rows:
            _, cpu, wall = _child(cmd)
            print(f"{name:<52} {cpu:>7.2f} {wall:>7.2f}", flush=True)
        env = dict(os.environ, PERTURB_CACHE_DIR=str(tmp / "cache"))
        env.pop("PERTURB_CACHE", None)
        cum = ["perturb", "cumulants", "--activation", "relu", "--cw", "2", "--widths", "30,30,30",
               "--x", "1,0.5,-0.3", "--order", "4"]
        outs = []
        for name in ("cumulants relu order 4, cold cache", "cumulants relu order 4, warm cache"):
            out, cpu, wall = _child(cum, env)
            outs.append(out)
            print(f"{name:<52} {cpu:>7.2f} {wall:>7.2f}", flush=True)
        print(f"# warm output identical to cold: {outs[0] == outs[1]}")

    import perturb.ntk.multi as multi
    from perturb.gaussian import expect

    Xn = np.array([[1.0, 0.5, -0.3], [0.2, -0.7, 0.4]])
    multi.ntk_statistics_multi("gelu", [30, 30, 30], Xn, C_W=1.5)          # derive/compile once
    for name in ("batched", "one at a time"):
        if name == "one at a time":
            multi.expect_batch = lambda items, method="auto": [float(expect(f, K, method=method)) for f, K in items]
        best = float("inf")
        for _ in range(3):
            c = time.process_time()
            multi.ntk_statistics_multi("gelu", [30, 30, 30], Xn, C_W=1.5)
            best = min(best, time.process_time() - c)
        print(f"{'ntk_statistics_multi gelu, 2 inputs, ' + name:<52} {best:>7.2f} {'':>7}", flush=True)


if __name__ == "__main__":
    main()
