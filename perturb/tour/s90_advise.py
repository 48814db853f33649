"""Tour: hyperparameter advice (perturb advise) and the regime map of tanh at criticality."""

from __future__ import annotations

TITLE = "Advice: critical init, learning-rate window, width for a target, and the (L, n) regime map"


def run(ctx) -> list[str]:
    import numpy as np

    from ..advise import (
        KERNEL_MAX_CHANGE,
        RATIO_MAX,
        SERIES_MAX,
        advise,
        plot_regime_map,
        regime_grid,
    )

    lines = []
    ctx.step("advise: tanh, L = 20, n = 128")
    a = advise("tanh", 20, 128, [[1.0, 0.5], [-0.3, 0.8]], target_kurtosis=0.1, target_ntk_rel_var=0.05)
    lines.append(f"tanh L = 20, n = 128, two inputs: C_W = {a.C_W:g} (critical at C_b = 0), regime {a.regime}")
    lines.append(f"  kurtosis {a.kurtosis:.4g}, ntk_rel_var {a.ntk_rel_var:.4g}, ntk_change {a.ntk_change:.3g}; "
                 f"eta_lazy_max {a.eta_lazy_max:.4g}, eta_catapult_max {a.eta_catapult_max:.4g}")
    lines.append(f"  width_for_kurtosis(0.1) = {a.width_for_kurtosis}, "
                 f"width_for_ntk_rel_var(0.05) = {a.width_for_ntk_rel_var}")
    r = advise("relu", 6, 64, [[1.0]])
    lines.append(f"ReLU L = 6, n = 64: kurtosis {r.kurtosis:.4g} at order 1/n (= 15 L/n), exact "
                 f"{r.kurtosis_exact:.4g}; regime {r.regime}")

    depths = [2, 4, 8, 16, 32, 48] if ctx.quick else [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40, 48, 64]
    widths = np.unique(np.round(np.geomspace(8, 2048, 40)).astype(int))
    ctx.step(f"regime map of tanh at criticality ({len(depths)} depths × {widths.size} widths)")
    g = regime_grid("tanh", depths, widths, [1.0])
    counts = {name: int(np.sum(g["regime"] == k)) for k, name in enumerate(("kernel", "feature-learning",
                                                                             "non-perturbative"))}
    lines.append(f"regime map (tanh, C_W = 1, C_b = 0, x = 1): grid points per regime {counts}; thresholds "
                 f"|ntk_change| < {KERNEL_MAX_CHANGE} (kernel), L/n >= {RATIO_MAX} or a 1/n correction >= "
                 f"{SERIES_MAX} (non-perturbative)")
    ctx.write_json("regime_map.json", g)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        lines.append("(matplotlib not installed: no regime-map figure)")
        return lines
    fig = plot_regime_map(g, ctx.path("regime_map.png"),
                          title="tanh at criticality (C_W = 1, C_b = 0): regimes in the (n, L) plane")
    plt.close(fig)
    lines.append("figure: regime_map.png (regions; contours of κ4/K² and Var Θ/(EΘ)² at order 1/n)")
    return lines
