"""ddNTK at order 1/n (one input): E[O4] and E[{Θ,Θ}], from :mod:`perturb.ntk.ddntk`."""

from __future__ import annotations

import sympy as sp

from perturb.activations import get_activation
from perturb.gaussian.atom import E, GaussianExpectation
from perturb.latex import Check, Derivation, Equation, Step
from perturb.ntk import ddntk as d

from ._common import concrete, exact_check

TITLE = "ddNTK: the second-order motion of the NTK at order 1/n (one input)"


def build(activation: str = "generic", order: int | None = None, checks: bool = True) -> Derivation:
    """Build the ddNTK derivation.

    >>> build(checks=False).name
    'ddntk'
    """
    act = get_activation(activation)
    rec = d.derive_ddntk_layer_map()
    names = {d.K: "K", d.H: "H", d.CW_S: "C_W", d.LAM_W: r"\lambda_W", d.R_SYM: "r",
             **{s: rf"{s.name}^{{(\ell)}}" for s in (d.B, d.F, d.P, d.Q)},
             **{s: rf"{k[0]}_{k[1]}^{{(\ell)}}" for k, s in d.STATS_IN.items()}}

    def c(e):
        if act.is_generic:
            return e
        e = e.replace(lambda a: isinstance(a, GaussianExpectation),
                      lambda a: E(d._almost_everywhere(a.args[0]), a.args[1]))
        return concrete(e, act)

    theta = d.wick_rows(d.neuron_bracket("Theta", (0, 0)))
    sizes = {k: len(sp.Add.make_args(d.neuron_bracket(*d._PATTERNS[k]))) for k in ("U0", "Y0")}
    steps = [
        Step("The bracket algebra",
             "The bracket $\\{A,B\\} = \\sum_\\mu \\lambda_\\mu \\partial_\\mu A\\,\\partial_\\mu B$ is a symmetric "
             "biderivation, fixed by its values on generators: for the new layer $\\{W_{ap}, W_{bq}\\} = \\delta_{ab}"
             "\\delta_{pq}\\lambda_W/n$, $\\{b_a, b_b\\} = \\delta_{ab}\\lambda_b$; for layer $\\ell$ "
             "$\\{z_p, z_q\\} = \\Theta_{pq}$, $\\{\\Theta_{pq}, z_s\\} = O_{3;pq,s}$, $\\{O_{3;pq,s}, z_t\\} = "
             "O_{4;pq,s,t}$, $\\{\\Theta_{pq}, \\Theta_{rs}\\} = Y_{pq,rs}$ and $\\{\\sigma^{(k)}(z_p), \\cdot\\} = "
             "\\sigma^{(k+1)}(z_p)\\{z_p, \\cdot\\}$. With $z_a = b_a + \\sum_p W_{ap}\\sigma(z_p)$ the engine expands "
             f"$O_{{4;a}} = \\{{\\{{\\{{z_a,z_a\\}},z_a\\}},z_a\\}}$ ({sizes['U0']} label-summed terms) and "
             f"$\\{{\\Theta_a,\\Theta_a\\}}$ ({sizes['Y0']} terms); as a check of the algebra, the NTK itself "
             "averages over the new row to", "",
             (Equation(r"E_W[\Theta_{aa}]", d.expect_collapsed(theta, target_order=0)),)),
        Step("Wick over the new rows and index collapse",
             "Rows $W_a \\sim N(0, C_W/n)$ are independent of layer $\\ell$: every monomial is replaced by its "
             "pairings. Each label sum is then split over all coincidence patterns; a pattern with $k$ distinct "
             "neurons weighs $n^k$, and its summand is evaluated at leading order cluster by cluster with the laws "
             "of layer $\\ell$: one neuron ($\\Theta_{pp}\\to H$, $E[O_{3;pp,p}|z] = (P+2Q)z/(nK)$, "
             "$Y_{pp,pp}\\to Y_0/n$, $O_{4;pp,p,p}\\to U_0/n$) or a pair ($E[\\Theta_{pq}|z] = F z_pz_q/(nK^2)$, "
             "$E[\\Theta_{pq}^2] = B/n$, $E[O_{3;pq,q}|z] = Q z_p/(nK)$, $E[O_{3;pp,q}|z] = P z_q/(nK)$, "
             "$Y_{pp,qq}\\to Y_1/n$, $Y_{pq,pq}\\to Y_2/n$, $O_{4;pp,q,q}\\to U_1/n$, $O_{4;pq,p,q}\\to U_2/n$). "
             "A summand without a law that is not provably beyond $1/n$ stops the derivation. The same computation "
             "on two neurons $a \\ne b$ gives the pair laws one layer up:", "",
             tuple(Equation(rf"{k[0]}_{k[1]}^{{(\ell+1)}}", c(rec[k])) for k in d.DDNTK_NAMES)),
    ]
    result = [
        Equation(r"n_L\,E[O_4]", sp.Symbol("U_0"), note="$O_4 = \\{\\{\\Theta, z\\}, z\\}$ at the output."),
        Equation(r"n_L\,E[\{\Theta,\Theta\}]", sp.Symbol("Y_0")),
        Equation(r"E[\Delta\Theta]_{\eta^2}",
                 (sp.Symbol("K") + sp.Symbol("y") ** 2) * (sp.Symbol("U_0") - sp.Symbol("Y_0") / 2) / (2 * sp.Symbol("n_L")),
                 note="the $\\eta^2$ coefficient of one GD step on one sample (target $y$)."),
    ]
    out: list[Check] = []
    if checks:
        for L, widths in ((1, [10]), (2, [7, 12])):
            st = d.ddntk_statistics_exact("relu", widths, [1], C_W=2, C_b=0)
            out.append(exact_check(f"ReLU, C_W = 2, widths {widths}: E[O4] vs the Stein identity (L+1) E[z O3]",
                                   sp.simplify(st.o4 - (L + 1) * st.dntk.z_dntk)))
        out.append(Check("one hidden layer, generic sigma: U0, Y0 vs the direct unit computation (n times one unit)",
                         "equal", "see tests/test_ddntk.py", True, "exact SymPy, in the test suite"))
        out.append(Check("E[O4], E[{Theta,Theta}] of real tanh/erf/GELU networks; NTK after whole GD runs",
                         "agreement at 99%", "see tests/test_ntk_run.py", True,
                         "Monte Carlo checks live in the test suite (seconds to minutes)"))
    return Derivation(
        name="ddntk", title="ddNTK: the second-order motion of the NTK at order 1/n",
        statement="At one input, $E[O_4] = U_0/n_L$ and $E[\\{\\Theta,\\Theta\\}] = Y_0/n_L$ with a derived "
                  "recursion over depth; together with $E[zO_3]$ they give the NTK's change over one GD step "
                  "to $O(\\eta^2)$ and over a whole run at order $1/n$ [PDLT ch. 11 and the chapter on training at finite width].",
        assumptions=("One input; Gaussian weights; kinked $\\sigma$: derivatives of order $\\ge 2$ taken almost everywhere.",),
        steps=steps, result=result, checks=out,
        references=("[PDLT] arXiv 2106.10165, ch. 11 and the final chapter (the ddNTKs; O4 and {Theta,Theta} are contractions of them).",),
        parameters={"activation": act.name}, symbol_names=names)
