"""The four-point vertex V at order 1/n (one input), from the engine's layer map."""

from __future__ import annotations

from perturb.latex import Derivation

from ._order1 import build_order1

TITLE = "Four-point vertex V (order 1/n, one input)"


def build(activation: str = "generic", order: int | None = None, checks: bool = True) -> Derivation:
    """Build the V derivation (``order`` must be 1 or None).

    >>> build(checks=False).name
    'four_point_vertex'
    """
    return build_order1("V", activation, mc=checks)
