"""``perturb exact`` — the exact one-input law of a network output, any activation (density evolution).

    perturb exact --activation gelu --cw 2 --cb 0 --widths 8,8,8,8,8,8,8,8 --x 1 \\
                  [--resolution R] [--tol T] [--tail t1,t2] [--density FILE.png|FILE.json] --json

prints ``{"moments": {"2", "4", "6", "8"}, "cumulants": {...}, "error": {"moments": {...},
"cumulants": {...}, "log_mean", "log_var", ...}, "p_zero", "log_mean", "log_var", "method",
"resolution", "seconds"}`` (κ4 is the full fourth cumulant, as in ``perturb cumulants``;
``log_mean``/``log_var`` are those of log Σ^{(L)} given Σ^{(L)} > 0; ``error`` holds absolute
error estimates).  ``--tail`` adds ``"tail"``: P[|z| > t] and its error.  ``--tol T`` refuses
(exit 2) when the relative error estimate of a moment exceeds T, naming ``--resolution``.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ._common import add_network_args, emit_json, float_list, width_list

#: the default relative accuracy demanded of the moments (--tol)
DEFAULT_TOL = 1e-6


def register(sub) -> None:
    p = sub.add_parser("exact", help="exact one-input law of an output for any activation (density "
                                     "evolution of the Σ chain): moments, cumulants, density, tails",
                       description="Density evolution of the exact one-input Markov chain "
                       "Σ^{(ℓ-1)} → Σ^{(ℓ)}, with an error estimate from two resolutions.")
    add_network_args(p)
    p.add_argument("--widths", type=width_list, required=True, help="hidden widths n_1..n_L, e.g. 8,8,8")
    p.add_argument("--x", type=float_list, required=True, help="one input vector (n0 = its length)")
    p.add_argument("--resolution", type=float, default=1.0,
                   help="resolution level R in [1, 16] of the coarser of two runs (time ~ R^2; default 1)")
    p.add_argument("--tol", type=float, default=DEFAULT_TOL,
                   help=f"refuse when a moment's relative error estimate exceeds TOL (default {DEFAULT_TOL:g})")
    p.add_argument("--tail", type=float_list, default=None, help="thresholds t > 0: add P[|z| > t]")
    p.add_argument("--density", metavar="FILE", default=None,
                   help="write the density of z to FILE (.png: a plot; .json: points and values)")
    p.add_argument("--json", action="store_true", help="print JSON (the default output)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .._io import check_writable_file
    from ..errors import PerturbError
    from ..exact import exact_law

    if not (math.isfinite(args.tol) and args.tol > 0):
        raise PerturbError(f"--tol must be a positive number, got {args.tol}")
    if args.tail is not None and any(t <= 0 for t in args.tail):
        raise PerturbError(f"--tail thresholds must be > 0, got {args.tail}")
    if args.density is not None:
        if not args.density.endswith((".png", ".json")):
            raise PerturbError(f"--density needs a .png or .json file, got {args.density!r}")
        check_writable_file(args.density, "--density")
    law = exact_law(args.activation, args.widths, args.x, C_W=args.cw, C_b=args.cb,
                    resolution=args.resolution, progress=None)
    worst = max(law.error["moments"][M] / abs(law.moments[M]) for M in law.moments)
    if worst > args.tol:
        raise PerturbError(f"the moments' relative error estimate {worst:.2g} exceeds --tol {args.tol:g} "
                           f"at --resolution {args.resolution:g}; raise --resolution (time grows ~ R^2) "
                           "or loosen --tol")
    out = {
        "moments": {str(M): v for M, v in law.moments.items()},
        "cumulants": {str(M): v for M, v in law.cumulants.items()},
        "error": {"moments": {str(M): v for M, v in law.error["moments"].items()},
                  "cumulants": {str(M): v for M, v in law.error["cumulants"].items()},
                  **{k: float(v) for k, v in law.error.items() if k not in ("moments", "cumulants")}},
        "p_zero": law.p_zero,
        "log_mean": law.log_mean,
        "log_var": law.log_var,
        "method": law.method,
        "resolution": law.resolution,
        "seconds": law.seconds,
    }
    if args.tail is not None:
        val, err = law.tail(args.tail)
        out["tail"] = {"t": args.tail, "p": val, "error": err}
    if args.density is not None:
        _write_density(law, args.density)
        out["density_file"] = args.density
    emit_json(out)
    return 0


def _write_density(law, path: str) -> None:
    from .._io import atomic_write, atomic_write_text

    sd = math.sqrt(law.moments[2])
    z = np.linspace(-6 * sd, 6 * sd, 601)
    z = z[z != 0]
    dens, err = law.density(z)
    if path.endswith(".json"):
        atomic_write_text(path, json.dumps({"z": z.tolist(), "density": dens.tolist(), "error": err.tolist(),
                                            "p_zero": law.p_zero}) + "\n")
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.semilogy(z, np.maximum(dens, 1e-300), "k-", lw=1.3, label="exact (density evolution)")
    g = np.exp(-z * z / (2 * law.moments[2])) / math.sqrt(2 * math.pi * law.moments[2])
    ax.semilogy(z, g, "r--", lw=1, label="Gaussian, same variance")
    ax.set_ylim(max(1e-8, float(dens.min())), None)
    ax.set_xlabel("z")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)
