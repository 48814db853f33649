"""Benchmark: high-precision Gaussian expectations without closed forms (``--dps``; issue 2).

Prints a table: one two-point entry ``<g(z_1) h(z_2)>_K`` at 30 and 50 digits by the lattice
rule (``expect_mpmath(method="lattice")``: aligned trapezoid lattice, Mehler's series for
|ρ| ≤ 1/4, Gauss–Hermite in y for |ρ| -> 1), best of ``--repeat`` CPU-bound wall times, and the
Gram matrices of ``perturb kernel --dps D`` (3 inputs, depth 2: NNGP + NTK, every entry at D
digits).  ``--panels`` adds the Gauss–Legendre panel rule (the previous default; ~20 s per entry
at 30 digits) for comparison.

    python benchmarks/bench_precise.py [--dps 30,50] [--repeat 1] [--panels]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import sympy as sp
from _timing import best


def main(argv=None) -> None:
    from perturb.activations import Z, get_activation
    from perturb.gaussian import expect_mpmath, zvars
    from perturb.infinite import kernels
    from perturb.network import Network

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dps", default="30,50")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--panels", action="store_true", help="also time the panel rule (slow)")
    args = p.parse_args(argv)
    digits = [int(d) for d in args.dps.split(",")]
    z1, z2 = zvars(2)

    def pair(name):
        e = get_activation(name).expr
        return e.subs(Z, z1) * e.subs(Z, z2)

    def cov(a, b, rho):
        c = rho * np.sqrt(a * b)
        return [[a, c], [c, b]]

    cases = [("tanh", "rho=0.30", pair("tanh"), [[0.9, 0.4], [0.4, 1.3]]),
             ("tanh", "rho=0.10", pair("tanh"), cov(1.2, 0.8, 0.1)),
             ("tanh", "rho=0.9999", pair("tanh"), cov(1.2, 0.8, 0.9999)),
             ("gelu", "rho=0.30", pair("gelu"), [[0.9, 0.4], [0.4, 1.3]]),
             ("silu", "rho=-0.6", pair("silu"), cov(1.5, 0.7, -0.6)),
             ("softplus", "rho=0.8", pair("softplus"), cov(1.0, 2.0, 0.8)),
             ("user", "rho=0.5", sp.sympify("z*tanh(log(1+exp(z)))").subs(sp.Symbol("z"), z1)
              * sp.sympify("z*tanh(log(1+exp(z)))").subs(sp.Symbol("z"), z2), cov(1.1, 0.8, 0.5))]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {os.cpu_count()} cores, load average {load:.2f}; seconds = best of {args.repeat}")
    methods = ["lattice", "panels"] if args.panels else ["lattice"]
    print(f"{'integrand':<10} {'K':<11} {'method':<8} " + " ".join(f"{'dps ' + str(d):>9}" for d in digits))
    for name, label, f, K in cases:
        for method in methods:
            cells = []
            for d in digits:
                if method == "panels" and d > 30:
                    cells.append(f"{'-':>9}")
                    continue
                cells.append(f"{best(expect_mpmath, f, K, dps=d, method=method, repeat=args.repeat):9.2f}")
            print(f"{name:<10} {label:<11} {method:<8} " + " ".join(cells))
    X = np.array([[1.0, 0.5, -0.3], [0.2, -1.1, 0.7], [0.9, 0.8, 0.1]])
    print(f"\n{'perturb kernel --dps D (3 inputs, depth 2, NNGP+NTK)':<55} "
          + " ".join(f"{'dps ' + str(d):>9}" for d in digits))
    for act in ("tanh", "silu", "gelu"):
        net = Network(act, depth=2, C_W=1.5, C_b=0.05)
        cells = [f"{best(kernels, net, X, dps=d, repeat=args.repeat):9.2f}" for d in digits]
        note = " (closed form)" if act == "gelu" else ""
        print(f"{act + note:<55} " + " ".join(cells))


if __name__ == "__main__":
    main()
