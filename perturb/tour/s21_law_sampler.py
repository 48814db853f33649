"""Tour: the exact-law sampler — the same finite-width statistics as explicit weights, much faster."""

from __future__ import annotations

TITLE = "Monte Carlo: the exact-law sampler vs explicit weights"


def run(ctx) -> list[str]:
    import time

    from ..montecarlo import sample_outputs, standardized_cumulant, verdict
    from ..network import Network

    samples = 20_000 if ctx.quick else 200_000
    net = Network("tanh", widths=(6, 6, 6), C_W=1.5, C_b=0.1)
    x = [1.0, 0.5]
    lines = [f"{net!r}, x = {x}, {samples} networks per sampler",
             f"{'sampler':>8}  {'kappa4/kappa2^2':>22}"]
    est = {}
    for seed, sampler in enumerate(("weights", "law")):
        z = sample_outputs(net, x, samples, seed=seed, sampler=sampler)[:, 0]
        est[sampler] = e = standardized_cumulant(z, 4)
        lines.append(f"{sampler:>8}  {e.value:>12.4f} ± {e.stderr:<7.4f}")
    v = verdict(est["law"], est["weights"])
    lines.append(f"two-sample test: z = {float(v.z):+.2f}, p = {v.p_value:.2g} ({'agree' if v.passed else 'DISAGREE'})")
    wide = Network("tanh", widths=(512,) * 4)
    rates = {}
    for sampler, n in (("weights", 20 if ctx.quick else 200), ("law", 2_000 if ctx.quick else 20_000)):
        t0 = time.perf_counter()
        sample_outputs(wide, [1.0], n, seed=0, sampler=sampler)
        rates[sampler] = n / (time.perf_counter() - t0)
    lines.append(f"widths 512x4, one input: weights {rates['weights']:.0f} networks/s, law "
                 f"{rates['law']:.0f} networks/s ({rates['law'] / rates['weights']:.0f}x)")
    same = (sample_outputs(net, x, 3000, seed=5, chunk=500, sampler="law", workers=2)
            == sample_outputs(net, x, 3000, seed=5, chunk=500, sampler="law")).all()
    lines.append(f"chunks seeded by index: 2 processes give the same bits as 1: {bool(same)} "
                 "(and so does a Dask cluster: --scheduler / --dask-local)")
    lines.append("law: each layer's preactivations ~ N(0, C_b + C_W h^T h/n) given the previous layer "
                 "(exact; forward outputs only)")
    return lines
