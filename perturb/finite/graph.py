"""Export of the engine's expression graph (JSON node-link and Graphviz DOT).

Every node of :meth:`perturb.finite.FiniteWidth.graph` carries its defining expression in its
parents' symbols; the exports keep the expression as SymPy text and LaTeX so the graph can be
inspected, diffed, rendered (``dot -Tsvg``) or reloaded (``sympy.sympify`` of ``expr`` with the
atom ``E`` in scope).

>>> from perturb.finite import FiniteWidth
>>> data = to_json(FiniteWidth("relu", depth=2, order=1).graph())
>>> sorted(n["id"] for n in data["nodes"] if n["kind"] == "M")
['M[1](1)^1', 'M[1](2)^1', 'M[2](1)^1', 'M[2](2)^1']
"""

from __future__ import annotations

import json

import sympy as sp

__all__ = ["node_id", "to_json", "to_dot", "write_graph"]


def node_id(node: tuple) -> str:
    """A stable readable id: ``M[ℓ](a)^e`` for moments, ``K[ℓ](αβ)`` for kernels."""
    if node[0] == "M":
        _, ell, a, e = node
        return f"M[{ell}]({','.join(map(str, a))})^{e}"
    _, ell, pr = node
    return f"K[{ell}]({pr[0] + 1}{pr[1] + 1})"


def to_json(g) -> dict:
    """Node-link JSON: nodes with kind/layer/order/symbol/expr/latex, edges dependency -> dependent."""
    nodes = []
    for node, attrs in g.nodes(data=True):
        expr = attrs.get("expr")
        nodes.append({
            "id": node_id(node),
            "kind": attrs.get("kind", node[0]),
            "layer": attrs.get("layer", node[1]),
            "order": attrs.get("order", 0),
            "symbol": str(attrs.get("symbol", "")),
            "expr": str(expr) if expr is not None else None,
            "latex": sp.latex(expr) if expr is not None else None,
        })
    edges = [{"source": node_id(u), "target": node_id(v)} for u, v in g.edges()]
    nodes.sort(key=lambda n: (n["layer"], n["kind"], n["id"]))
    return {"directed": True, "nodes": nodes, "edges": edges}


def to_dot(g) -> str:
    """Graphviz DOT text (one cluster per layer)."""
    lines = ["digraph perturb {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    layers: dict[int, list] = {}
    for node in g.nodes:
        layers.setdefault(node[1], []).append(node)
    for ell in sorted(layers):
        lines.append(f"  subgraph cluster_{ell} {{ label=\"layer {ell}\";")
        for node in sorted(layers[ell], key=node_id):
            shape = "ellipse" if node[0] == "K" else "box"
            lines.append(f'    "{node_id(node)}" [shape={shape}];')
        lines.append("  }")
    for u, v in sorted(g.edges(), key=lambda e: (node_id(e[0]), node_id(e[1]))):
        lines.append(f'  "{node_id(u)}" -> "{node_id(v)}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_graph(g, path: str) -> None:
    """Write ``.json`` or ``.dot`` by the file's extension."""
    from ..errors import PerturbError

    if path.endswith(".json"):
        text = json.dumps(to_json(g), indent=1) + "\n"
    elif path.endswith(".dot") or path.endswith(".gv"):
        text = to_dot(g)
    else:
        raise PerturbError(f"graph file must end in .json or .dot, got {path!r}")
    from .._io import atomic_write_text

    atomic_write_text(path, text)  # no partial graph file on failure
