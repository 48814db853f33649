"""``perturb verify QUANTITY --claim EXPR``: check a hand calculation (exit 0 holds, 1 not, 2 bad input)."""

from __future__ import annotations

import argparse

from ._common import emit_json, nonneg_int, positive_int, width_list

#: the deepest network an output-statistic claim is checked at (the engine folds L symbolic layers)
MAX_DEPTH = 20


def register(sub) -> None:
    p = sub.add_parser("verify", help="verify a hand-derived formula against the engine",
                       description="Compare a claimed expression for a named quantity (V, G1, K) with the engine's "
                                   "derivation: exit 0 when it holds, 1 when it does not, 2 for a claim that "
                                   "cannot be parsed or uses unknown names.")
    p.add_argument("quantity", help="V, G1, K (order-1 recursions) or an output statistic by order in 1/n: "
                                    "Ez2, Ez4, Ez6, Ez8, kappa4, kappa6, kappa8")
    p.add_argument("--claim", required=True, help="SymPy syntax (E(s**4), chi, r, V, ...) or LaTeX subset")
    p.add_argument("--activation", default="generic", help="generic (default) or a concrete activation")
    p.add_argument("--mc", action="store_true", help="also compare with Monte Carlo networks (needs --widths)")
    p.add_argument("--widths", type=width_list, default=None, help="hidden widths for --mc, e.g. 10,10")
    p.add_argument("--cw", type=_number_or_symbolic, default=None,
                   help="C_W: for --mc (default 1.5); for output statistics a number or 'symbolic' (default symbolic)")
    p.add_argument("--cb", type=_number_or_symbolic, default=None,
                   help="C_b: for --mc and output statistics (default 0); 'symbolic' keeps it a symbol")
    p.add_argument("--depth", type=positive_int, default=1,
                   help=f"output statistics: number of hidden layers L, 1..{MAX_DEPTH} (default 1)")
    p.add_argument("--order", type=int, default=None,
                   help="output statistics: derive the engine's series to this order in 1/n; 'equal up to order k' "
                        "with k >= ORDER then exits 0 (default: one order beyond the claim's highest)")
    p.add_argument("--samples", type=int, default=200_000, help="Monte Carlo networks (default 200000)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--json", action="store_true",
                   help='print the verdict as JSON: {"quantity", "verdict", "holds", "method", "lines", ...} '
                   "(exit status as without --json)")
    p.set_defaults(func=run)


def _number_or_symbolic(text: str):
    if text.strip().lower() in ("symbolic", "sym"):
        return "symbolic"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'symbolic', got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from ..errors import PerturbError
    from ..verify import ORDER_QUANTITIES, monte_carlo_verdict, verify_claim, verify_order_claim

    if args.quantity in ORDER_QUANTITIES:
        if args.mc:
            raise PerturbError(f"--mc is available for V and G1, not '{args.quantity}'")
        cw = None if args.cw in (None, "symbolic") else args.cw
        cb = None if args.cb == "symbolic" else (0 if args.cb is None else args.cb)
        if args.depth > MAX_DEPTH:
            raise PerturbError(f"--depth must be at most {MAX_DEPTH}, got {args.depth}")
        res = verify_order_claim(args.quantity, args.claim, activation=args.activation, depth=args.depth, order=args.order,
                                 C_W=cw, C_b=cb, seed=args.seed)
        if args.json:
            emit_json({"quantity": res.quantity, "verdict": res.verdict, "holds": res.holds, "method": res.method,
                       "agree_to": res.agree_to, "engine_order": res.engine_order, "claim_beyond": res.claim_beyond,
                       "rows": [{"order": r.order, "engine": _text(r.engine), "claim": _text(r.claim),
                                 "difference": _text(r.difference), "agrees": r.agrees} for r in res.rows],
                       "lines": list(res.lines)})
            return 0 if res.holds else 1
        print("\n".join(res.lines))
        print("verdict:", res.verdict)
        return 0 if res.holds else 1
    if "symbolic" in (args.cw, args.cb):
        raise PerturbError("--cw/--cb 'symbolic' applies to output statistics only; --mc needs numbers")
    args.cw = 1.5 if args.cw is None else args.cw
    args.cb = 0.0 if args.cb is None else args.cb
    if args.mc and not args.widths:
        raise PerturbError("--mc needs --widths (e.g. --widths 10,10)")
    res = verify_claim(args.quantity, args.claim, activation=args.activation)
    out = {"quantity": res.quantity, "verdict": "equal" if res.holds else "not equal", "holds": res.holds,
           "method": res.method, "difference": {k: _text(v) for k, v in res.difference.items()},
           "counterexample": res.counterexample, "lines": list(res.lines)}
    if not args.json:
        print("\n".join(res.lines))
        print("verdict:", out["verdict"])
    ok = res.holds
    if args.mc:
        pred, est, v = monte_carlo_verdict(args.quantity, args.claim, args.widths, activation=args.activation,
                                           C_W=args.cw, C_b=args.cb, samples=args.samples, seed=args.seed)
        label = f"Monte Carlo ({args.samples} networks, widths {args.widths}, seed {args.seed}) vs the claim"
        if args.json:
            import numpy as np

            one = lambda a: np.ravel(a)[0] if np.size(a) == 1 else a  # noqa: E731 - one output: a scalar
            out["monte_carlo"] = {"prediction": one(pred), "value": one(est.value), "stderr": one(est.stderr),
                                  "p_value": float(v.p_value), "passed": bool(v.passed), "report": v.report(label)}
        else:
            print(v.report(label))
        ok = ok and v.passed
    if args.json:
        emit_json(out)
    return 0 if ok else 1


def _text(x):
    """A SymPy difference/term as text, an mpmath number as a float (JSON)."""
    import mpmath

    return float(x) if isinstance(x, mpmath.mpf) else str(x)
