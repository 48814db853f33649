"""Tour: signal propagation, criticality and the order/chaos phase diagram (docs/reference.md §2)."""

from __future__ import annotations

TITLE = "Criticality: fixed points, critical lines, universality classes, phase diagrams"


def run(ctx) -> list[str]:
    import numpy as np

    from ..criticality import (
        critical_depth_series,
        critical_point,
        fixed_point,
        phase_diagram,
        plot_phase_diagram,
        universality_class,
    )

    lines = []
    for act in ("relu", "tanh", "erf", "sin", "gelu", "sigmoid"):
        ctx.step(f"critical point and universality class: {act}")
        uc = universality_class(act)
        try:
            cp = critical_point(act, 0.0)
            lines.append(f"{act:<9} class {uc.name:<16} critical C_W at C_b=0: {float(cp.C_W):.10g}")
        except Exception as exc:  # noqa: BLE001 - show the message, keep touring
            lines.append(f"{act:<9} class {uc.name:<16} {exc}")
    ctx.step("large-depth series at criticality")
    for act in ("tanh", "erf", "sin"):
        lines.append(f"{act}: {critical_depth_series(act).text}")
    fp = fixed_point("tanh", 3.0, 0.3)
    lines.append(f"tanh C_W=3, C_b=0.3: q*={fp.q_star:.10g} c*={fp.c_star:.10g} χ_⊥={fp.chi_perp:.6g} "
                 f"ξ_q={fp.xi_q:.4g} ξ_c={fp.xi_c:.4g} ({fp.phase})")
    ctx.step("tanh critical line at 20 digits")
    cp = critical_point("tanh", 0.05, dps=20)
    import mpmath

    lines.append(f"tanh critical line at C_b=0.05 (20 digits): C_W={mpmath.nstr(cp.C_W, 20)}, "
                 f"K*={mpmath.nstr(cp.K_star, 20)}")
    n = 12 if ctx.quick else 24
    data = {}
    for act in ("tanh", "erf"):
        ctx.step(f"phase diagram of {act} ({n}×{n} grid)")
        d = phase_diagram(act, np.linspace(0, 2.0, n), np.linspace(0.5, 4.5, n))
        data[act] = d.as_dict()
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover
            lines.append("(matplotlib not installed: no phase-diagram figures)")
            continue
        fig = plot_phase_diagram(d, ctx.path(f"phase_diagram_{act}.png"))
        plt.close(fig)
        lines.append(f"figure: phase_diagram_{act}.png ({n}×{n} grid; ξ_c heat map, critical line)")
    ctx.write_json("phase_diagrams.json", data)
    return lines
