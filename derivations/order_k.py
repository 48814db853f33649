"""The one-input expansion to order k in 1/n: the engine's layer map and its fold over depth."""

from __future__ import annotations

import sympy as sp

from perturb.activations import get_activation
from perturb.finite import FiniteWidth, layer_map
from perturb.latex import Check, Derivation, Equation, Step
from perturb.relu_exact import moment_series

from ._common import close_check, concrete, exact_check, symbol_names

TITLE = "One-input expansion to order k in 1/n"


def build(activation: str = "generic", order: int | None = None, checks: bool = True) -> Derivation:
    """Build the order-k derivation (default k = 2).

    >>> build(order=1, checks=False).parameters["order"]
    1
    """
    k = 2 if order is None else int(order)
    act = get_activation(activation)
    lm = layer_map(1, k)
    names = symbol_names(lm)
    steps = [Step("The layer map, derived", "Conditional cumulants of the mean of $n$ iid $\\sigma^2$, Taylor expansion "
                  "by Price's rule, closure with the previous layer's moments $\\mathcal{M}^{[e]}_a$ "
                  f"(coefficient of $n^{{-e}}$ in $\\mathbb{{E}}\\,\\delta^a$), truncation at total order {k} "
                  "[H22; LH section 4].", "Each outgoing moment, order by order:", ())]
    for a in lm.multi_indices():
        eqs = tuple(Equation(rf"[n^{{-{e}}}]\,\mathbb{{E}}\left[(\Sigma^{{(\ell)}}-K^{{(\ell+1)}})^{{{a[0]}}}\right]",
                             concrete(v, act)) for e, v in lm.moment(a).items())
        if eqs:
            steps.append(Step(f"Moment of order {a[0]}", "Outgoing central moment of $\\Sigma^{(\\ell)}$ in the incoming "
                              "ones (same rules).", "", eqs))
    # the fold over depth, as the engine's expression graph walks it (depth 2 to stay short):
    # every node in topological order, defined by its parents' symbols
    import networkx as nx

    fw = FiniteWidth(act, depth=2, order=k)
    g = fw.graph()
    graph_eqs = []
    for node in nx.topological_sort(g):
        attrs = g.nodes[node]
        expr, sym = attrs["expr"], attrs["symbol"]
        if expr == sym or expr == 0:
            continue
        graph_eqs.append(Equation(sp.latex(sym), concrete(expr, act)))
    steps.append(Step("The fold over depth (expression graph)",
                      "The layer map is instantiated per layer ($K$, $C_W$, $C_b$, $n$ of that layer) and its incoming "
                      "moments are the previous layer's nodes; only the nodes the output needs are built "
                      r"(FiniteWidth.graph, shown for $L = 2$ in topological order; $M^{(\ell)}_{t|e}$ is the "
                      r"$n^{-e}$ coefficient of $\mathbb{E}(\Sigma^{(\ell)} - K^{(\ell+1)})^t$).",
                      f"{g.number_of_nodes()} nodes, {g.number_of_edges()} edges:", tuple(graph_eqs)))
    steps.append(Step("Output statistics", "Given $\\Sigma^{(L)}$ the output is $N(0,\\Sigma^{(L)})$, so "
                      "$\\kappa_{2j}(z) = (2j-1)!!\\,\\kappa_j(\\Sigma^{(L)})$ [LH section 4].", "", ()))
    result = []
    out: list[Check] = []
    nn = sp.Symbol("n", positive=True)
    if act.name in ("relu", "linear") or checks:
        L = 3
        st = FiniteWidth("relu", depth=L, order=k).symbolic(C_W=2, C_b=0, widths=[nn] * L, K1=1)
        ez4 = sp.expand(st.total_moment(4))
        result.append(Equation(r"\mathbb{E}\,z^4 \;(\mathrm{ReLU},\ C_W = 2,\ L = 3,\ K^{(1)} = 1)", ez4,
                               note=f"truncated at order {k}."))
        if checks:
            out.append(exact_check(f"ReLU, L = 3, equal widths: engine's E z^4 to order {k} vs the series of the exact law "
                                   "(relu_exact.moment_series)", ez4 - moment_series(4, L, k)))
    if checks:
        fw = FiniteWidth("tanh", depth=2, order=k)
        a = fw.evaluate(K1=1.2, widths=[12, 12], C_W=1.3)
        b = fw.evaluate(K1=1.2, widths=[12, 12], C_W=1.3, dps=30)
        out.append(close_check(f"tanh, C_W = 1.3, K1 = 1.2, widths [12, 12]: engine's E z^4 to order {k}, numpy "
                               "(quadrature) vs mpmath (30 digits)", b.total_moment(4), float(a.total_moment(4)), 1e-10,
                               "float64 quadrature ~1e-13 per atom"))
    return Derivation(
        name="order_k", title=f"One-input expansion to order {k} in 1/n",
        statement=(f"The law of the collective observable $\\Sigma^{{(\\ell)}}$ at one input, to order $n^{{-{k}}}$, "
                   "derived layer by layer by the engine; the output cumulants follow."),
        assumptions=("Gaussian weights and biases; one input; hidden widths $n_\\ell$ of the same order $n$.",),
        steps=steps, result=result, checks=out,
        references=("[H22] Hanin, arXiv 2204.01058.", "[LH] arXiv 2309.01592, section 4."),
        parameters={"activation": act.name, "order": k}, symbol_names=names)
