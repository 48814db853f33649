"""Tour section: infinite-width NNGP and NTK kernels (docs/reference.md §1)."""

from __future__ import annotations

import numpy as np

TITLE = "Infinite-width kernels: NNGP and NTK for any activation"


def run(ctx) -> list[str]:
    import sympy as sp

    from ..gaussian import expect, zvars
    from ..infinite import kernels, symbolic_recursion, train_predictions
    from ..network import Network

    lines = []
    X = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.6, 0.8], [-1.0, 0.0, 0.0]])
    out = {}
    for act, cw, cb in (("relu", 2.0, 0.0), ("erf", 1.5, 0.05), ("tanh", 1.5, 0.05)):
        k = kernels(Network(act, depth=5, C_W=cw, C_b=cb), X)
        out[act] = {"C_W": cw, "C_b": cb, "depth": 5, "nngp": k.nngp, "ntk": k.ntk, "engine": k.methods[0]}
        lines.append(f"{act:<5} L=5 C_W={cw:g} C_b={cb:g}: K(x1,x2) = {k.nngp[0, 1]:.10f}, "
                     f"Θ(x1,x2) = {k.ntk[0, 1]:.10f}  [{k.methods[0]}]")
    k = kernels(Network("relu", depth=5, C_W=2.0, C_b=0.0), X)
    lines.append(f"critical ReLU check: diag K = {np.diag(k.nngp).round(12).tolist()} (= C_W|x|²/n0 = 2/3), "
                 f"diag Θ / K = {float(k.ntk[0, 0] / k.nngp[0, 0]):.12g} (= L+1 = 6)")
    km = kernels(Network("erf", depth=2, C_W=1.5, C_b=0.05), X[:2], dps=40)
    import mpmath

    lines.append(f"erf at 40 digits: K(x1,x2) = {mpmath.nstr(km.nngp[0, 1], 40)}")
    z1, z2 = zvars(2)
    ref = float(expect(sp.tanh(z1) * sp.tanh(z2), [[0.9, 0.4], [0.4, 1.3]]))
    lines.append(f"<tanh u1 tanh u2> at (0.9, 1.3, 0.4) = {ref:.16f} (mpmath.quad, 30 digits: 0.1406385945564758)")
    p = train_predictions(Network("relu", depth=3, C_W=2.0), X[:3], [1.0, -0.5, 0.3], X[3:])
    lines.append(f"trained to convergence (gradient flow): f(x4) ~ N({float(p.mean[0]):.6f}, "
                 f"{float(p.cov[0, 0]):.6f})")
    out["training"] = p.as_dict()
    ctx.write_json("kernels.json", out)
    from ..latex.standalone import standalone_document

    ctx.write_text("kernels_relu.tex", standalone_document(symbolic_recursion("relu").latex(),
                                                          title="NNGP and NTK recursions, ReLU"))
    ctx.write_text("kernels_generic.tex", standalone_document(symbolic_recursion("generic").latex(),
                                                             title="NNGP and NTK recursions, generic activation"))
    lines.append("wrote kernels.json, kernels_relu.tex, kernels_generic.tex")
    return lines
