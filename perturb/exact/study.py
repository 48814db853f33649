"""Where does the 1/n series work?  The series at orders 1–4, its resummations, the exact law and
Monte Carlo of real networks, side by side against L/n (the table and figure of docs/exact.md).

>>> rows = compare("tanh", n=8, depths=[1], C_W=1.0, order=2, mc_samples=0)
>>> sorted(rows[0])[:4]
['L', 'L_over_n', 'exact', 'exact_error']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .law import exact_law
from .resum import resum, series_note

__all__ = ["compare", "figure"]


def compare(activation: str, n: int, depths: Sequence[int], C_W: float, C_b: float = 0.0,
            order: int = 4, moment: int = 2, mc_samples: int = 100_000, seed: int = 0) -> list[dict]:
    """One row per depth L (input x = (1, 0): K^{(1)} = C_b + C_W/2) for E z^``moment``:
    series partial sums at orders 0..order, the "log" and "pade" resummations of the full
    series, the exact law (value, error estimate), Monte Carlo (value, standard error; skipped
    when ``mc_samples`` is 0) and the note of :func:`perturb.exact.resum.series_note`."""
    from ..finite import FiniteWidth

    x = np.array([1.0, 0.0])
    K1 = C_b + C_W * 0.5
    rows = []
    for L in depths:
        widths = [n] * L
        st = FiniteWidth(activation, depth=L, order=order).evaluate(
            K1=K1, widths=widths, C_W=[C_W] * (L + 1), C_b=[C_b] * (L + 1))
        terms = [float(v) for v in st.series("moments", moment)]
        law = exact_law(activation, widths, x, C_W=C_W, C_b=C_b)
        row = {"L": L, "L_over_n": L / n, "exact": law.moments[moment],
               "exact_error": law.error["moments"][moment],
               "series": [float(np.sum(terms[:k + 1])) for k in range(order + 1)],
               "log": _safe(resum, terms, "log"), "pade": _safe(resum, terms, "pade"),
               "note": series_note(st.series("moments", 2), st.series("moments", 4))}
        if mc_samples:
            from ..montecarlo import moment as mc_moment
            from ..montecarlo import sample_outputs
            from ..network import Network

            z = sample_outputs(Network(activation, widths=widths, C_W=C_W, C_b=C_b), x, mc_samples,
                               seed + L)[:, 0]
            est = mc_moment(z, moment)
            row["mc"], row["mc_stderr"] = float(est.value), float(est.stderr)
        rows.append(row)
    return rows


def _safe(fn, *args):
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - a resummation that does not exist is shown as missing
        return None


def figure(path, panels: dict[str, list[dict]]) -> None:
    """Plot the rows of :func:`compare`, one panel per activation: series relative to the exact
    value at orders 1..4, the resummations, and Monte Carlo with 2σ bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.8), squeeze=False)
    for ax, (title, rows) in zip(axes[0], panels.items(), strict=True):
        r = np.array([row["L_over_n"] for row in rows])
        ex = np.array([row["exact"] for row in rows])
        K = len(rows[0]["series"]) - 1
        for k in range(1, K + 1):
            ax.plot(r, [row["series"][k] / e for row, e in zip(rows, ex, strict=True)], "o-", ms=3,
                    lw=1, label=f"series, order {k}", color=plt.cm.viridis(k / (K + 1)))
        for key, style in (("log", "s--"), ("pade", "d--")):
            ax.plot(r, [(row[key] / e if row[key] is not None else np.nan) for row, e in zip(rows, ex, strict=True)],
                    style, ms=4, lw=1, label=f"resummed ({key})")
        if "mc" in rows[0]:
            ax.errorbar(r, [row["mc"] / e for row, e in zip(rows, ex, strict=True)],
                        yerr=[2 * row["mc_stderr"] / e for row, e in zip(rows, ex, strict=True)],
                        fmt="k^", ms=4, label="Monte Carlo (2σ)")
        ax.axhline(1.0, color="k", lw=1.5, label="exact law")
        ax.set_ylim(0.5, 1.5)
        ax.set_xlabel("L/n")
        ax.set_title(title, fontsize=9)
    axes[0][0].set_ylabel("moment / exact")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
