"""Tour: the function-space hierarchy and the catapult (docs/reference.md §5)."""

from __future__ import annotations

import numpy as np

TITLE = "Training dynamics: derived GD maps and the catapult (uv model, ReLU networks)"


def run(ctx) -> list[str]:
    from ..dynamics.catapult import bisect_threshold, uv_catapult, uv_lower_threshold_first_step
    from ..dynamics.hierarchy import hierarchy_tower, uv_maps, uv_model

    lines = []
    maps = uv_maps()
    from ..latex.standalone import standalone_document

    ctx.write_text("catapult_uv_maps.tex", standalone_document(
        maps.latex(), title="Gradient-descent maps of the uv model (derived)", note="r = f - y."))
    lines += [f"derived: {s}" for s in str(maps).splitlines()]
    tower = hierarchy_tower(uv_model(), 4)
    import sympy as sp

    lines.append(f"tower: O_3 = {{Θ, f}} = ({sp.simplify(tower[2] / tower[0])})·f,  "
                 f"O_4 = {{O_3, f}} = ({sp.simplify(tower[3] / tower[1])})·Θ  (closes)")

    n = 1000 if ctx.quick else 10_000
    ctx.step("uv model: runs and threshold bisection")
    Rs = (1.0, 1.9, 2.5, 3.5, 3.9, 4.1)
    runs = {R: uv_catapult(R, n, steps=1000, seed=0) for R in Rs}
    ctx.write_json("catapult_uv.json", {str(R): r.as_dict() for R, r in runs.items()})
    for R, r in runs.items():
        lines.append(f"n={n} ηλ0={R:<4} {r.phase:<9} ηλ_final={r.eta_lambda_final:.4g}  max loss={r.loss_max:.3g}")
    lo = bisect_threshold(lambda R: uv_catapult(R, n, steps=3000).phase != "lazy", 1.0, 3.0, 1e-8)
    hi = bisect_threshold(lambda R: uv_catapult(R, n, steps=3000).phase == "divergent", 2.5, 6.0, 1e-8)
    lines.append(f"thresholds (bisection): lazy→catapult {lo:.8f} (first-step root "
                 f"{uv_lower_threshold_first_step(n):.8f}), catapult→divergent {hi:.8f}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        lines.append("(matplotlib not installed: no figures)")
        return lines
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for R, r in runs.items():
        t = np.arange(len(r.loss))
        a1.semilogy(t, np.maximum(r.loss, 1e-300), label=f"ηλ0={R}")
        a2.plot(t, r.eta * r.lam, label=f"ηλ0={R}")
    a1.set(xlabel="step", ylabel="loss", title=f"uv model, n={n}", xlim=(0, 80), ylim=(1e-30, 1e12))
    a2.axhline(2, color="k", lw=0.5, ls="--")
    a2.axhline(4, color="k", lw=0.5, ls="--")
    a2.text(79, 2.06, "η = 2/λ₀ (ηλ = 2): lazy below, catapult above", ha="right", va="bottom", fontsize=7)
    a2.text(79, 4.06, "η = 4/λ₀ (ηλ = 4): divergent above", ha="right", va="bottom", fontsize=7)
    a2.set(xlabel="step", ylabel="ηλ_t", xlim=(0, 80), ylim=(0, 6))
    a2.legend(fontsize=7, loc="upper center", ncol=2)
    fig.tight_layout()
    fig.savefig(ctx.path("catapult_uv.png"), dpi=110)
    plt.close(fig)
    lines.append("figure: catapult_uv.png")
    lines += _networks(ctx, plt)
    return lines


def _networks(ctx, plt) -> list[str]:
    try:
        from ..montecarlo import train_gd  # noqa: F401
    except ImportError:
        return ["(ReLU networks: perturb.montecarlo.train_gd not available)"]
    from ..dynamics.gd_experiments import default_data, network_catapult, network_lambda0
    from ..network import Network

    lines = []
    width = 256 if ctx.quick else 512
    ctx.step(f"GD of ReLU networks, n = {width}")
    X, Y = default_data(4, 8, seed=0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, depth in zip(axes, (1, 3), strict=True):
        net = Network("relu", widths=(width,) * depth, C_W=2.0, C_b=0.0)
        lam0 = network_lambda0(net, X, Y, seed=0)
        for R in (1.0, 3.0, 6.0):
            r = network_catapult(net, X, Y, R, 100, 0, lambda0=lam0)
            t = np.arange(len(r.loss))
            ok = np.isfinite(r.loss) & (r.loss > 0)
            (line,) = ax.semilogy(t[ok], r.loss[ok], label=f"ηλ0={R}: {r.phase}")
            if r.diverged_at is not None and ok.any():  # the history up to the blow-up, then a marker
                ax.plot(t[ok][-1], r.loss[ok][-1], "x", ms=9, mew=2, color=line.get_color())
                ax.annotate(f"diverged: |f − y| > 1e150 at step {r.diverged_at}", (t[ok][-1], r.loss[ok][-1]),
                            xytext=(8, -4), textcoords="offset points", fontsize=7, va="top",
                            color=line.get_color())
            lines.append(f"ReLU L={depth} n={width} ηλ0={R}: {r.phase}, λ_end/λ0="
                         f"{r.lambda_end / lam0:.3g}"
                         + (f" (diverged at step {r.diverged_at})" if r.diverged_at is not None else ""))
        ax.set(xlabel="step", ylabel="loss", title=f"ReLU, L={depth}, n={width}", xlim=(0, 100))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(ctx.path("catapult_relu.png"), dpi=110)
    plt.close(fig)
    lines.append("figure: catapult_relu.png")
    # measured upper thresholds (bisection per seed); linear two-layer on one input = uv model
    ctx.step("bisection for the largest stable ηλ0 of real networks")
    from ..dynamics.gd_experiments import network_upper_threshold

    X1, Y1 = default_data(1, 8, seed=0)
    lin = Network("linear", widths=(width,), C_W=1.0)
    thr = {"linear L=1 (uv: 4)": [network_upper_threshold(lin, X1, Y1, s, steps=300, hi=8.0, tol=1e-3)
                                  for s in range(3)]}
    thr["relu L=1"] = [network_upper_threshold(Network("relu", widths=(width,), C_W=2.0), X, Y, s,
                                               steps=200, tol=0.05) for s in range(3)]
    if not ctx.quick:
        thr["relu L=3"] = [network_upper_threshold(Network("relu", widths=(width,) * 3, C_W=2.0), X, Y, s,
                                                   steps=100, tol=0.25) for s in range(2)]
    ctx.write_json("catapult_thresholds.json", thr)
    for k, v in thr.items():
        lines.append(f"max ηλ0 ({k}, n={width}): " + ", ".join(f"{t:.3f}" for t in v))
    return lines
