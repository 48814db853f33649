"""The 1/n kernel correction G1 (one input), from the engine's layer map."""

from __future__ import annotations

from perturb.latex import Derivation

from ._order1 import build_order1

TITLE = "Kernel correction G1 (order 1/n, one input)"


def build(activation: str = "generic", order: int | None = None, checks: bool = True) -> Derivation:
    """Build the G1 derivation.

    >>> build(checks=False).name
    'kernel_correction'
    """
    return build_order1("G1", activation, mc=checks)
