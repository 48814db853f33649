"""``perturb catapult`` — the uv model trained by GD at a given ηλ_0: lazy, catapult or divergent."""

from __future__ import annotations

import sys

from ..errors import PerturbError
from ._common import emit_json, nonneg_int, positive_int

#: bounds on the work (memory ~ width, time ~ width × steps)
MAX_WIDTH = 10_000_000
MAX_STEPS = 1_000_000


def register(sub) -> None:
    p = sub.add_parser(
        "catapult",
        help="uv model (f = v·u/√n, y = 0, x = 1) trained by GD at η = R/λ_0: phase and final λ",
        description="Iterate the exact GD maps of (f, λ) of the uv model, derived symbolically from "
        "the model, starting from u, v ~ N(0, I_n); report the phase (lazy: loss never rises; "
        "catapult: loss rises, λ falls until ηλ < 2, then converges; divergent).",
    )
    p.add_argument("--eta-lambda", dest="eta_lambda", type=float, required=True, metavar="R",
                   help="learning rate in units of 1/λ_0: R = η λ_0 (> 0)")
    p.add_argument("--width", type=positive_int, required=True, metavar="N", help="width n (>= 1)")
    p.add_argument("--steps", type=positive_int, default=1000, metavar="T", help="GD steps at most (default 1000)")
    p.add_argument("--seed", type=nonneg_int, default=0, metavar="S", help="seed of u, v, >= 0 (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..dynamics.catapult import uv_catapult

    if args.width > MAX_WIDTH or args.steps > MAX_STEPS:
        raise PerturbError(f"--width must be at most {MAX_WIDTH} and --steps at most {MAX_STEPS}, "
                           f"got {args.width} and {args.steps}")
    res = uv_catapult(args.eta_lambda, args.width, steps=args.steps, seed=args.seed)
    if args.json:
        emit_json(res.as_dict())
    else:
        print(f"uv model, n = {res.width}, ηλ_0 = {args.eta_lambda:g} (λ_0 = {res.lambda0:.6g}, "
              f"η = {res.eta:.6g}), {res.steps_run} steps")
        print(f"phase: {res.phase}")
        print(f"λ_final = {res.lambda_final:.6g},  ηλ_final = {res.eta_lambda_final:.6g},  "
              f"max loss = {res.loss_max:.6g} (initial {res.loss[0]:.6g})")
    if res.phase != "divergent" and not res.settled:
        print(f"perturb: note: the run has not settled after {res.steps_run} steps "
              "(ηλ ≥ 2 or loss above its initial value); increase --steps", file=sys.stderr)
    return 0
