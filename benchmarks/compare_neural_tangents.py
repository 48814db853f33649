"""Infinite-width NNGP + NTK Gram matrices: perturb against neural-tangents, side by side.

Not a dependency of perturb and not in the test suite: run it with a Python that has
``neural-tangents`` and ``jax`` installed and perturb on its path, e.g.

    python -m venv /tmp/venv-nt
    /tmp/venv-nt/bin/pip install neural-tangents==0.6.5 'jax[cpu]==0.4.30' tf2jax==0.3.6
    PYTHONPATH=. /tmp/venv-nt/bin/python benchmarks/compare_neural_tangents.py

(neural-tangents 0.6.5 imports ``jax.core.Jaxpr`` and ``tf2jax``, which newer jax/tf2jax
releases no longer provide; the pins above are a combination that imports.)  Without
neural-tangents the script prints why and exits 0, so ``run_all.py`` and CI are unaffected.

Method: depth ``L`` (default 10) fully connected networks, inputs N points drawn uniformly on the
unit sphere of R^10, the NTK parameterisation (``Dense(W_std=√C_W, b_std=√C_b)`` in
neural-tangents, ``Network(C_W, C_b)`` with λ = C in perturb); 64-bit floats in both
(``jax_enable_x64``).  neural-tangents: ``kernel_fn`` under ``jax.jit`` with
``get=("nngp", "ntk")``, compiled by a first call, the *second and later* calls timed
(``block_until_ready``).  perturb: ``perturb.infinite.kernels`` after a warm-up call on a few
inputs (closed forms compiled).  The machine this runs on may be shared, so the two are timed
**interleaved** (perturb, neural-tangents, perturb, ...; the order alternates every repeat) and
the table reports the **minimum** over ``--repeat`` repeats of each — the run least disturbed by
other load — as wall time and as CPU time of the process (all threads).  ``--single-thread``
pins both to one thread (``PERTURB_NUM_THREADS=1``; XLA's Eigen pool off) and compares the work
done.  The two results are also compared (largest difference relative to the largest entry).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# perturb activation spec, C_W, C_b, and the neural-tangents layer (built lazily)
CASES = {
    "relu": ("relu", 2.0, 0.0, lambda stax: stax.Relu()),
    "erf": ("erf", 1.5, 0.05, lambda stax: stax.Erf()),
    "gelu": ("gelu", 1.5, 0.05, lambda stax: stax.Gelu()),
    "sin": ("sin", 1.5, 0.05, lambda stax: stax.Sin()),
    "cos": ("cos", 1.5, 0.05, lambda stax: stax.Cos()),
    "poly": ("z + z**2/4", 1.0, 0.05, lambda stax: stax.Polynomial([0.0, 1.0, 0.25])),
}


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,3000")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--acts", default="relu,erf,gelu,sin,cos,poly")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--single-thread", action="store_true",
                   help="one thread in both (PERTURB_NUM_THREADS=1, XLA multi-threading off)")
    return p.parse_args(argv)


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main(argv=None) -> int:
    args = _parse(argv)
    if args.single_thread:
        os.environ["PERTURB_NUM_THREADS"] = "1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import jax
        import neural_tangents  # noqa: F401
        from neural_tangents import stax
    except Exception as exc:                      # ImportError, or a jax/neural-tangents mismatch
        print(f"compare_neural_tangents: skipped (neural_tangents not importable: {type(exc).__name__}: {exc})")
        return 0
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from perturb.gaussian.blocks import num_threads
    from perturb.infinite import kernels
    from perturb.network import Network

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# neural-tangents {neural_tangents.__version__}, jax {jax.__version__}, x64; perturb threads "
          f"{num_threads()}, {os.cpu_count()} cores, load average {load:.2f}; depth {args.depth}; "
          f"min of {args.repeat} interleaved repeats{' (single thread)' if args.single_thread else ''}")
    print(f"{'activation':<11} {'N':>5} {'perturb s':>10} {'nt s':>8} {'speed-up':>9} "
          f"{'perturb cpu':>12} {'nt cpu':>8} {'cpu ratio':>10} {'max rel diff':>13}")
    rng = np.random.default_rng(0)
    for name in args.acts.split(","):
        spec, cw, cb, layer = CASES[name]
        net = Network(spec, depth=args.depth, C_W=cw, C_b=cb)
        layers = []
        for _ in range(args.depth):
            layers += [stax.Dense(1, W_std=float(np.sqrt(cw)), b_std=float(np.sqrt(cb))), layer(stax)]
        layers += [stax.Dense(1, W_std=float(np.sqrt(cw)), b_std=float(np.sqrt(cb)))]
        kernel_fn = jax.jit(stax.serial(*layers)[2], static_argnames="get")
        kernels(net, rng.standard_normal((4, 10)))          # compile perturb's closed forms
        for N in (int(s) for s in args.sizes.split(",")):
            X = rng.standard_normal((N, 10))
            X /= np.linalg.norm(X, axis=1, keepdims=True)
            Xj = jnp.asarray(X)

            def nt(kernel_fn=kernel_fn, Xj=Xj):
                out = kernel_fn(Xj, None, ("nngp", "ntk"))
                out[1].block_until_ready()
                return out

            def pt(net=net, X=X):
                return kernels(net, X)

            nt()                                             # jit compilation
            best = {"pt": [np.inf, np.inf], "nt": [np.inf, np.inf]}
            res = {}
            for r in range(args.repeat):
                for key, fn in (("pt", pt), ("nt", nt)) if r % 2 == 0 else (("nt", nt), ("pt", pt)):
                    res[key], w, c = _timed(fn)
                    best[key] = [min(best[key][0], w), min(best[key][1], c)]
            k, (knn, knt) = res["pt"], res["nt"]
            diff = max(float(np.max(np.abs(np.asarray(knn) - k.nngp)) / np.max(np.abs(k.nngp))),
                       float(np.max(np.abs(np.asarray(knt) - k.ntk)) / np.max(np.abs(k.ntk))))
            (pw, pc), (nw, nc) = best["pt"], best["nt"]
            print(f"{name:<11} {N:>5} {pw:>10.3f} {nw:>8.3f} {nw / pw:>8.2f}x {pc:>12.3f} {nc:>8.3f} "
                  f"{nc / pc:>9.2f}x {diff:>13.1e}", flush=True)
            del res, k, knn, knt
    return 0


if __name__ == "__main__":
    sys.exit(main())
