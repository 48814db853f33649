"""Tour: exact finite-width statistics of ReLU networks at one input (docs/reference.md §4)."""

from __future__ import annotations

import math

import numpy as np

TITLE = "Exact ReLU statistics at finite width (matrix model, lecture 5)"

#: (n, L) with L/n = 0.05, 0.2, 1
CASES = ((20, 1), (20, 4), (20, 20))


def figure(path, n_samples: int, seed: int = 0) -> list[dict]:
    """Histogram of Monte Carlo outputs vs the exact density and the log-normal approximation.

    The law has an atom: z = 0 exactly when a hidden layer is entirely off, with probability
    P[z = 0] = 1 − Π(1 − 2^{−n_ℓ}).  The histogram shows the nonzero samples normalised by *all*
    samples, so it estimates the continuous part, whose integral is 1 − P[z = 0] (that is what
    ``density_numpy`` returns); the atom is drawn as an arrow at 0 (a Dirac mass) labelled with
    its exact mass and the Monte Carlo count of exact zeros.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..montecarlo import sample_outputs
    from ..network import Network
    from ..relu_exact import relu_output_law

    x = np.array([1.0, 0.0])                               # K^{(1)} = C_W |x|²/n0 = 1
    fig, axes = plt.subplots(1, len(CASES), figsize=(4.2 * len(CASES), 3.6))
    rows = []
    for ax, (n, L) in zip(axes, CASES, strict=True):
        widths = (n,) * L
        z = sample_outputs(Network("relu", widths=widths, C_W=2.0, C_b=0.0), x, n_samples, seed)[:, 0]
        law = relu_output_law(widths, x)
        lim = float(np.quantile(np.abs(z), 0.995))
        bins = np.linspace(-lim, lim, 81)
        nz = z[z != 0]
        ax.hist(nz, bins=bins, weights=np.full(nz.size, 1 / (z.size * (bins[1] - bins[0]))), color="0.8",
                label=f"Monte Carlo ({n_samples}), z ≠ 0")
        g = np.linspace(-lim, lim, 801)
        g = g[g != 0]
        dens = law.density_numpy(g)
        ax.plot(g, dens, "k-", lw=1.4, label="exact (continuous part)")
        ax.plot(g, law.lognormal_density_numpy(g), "r--", lw=1.2, label="log-normal")
        ax.set_yscale("log")
        p0 = float(law.p_zero())
        top = float(np.nanmax(dens[np.isfinite(dens)]))
        ax.annotate("", xy=(0, 2.5 * top), xytext=(0, dens[dens > 0].min()),
                    arrowprops={"arrowstyle": "-|>", "color": "tab:blue", "lw": 1.6})
        ax.text(0.03 * lim, 2.5 * top, f"atom at 0: P[z = 0] = {p0:.2g}\n(Monte Carlo: {z.size - nz.size} of {z.size})",
                color="tab:blue", fontsize=7, va="top")
        ax.set_ylim(top=8 * top)
        ax.set_title(f"n = {n}, L = {L}  (L/n = {L / n:g})")
        ax.set_xlabel("z")
        rows.append({"n": n, "L": L, "L_over_n": L / n, "p_zero": p0, "zeros_mc": int(z.size - nz.size),
                     "kurtosis_exact": float(law.moment(4) / law.moment(2) ** 2),
                     "kurtosis_mc": float(np.mean(z ** 4) / np.mean(z ** 2) ** 2)})
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return rows


def ntk_fluctuations(n_samples: int, n: int = 8, depths=(1, 2, 3, 4, 6)) -> list[dict]:
    """Monte Carlo of the NTK at one input (NTK parameterisation, critical ReLU): the exact mean
    and the measured relative variance, which grows faster than linearly in L/n.  (Beyond
    L/n ~ 1 the law is so heavy-tailed that a sample variance is unreliable.)"""
    from ..montecarlo import moment, sample_ntk
    from ..network import Network
    from ..ntk_exact import relu_ntk_moments
    from ..relu_exact import ntk_mean

    x = np.array([1.0, 0.0])
    rows = []
    for L in depths:
        th = sample_ntk(Network("relu", widths=(n,) * L, C_W=2.0, C_b=0.0), x, n_samples, seed=L)[:, 0, 0]
        est = moment(th, 1)
        rows.append({"n": n, "L": L, "L_over_n": L / n, "mean_exact": float(ntk_mean((n,) * L, x)),
                     "mean_mc": float(est.value), "mean_mc_stderr": float(est.stderr),
                     "rel_var_mc": float(th.var() / th.mean() ** 2),
                     "rel_var_exact": float((lambda m: m["var"] / m["mean"] ** 2)(relu_ntk_moments((n,) * L, x)))})
    return rows


def run(ctx) -> list[str]:
    from ..relu_exact import lognormal_error, relu_output_law

    widths, x = (8, 8, 8), (1.0, 0.5, -0.3)
    law = relu_output_law(widths, x)
    m, v = law.log_moments(dps=20)
    example = {
        "widths": widths, "x": x, "C_W": 2,
        "moments_exact": {f"E z^{M}": str(law.moment(M)) for M in (2, 4, 6, 8)},
        "cumulants_exact": {f"kappa_{M}": str(law.cumulant(M)) for M in (2, 4, 6, 8)},
        "p_zero": str(law.p_zero()),
        "log_mean_given_nonzero": float(m), "log_var_given_nonzero": float(v),
        "beta": math.fsum(math.log1p(5 / n) for n in widths),
    }
    table = []
    for n, L in ((100, 5), (40, 8), (20, 20), (10, 20)):
        e = lognormal_error((n,) * L)
        table.append({"n": n, "L": L, "L_over_n": e.depth_ratio, "beta": e.beta, "5L/n": e.beta_approx,
                      "log_var_minus_beta": e.log_var_error, "E_z6_exact_over_lognormal": e.moment6_ratio,
                      "ks_distance_log_sigma": e.ks})
    ctx.write_json("relu_exact.json", {"example": example, "lognormal_error": table})
    lines = [f"widths {widths}, x = {x}: E z⁴ = {law.moment(4)} (exact), κ4 = {law.cumulant(4)}",
             f"P[z = 0] = {law.p_zero()}  ({float(law.p_zero()):.3g}); E log Σ | Σ>0 = {float(m):.6f}, "
             f"Var = {float(v):.6f}, β = {example['beta']:.6f}"]
    for r in table:
        lines.append(f"L/n = {r['L_over_n']:.3g}: β = {r['beta']:.3f} (5L/n = {r['5L/n']:.3f}), "
                     f"E z⁶ exact/log-normal = {r['E_z6_exact_over_lognormal']:.3f}, "
                     f"KS(log Σ) = {r['ks_distance_log_sigma']:.3g}")
    ntk_rows = ntk_fluctuations(2000 if ctx.quick else 40_000)
    ctx.write_json("relu_exact_ntk.json", ntk_rows)
    for r in ntk_rows:
        lines.append(f"NTK n = {r['n']}, L = {r['L']}: E Θ exact {r['mean_exact']:.4g}, Monte Carlo "
                     f"{r['mean_mc']:.4g} ± {r['mean_mc_stderr']:.2g}; Var Θ/(E Θ)² = "
                     f"{r['rel_var_mc']:.3g} (Monte Carlo), {r['rel_var_exact']:.4g} (exact, perturb.ntk_exact)")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        lines.append("matplotlib not installed (pip install perturb[plot]): figure skipped")
        return lines
    rows = figure(ctx.path("relu_exact_density.png"), 4000 if ctx.quick else 100_000)
    for r in rows:
        lines.append(f"L/n = {r['L_over_n']:g}: kurtosis exact {r['kurtosis_exact']:.3f}, "
                     f"Monte Carlo {r['kurtosis_mc']:.3f}")
    lines.append("figure: relu_exact_density.png (histogram vs exact density vs log-normal)")
    return lines
