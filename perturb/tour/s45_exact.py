"""Tour: the exact one-input law for any activation, where the 1/n series fails (issue 15)."""

from __future__ import annotations

TITLE = "Exact one-input laws for any activation (density evolution) vs the 1/n series"


def run(ctx) -> list[str]:
    import numpy as np

    from ..exact import exact_law
    from ..exact.resum import resum, series_note
    from ..finite import FiniteWidth
    from ..montecarlo import moment, sample_outputs
    from ..network import Network

    lines = []
    # the example: GELU, C_W = 2, eight layers of width 8 (quick: four layers)
    L = 4 if ctx.quick else 8
    widths, x = [8] * L, np.array([1.0])
    law = exact_law("gelu", widths, x, C_W=2.0, progress=False)
    lines.append(f"GELU, C_W = 2, {L} layers of width 8 (L/n = {L / 8:g}): exact E z² = {law.moments[2]:.8f} "
                 f"(± {law.error['moments'][2]:.1g}), κ4 = {law.cumulants[4]:.6g}, in {law.seconds:.1f} s")
    z = sample_outputs(Network("gelu", widths=widths, C_W=2.0), x, 20_000 if ctx.quick else 200_000, seed=0)[:, 0]
    est = moment(z, 2)
    lines.append(f"Monte Carlo of real networks: E z² = {est}")
    order = 2 if ctx.quick else 4
    st = FiniteWidth("gelu", depth=L, order=order).evaluate(K1=2.0, widths=widths, C_W=[2.0] * (L + 1),
                                                            C_b=[0.0] * (L + 1))
    terms = [float(v) for v in st.series("moments", 2)]
    partial = [sum(terms[:k + 1]) for k in range(1, order + 1)]
    lines.append("1/n series at orders 1.." + str(order) + ": " + ", ".join(f"{v:.4g}" for v in partial))
    lines.append(f"resummed: log {resum(terms, 'log'):.4g}, Padé {resum(terms, 'pade'):.4g}")
    note = series_note(st.series("moments", 2), st.series("moments", 4))
    lines.append(f"perturb cumulants' note: {note}")
    ctx.write_json("exact_gelu.json", {"widths": widths, "moments": law.moments, "cumulants": law.cumulants,
                                       "error": law.error, "mc_E_z2": est.as_pair(), "series": partial,
                                       "note": note})
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        lines.append("matplotlib not installed (pip install perturb[plot]): figure skipped")
        return lines
    lim = float(np.quantile(np.abs(z), 0.995))
    g = np.linspace(-lim, lim, 301)
    g = g[g != 0]
    dens, _ = law.density(g)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.hist(z, bins=np.linspace(-lim, lim, 81), density=True, color="0.8", label="Monte Carlo")
    ax.semilogy(g, dens, "k-", lw=1.3, label="exact (density evolution)")
    ax.semilogy(g, np.exp(-g * g / (2 * law.moments[2])) / np.sqrt(2 * np.pi * law.moments[2]), "r--", lw=1,
                label="Gaussian, same E z²")
    ax.set_xlabel("z")
    ax.set_title(f"GELU, C_W = 2, L = {L}, n = 8", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ctx.path("exact_gelu_density.png"), dpi=110)
    plt.close(fig)
    lines.append("figure: exact_gelu_density.png (exact density vs Monte Carlo histogram)")
    return lines
