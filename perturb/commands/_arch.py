"""``perturb kernel --arch SPEC.json --inputs FILE.json``: kernels of conv/pool/residual architectures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import PerturbError
from ._common import emit_json


def _read_json(path: str, what: str):
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PerturbError(f"cannot read {what} file '{path}': {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PerturbError(f"{what} file '{path}' is not valid JSON: {exc.msg} (line {exc.lineno})") from None


def _check_numbers(x, path):
    if isinstance(x, list):
        if not x:
            raise PerturbError(f"inputs file '{path}' contains an empty list")
        for v in x:
            _check_numbers(v, path)
    elif isinstance(x, bool) or not isinstance(x, (int, float)):
        raise PerturbError(f"inputs must be numbers; got {x!r} in '{path}'")


def run_arch(args) -> int:
    """Run ``perturb kernel`` with ``--arch``: one API call, one emit."""
    from ..arch import Architecture, kernels

    for flag, val in (("--activation", args.activation), ("--depth", args.depth), ("--lw", args.lw),
                      ("--lb", args.lb)):
        if val is not None:
            raise PerturbError(f"{flag} does not apply with --arch: activations, variances and depth come "
                               "from the spec (NTK parameterisation)")
    if args.latex:
        raise PerturbError("--latex is not available with --arch")
    spec = _read_json(args.arch, "architecture spec")
    arch = Architecture.from_spec(spec)
    data = _read_json(args.inputs, "inputs")
    if not isinstance(data, list) or not data:
        raise PerturbError(f"inputs file '{args.inputs}' must hold a non-empty list of inputs "
                           "(N×d vectors, N×W×C sequences or N×H×W×C images)")
    _check_numbers(data, args.inputs)
    out_path = None
    if getattr(args, "out", None) is not None:          # checked before the work
        from ..arch.fold import ntk_defined
        from ._gram_out import check_gram_out

        out_path = check_gram_out(args.out, dps=args.dps, ntk_defined=ntk_defined(arch))
    res = kernels(arch, data, dps=args.dps, block=getattr(args, "block", None))
    if res.ntk is None:
        print("perturb: note: an activation's derivative is a Dirac delta; the NTK is undefined and ntk is null",
              file=sys.stderr)
    if out_path is not None:
        from ._gram_out import write_gram_and_report

        write_gram_and_report(out_path, res.nngp, res.ntk, json_mode=args.json)
        if not args.json:
            return 0
    if args.json:
        emit_json(res.as_dict(), dps=args.dps)
        return 0
    from ._common import to_jsonable

    print(f"architecture of {len(arch.layers)} layers; {', '.join(res.methods)}")
    for name, M in (("NNGP", res.nngp), ("NTK", res.ntk)):
        print(f"{name}:")
        if M is None:
            print("  undefined")
            continue
        for r in to_jsonable(M, args.dps):
            print("  " + "  ".join(f"{v}" if isinstance(v, str) else f"{v: .12g}" for v in r))
    return 0
