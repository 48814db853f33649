"""Tour: the NTK at order 1/n², derived by the engine from the network's definition (issue 13)."""

from __future__ import annotations

TITLE = "NTK at order 1/n²: one engine from the definition; exact deep-linear check; Monte Carlo at n = 8"


def run(ctx) -> list[str]:
    import sympy as sp

    from ..engine.fold import ntk_series, ntk_series_exact
    from ..engine.layermap import derive_layer_map
    from ..linear_exact import ntk_moments_exact
    from ..montecarlo import cumulant, sample_ntk
    from ..network import Network

    lines = []
    lm = derive_layer_map(2)
    lines.append(f"closure the engine finds at order 2: observables {sorted(lm.words)}, {len(lm.moments)} moments "
                 "(order 1: S, O, T2, R1 = PDLT's Σ, Ω, T, R)")
    n = sp.Symbol("n", positive=True)
    rows = {}
    for L in (2, 3):
        s = ntk_series_exact("linear", [n] * L, [1], C_W=1, C_b=0, order=2)
        ex = sp.factor(ntk_moments_exact([n] * L)["var"])
        lines.append(f"deep linear L = {L}: Var Θ at order 2 = {sp.expand(sum(s['var']))};  exact = {ex}")
        rows[f"linear_L{L}"] = {"order2": str(sp.expand(sum(s["var"]))), "exact": str(ex)}
    cw, cb, w = 1.2, 0.1, 8
    s = ntk_series("tanh", [w, w], [1.0], C_W=cw, C_b=cb, order=2)
    N = 20_000 if ctx.quick else 200_000
    th = sample_ntk(Network("tanh", widths=(w, w), C_W=cw, C_b=cb), [1.0], N, seed=13)[:, 0, 0]
    e = cumulant(th, 2)
    o1, o2 = s["var"][1], s["var"][1] + s["var"][2]
    lines.append(f"tanh C_W = {cw}, C_b = {cb}, n = {w}, L = 2: Var Θ Monte Carlo {e.value:.4f} ± {e.stderr:.4f} "
                 f"({N} networks); order 1 {o1:.4f} (z = {(e.value - o1) / e.stderr:+.1f}), "
                 f"order 2 {o2:.4f} (z = {(e.value - o2) / e.stderr:+.1f})")
    rows["tanh"] = {"mc": e.as_pair(), "order1": float(o1), "order2": float(o2), "samples": N}
    ctx.write_json("ntk_order2.json", rows)
    lines.append("CLI: perturb ntk-stats --activation tanh --cw 1.2 --cb 0.1 --widths 8,8 --x 1 --order 2 --series --json")
    return lines
