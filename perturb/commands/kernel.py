"""``perturb kernel`` — infinite-width NNGP and NTK Gram matrices of a fully connected network."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import PerturbError
from ._common import MAX_MAGNITUDE, add_dps_arg, add_network_args, emit_json, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "kernel",
        help="infinite-width NNGP and NTK Gram matrices (output layer L+1) on given inputs",
        description="Fold the NNGP/NTK layer maps K' = C_b + C_W <σσ>_K, "
        "Θ' = λ_b + λ_W <σσ>_K + C_W <σ'σ'>_K Θ over K1 = C_b + C_W x·x'/n0 "
        "(PDLT ch. 4 and 7; Jacot et al. 2018). Closed forms where they exist, Mehler series/quadrature otherwise, "
        "mpmath at D digits with --dps.",
    )
    add_network_args(p)
    for a in p._actions:                       # not required with --arch (the spec has them)
        if a.dest == "activation":
            a.required = False
    p.add_argument("--depth", type=positive_int, default=None, metavar="L",
                   help="number of hidden layers L (the output is layer L+1); required without --arch")
    p.add_argument("--arch", default=None, metavar="SPEC.json",
                   help="JSON list of layers (dense, conv, act, avg_pool, global_avg_pool, flatten, residual) "
                   "instead of --activation/--depth; inputs N×d, N×W×C or N×H×W×C (docs: architectures)")
    p.add_argument("--block", type=positive_int, default=None, metavar="B",
                   help="with --arch: inputs per block of the pixel-pair kernel (default: from a 24 MiB budget)")
    p.add_argument("--inputs", required=True, metavar="FILE.json",
                   help="JSON list of input vectors, all of one dimension n0 (with --arch: nested lists N×d, N×W×C or N×H×W×C)")
    p.add_argument("--lw", type=float, default=None, metavar="A", help="λ_W (default: C_W, NTK parameterisation)")
    p.add_argument("--lb", type=float, default=None, metavar="B", help="λ_b (default: C_b)")
    add_dps_arg(p)
    p.add_argument("--latex", action="store_true", help="print the recursion used, as LaTeX")
    p.add_argument("--json", action="store_true", help='print {"nngp": [[...]], "ntk": [[...]]}')
    p.add_argument("--out", default=None, metavar="FILE.npz",
                   help="write the matrices to a numpy file: .npz (arrays 'nngp', 'ntk') or .npy (stacked "
                   "[nngp, ntk], shape (2, N, N)); checked before the work, written atomically")
    p.set_defaults(func=run)


def _read_inputs(path: str):
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PerturbError(f"cannot read inputs file '{path}': {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PerturbError(f"inputs file '{path}' is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, list) or not data or not all(isinstance(r, list) for r in data):
        raise PerturbError(f"inputs file '{path}' must hold a non-empty list of input vectors, e.g. [[1, 0], [0, 1]]")
    dims = {len(r) for r in data}
    if len(dims) != 1:
        raise PerturbError(f"input vectors in '{path}' have different dimensions {sorted(dims)}; all must have one n0")
    for r in data:
        for v in r:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise PerturbError(f"inputs must be numbers; got {v!r} in '{path}'")
            if not (math.isfinite(v) and abs(v) <= MAX_MAGNITUDE):  # json reads NaN/Infinity; 1e308 overflows
                raise PerturbError(f"inputs must be finite numbers (no NaN or Infinity) of magnitude at most {MAX_MAGNITUDE:g}; "
                                   f"got {v!r} in '{path}'")
    return np.asarray(data, dtype=float)


def run(args) -> int:
    from ..infinite import kernels, symbolic_recursion
    from ..network import Network

    if args.arch is not None:
        from ._arch import run_arch

        return run_arch(args)
    if args.activation is None or args.depth is None:
        raise PerturbError("perturb kernel needs --activation and --depth (or --arch SPEC.json)")
    X = _read_inputs(args.inputs)
    net = Network(args.activation, depth=args.depth, C_W=args.cw, C_b=args.cb,
                  lambda_W=args.lw, lambda_b=args.lb)
    out_path = None
    if args.out is not None:
        from ..infinite import _has_delta
        from ._gram_out import check_gram_out

        out_path = check_gram_out(args.out, dps=args.dps, ntk_defined=not _has_delta(net.activation.derivative()))
    latex = symbolic_recursion(net.activation).latex() if args.latex else None
    if args.latex and not args.json and out_path is None:
        print(latex, end="")
        return 0
    res = kernels(net, X, dps=args.dps)
    if res.ntk is None:
        import sys

        print(f"perturb: note: the NTK of '{net.activation.name}' is undefined (its derivative is a "
              "Dirac delta); ntk is null", file=sys.stderr)
    if out_path is not None:
        from ._gram_out import write_gram_and_report

        write_gram_and_report(out_path, res.nngp, res.ntk, json_mode=args.json)
        if not args.json:
            if latex is not None:
                print(latex, end="")
            return 0
    if args.json or not args.latex:
        if args.json:
            out = res.as_dict()
            if latex is not None:
                out["latex"] = latex  # --latex --json: the recursion under a key, stdout stays JSON
            emit_json(out, dps=args.dps)
        else:
            _print_table(net, res, args.dps)
    return 0


def _print_table(net, res, dps) -> None:
    from ..commands._common import to_jsonable

    print(f"{net!r}; {res.methods[0]}")
    for name, M in (("NNGP K^(L+1)", res.nngp), ("NTK Θ^(L+1)", res.ntk)):
        print(f"{name}:")
        if M is None:
            print("  undefined")
            continue
        rows = to_jsonable(M, dps)
        for r in rows:
            print("  " + "  ".join(f"{v}" if isinstance(v, str) else f"{v: .12g}" for v in r))
