"""``perturb verify QUANTITY --claim EXPR``: check a hand calculation (exit 0 holds, 1 not, 2 bad input)."""

from __future__ import annotations

import argparse

from ._common import width_list


def register(sub) -> None:
    p = sub.add_parser("verify", help="verify a hand-derived formula against the engine",
                       description="Compare a claimed expression for a named quantity (V, G1, K) with the engine's "
                                   "derivation: exit 0 when it holds, 1 when it does not, 2 for a claim that "
                                   "cannot be parsed or uses unknown names.")
    p.add_argument("quantity", help="V, G1 or K")
    p.add_argument("--claim", required=True, help="SymPy syntax (E(s**4), chi, r, V, ...) or LaTeX subset")
    p.add_argument("--activation", default="generic", help="generic (default) or a concrete activation")
    p.add_argument("--mc", action="store_true", help="also compare with Monte Carlo networks (needs --widths)")
    p.add_argument("--widths", type=width_list, default=None, help="hidden widths for --mc, e.g. 10,10")
    p.add_argument("--cw", type=float, default=1.5, help="C_W for --mc (default 1.5)")
    p.add_argument("--cb", type=float, default=0.0, help="C_b for --mc (default 0)")
    p.add_argument("--samples", type=int, default=200_000, help="Monte Carlo networks (default 200000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import PerturbError
    from ..verify import monte_carlo_verdict, verify_claim

    if args.mc and not args.widths:
        raise PerturbError("--mc needs --widths (e.g. --widths 10,10)")
    res = verify_claim(args.quantity, args.claim, activation=args.activation)
    print("\n".join(res.lines))
    print("verdict:", "equal" if res.holds else "not equal")
    ok = res.holds
    if args.mc:
        pred, est, v = monte_carlo_verdict(args.quantity, args.claim, args.widths, activation=args.activation,
                                           C_W=args.cw, C_b=args.cb, samples=args.samples, seed=args.seed)
        print(v.report(f"Monte Carlo ({args.samples} networks, widths {args.widths}, seed {args.seed}) vs the claim"))
        ok = ok and v.passed
    return 0 if ok else 1
