"""``perturb ntk-move`` — how far gradient descent moves the NTK, at order 1/n (one input).

    perturb ntk-move --activation tanh --cw 1 --cb 0 --widths 64,64,64 --x 1 --eta 0.1 [--y 0] [--steps T] --json

prints ``{"ntk_mean": E Θ, "ntk_var": Var Θ, "dntk_z": E[z O3], "delta_ntk_step": E ΔΘ, ...}`` for
one output neuron trained on the single sample (x, y) with loss ½(z − y)², NTK parameterisation
(λ = C): E ΔΘ = −η E[z O3] + O(η²), E[z O3] = (P + 2Q)/n_L from the derived dNTK recursions
(perturb.ntk.dntk).  ``delta_ntk_step`` is the first-order value (``"order_eta": 1``); the η²
coefficient of one step is ``eta2_step`` = ½(K + y²)(E[O4] − ½E[{Θ,Θ}]) from the derived ddNTK
(perturb.ntk.ddntk; ``o4``, ``theta_theta``), and ``delta_ntk_run`` is E[Θ_∞ − Θ_0] over the whole
converged run (``delta_ntk_steps`` after ``--steps T``), all at order 1/n
(perturb.dynamics.ntk_run).  If the run does not converge (η Θ̄ ≥ 2) ``delta_ntk_run`` is null and
``run_converges`` false (the one-step values stand).  For piecewise-linear σ (ReLU, leaky ReLU,
abs) ``kink_step`` is the O(η/√n) kink-crossing drift of one step (perturb.dynamics.kinks), to be
added to ``delta_ntk_step``; null for smooth σ.
"""

from __future__ import annotations

from ._common import add_network_args, emit_json, float_list, width_list


def register(sub) -> None:
    p = sub.add_parser(
        "ntk-move",
        help="how far one GD step moves the NTK of a finite network (dNTK, order 1/n)",
        description="Fold the derived order-1/n dNTK recursions (PDLT's P, Q) over the network and "
        "print the mean NTK, the dNTK-preactivation correlation E[z O3] and the mean NTK change of "
        "one gradient-descent step on the single sample (x, y) to first order in eta "
        "(NTK parameterisation, lambda = C).",
    )
    add_network_args(p)
    p.add_argument("--widths", type=width_list, required=True, help="hidden widths n_1..n_L, e.g. 64,64,64")
    p.add_argument("--x", type=float_list, required=True, help="the training input, e.g. 1,0.5 (non-zero)")
    p.add_argument("--eta", type=float, required=True, help="learning rate eta (> 0)")
    p.add_argument("--y", type=float, default=0.0, help="the target (default 0; the first-order change does "
                   "not depend on it)")
    p.add_argument("--steps", type=int, default=None, help="also print delta_ntk_steps, E[Θ_T − Θ_0] after "
                   "T GD steps (T >= 1)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _kink_step(args):
    """η × the kink-crossing drift for piecewise-linear σ (perturb.dynamics.kinks), else None."""
    from ..dynamics.kinks import kink_drift, kink_slopes
    from ..errors import PerturbError

    try:
        kink_slopes(args.activation)
    except PerturbError:
        return None
    return args.eta * kink_drift(args.activation, args.widths, args.x, y=args.y, C_W=args.cw, C_b=args.cb).total


def run(args) -> int:
    import math
    import sys

    from ..dynamics.ntk_move import ntk_move
    from ..dynamics.ntk_run import ntk_run
    from ..errors import PerturbError

    if not (math.isfinite(args.eta) and args.eta > 0):
        raise PerturbError(f"--eta must be a finite number > 0, got {args.eta}")
    if args.cw <= 0:
        raise PerturbError(f"--cw must be > 0, got {args.cw}")
    if args.cb < 0:
        raise PerturbError(f"--cb must be >= 0, got {args.cb}")
    if args.steps is not None and args.steps < 1:
        raise PerturbError(f"--steps must be an integer >= 1, got {args.steps}")
    mv = ntk_move(args.activation, args.widths, args.x, eta=args.eta, y=args.y, C_W=args.cw, C_b=args.cb)
    kw = dict(eta=args.eta, y=args.y, C_W=args.cw, C_b=args.cb)
    # the one-step coefficients do not need a converging run; the whole run does (0 < η Θ̄ < 2)
    run_ = ntk_run(args.activation, args.widths, args.x, steps=1, **kw)
    converges = 0 < args.eta * run_.ntk_inf < 2
    if converges:
        run_ = run_.after(None)
    kink = _kink_step(args)
    out = {**mv.as_dict(), "order_eta": 1, "eta2_step": run_.eta2_step,
           "delta_ntk_run": run_.delta_ntk if converges else None, "run_converges": converges,
           "o4": run_.o4, "theta_theta": run_.theta_theta, "kink_step": kink}
    if not converges:
        print(f"note: eta * Θ = {args.eta * run_.ntk_inf:.6g} >= 2: gradient descent does not converge, "
              "so delta_ntk_run is null (the one-step values stand)", file=sys.stderr)
    if args.steps is not None:
        out["delta_ntk_steps"] = run_.after(args.steps).delta_ntk
        out["steps"] = args.steps
    if args.json:
        emit_json(out)
        return 0
    print(f"{args.activation}, C_W = {args.cw:g}, C_b = {args.cb:g}, widths {args.widths}, x = {args.x}, "
          f"eta = {args.eta:g}, y = {args.y:g}")
    print(f"E Θ          = {mv.ntk_mean:.10g}   (Var Θ = {mv.ntk_var:.6g})")
    print(f"E[z O3]      = {mv.dntk_z:.10g}   ((P + 2Q)/n_L, P = {mv.P:.6g}, Q = {mv.Q:.6g})")
    print(f"E ΔΘ (1 step) = {mv.delta_ntk_step:.10g}   (−η E[z O3], first order in η; "
          f"relative {mv.relative_step:.3g})")
    print(f"  + η² × {run_.eta2_step:.6g}   (½(K + y²)(E[O4] − ½E[{{Θ,Θ}}]), E[O4] = {run_.o4:.6g}, "
          f"E[{{Θ,Θ}}] = {run_.theta_theta:.6g})")
    if args.steps is not None:
        print(f"E[Θ_T − Θ_0] after {args.steps} steps = {out['delta_ntk_steps']:.10g}")
    if kink is not None:
        print(f"kink crossings (1 step) = {kink:.10g}   (O(η/√n), perturb.dynamics.kinks; add to E ΔΘ)")
    if converges:
        print(f"E[Θ_∞ − Θ_0] (whole run) = {run_.delta_ntk:.10g}   (order 1/n; relative "
              f"{run_.delta_ntk / mv.ntk_mean:.3g})")
    return 0
