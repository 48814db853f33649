"""Tour: the Monte Carlo laboratory — the kurtosis of a finite tanh network at a few widths."""

from __future__ import annotations

TITLE = "Monte Carlo laboratory: non-Gaussianity of finite tanh networks"


def run(ctx) -> list[str]:
    from ..montecarlo import sample_outputs, standardized_cumulant
    from ..network import Network

    widths = (8, 16, 32)
    depth = 3
    samples = 10_000 if ctx.quick else 200_000
    x = [1.0, 0.5, -0.3]
    rows, lines = [], []
    lines.append(f"tanh, C_W = 1, C_b = 0, L = {depth}, x = {x}, {samples} networks per width")
    lines.append(f"{'n':>4}  {'kappa4/kappa2^2':>22}  {'n * kappa4/kappa2^2':>20}")
    for i, n in enumerate(widths):
        net = Network("tanh", widths=(n,) * depth, C_W=1.0, C_b=0.0)
        z = sample_outputs(net, x, samples, seed=100 + i)[:, 0]
        e = standardized_cumulant(z, 4)  # κ4/κ2², jackknife error
        rows.append({"width": n, "excess_kurtosis": [e.value, e.stderr]})
        lines.append(f"{n:>4}  {e.value:>12.4f} ± {e.stderr:<7.4f}  {n * e.value:>10.3f} ± {n * e.stderr:.3f}")
    lines.append("the output is Gaussian at infinite width; its excess kurtosis falls like 1/n")
    ctx.write_json("montecarlo_kurtosis.json", {"activation": "tanh", "C_W": 1.0, "C_b": 0.0,
                                                "depth": depth, "x": x, "samples": samples, "rows": rows})
    lines.append("wrote montecarlo_kurtosis.json")
    return lines
