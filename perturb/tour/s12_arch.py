"""Tour: conv, pooling and residual architectures at infinite width; residual criticality."""

from __future__ import annotations

TITLE = "Architectures: conv/pool/residual kernels (vs real finite networks) and residual criticality"


def run(ctx) -> list[str]:
    import numpy as np

    from ..arch import act, avg_pool, conv, dense, global_avg_pool, kernels, residual, serial
    from ..arch.criticality import residual_critical_point, residual_fixed_point
    from ..arch.networks import sample_networks
    from ..montecarlo import moment, verdict

    lines = []
    X = np.random.default_rng(0).standard_normal((3, 6, 6, 3))
    net = serial(conv([3, 3], C_W=1.5, C_b=0.1), residual(act("relu"), conv([3, 3], C_W=2.0)),
                 avg_pool([2, 2]), global_avg_pool(), dense(1.0))
    ctx.write_json("arch_spec.json", net.to_spec())
    lines.append("spec (arch_spec.json; perturb kernel --arch arch_spec.json --inputs X.json): "
                 + " → ".join(x.type for x in net.layers))
    ctx.step("infinite-width NNGP/NTK of a residual conv net")
    k = kernels(net, X)
    lines.append("NNGP row 0: " + "  ".join(f"{v:.6f}" for v in k.nngp[0]))
    lines.append("NTK  row 0: " + "  ".join(f"{v:.6f}" for v in k.ntk[0]))
    S = 600 if ctx.quick else 4000
    ctx.step(f"Monte Carlo: {S} real networks of width 16 (exact in expectation: one nonlinearity)")
    f, th = sample_networks(net, X, width=16, samples=S, seed=1)
    vK = verdict(k.nngp.ravel(), moment((f[:, :, None] * f[:, None, :]).reshape(S, -1), 1))
    vT = verdict(k.ntk.ravel(), moment(th.reshape(S, -1), 1))
    lines.append(f"E f f' vs NNGP: max |z| = {np.abs(vK.z).max():.2f} ({'pass' if vK.passed else 'FAIL'}); "
                 f"E Θ̂ vs NTK: max |z| = {np.abs(vT.z).max():.2f} ({'pass' if vT.passed else 'FAIL'})")
    ctx.step("residual MLP z' = ξz + γ(b + Wσ(z)): the critical line moves")
    lines.append("tanh critical C_W at C_b = 0.1 (plain MLP: ξ = 0, γ = 1):")
    pairs = ((0.0, 1.0), (0.9, 1.0)) if ctx.quick else ((0.0, 1.0), (0.5, 1.0), (0.9, 1.0), (0.9, 0.5))
    for xi, gamma in pairs:
        cp = residual_critical_point("tanh", 0.1, xi=xi, gamma=gamma)
        lines.append(f"  ξ = {xi:<4} γ = {gamma:<4} C_W = {float(cp.C_W):.8f}  K* = {float(cp.K_star):.8f}")
    lines.append("depth scale ξ_q at C_W = 0.8, C_b = 0.1 (ordered) with γ² = 1 − ξ² (same fixed point):")
    for xi in ((0.0, 0.9) if ctx.quick else (0.0, 0.5, 0.9, 0.99)):
        fp = residual_fixed_point("tanh", 0.8, 0.1, xi=xi, gamma=float(np.sqrt(1 - xi * xi)))
        lines.append(f"  ξ = {xi:<5} χ_∥ = {fp.chi_parallel:.6f}  ξ_q = {fp.depth_q:.4g} layers ({fp.phase})")
    return lines
