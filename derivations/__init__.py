"""Derivations as documents: one module per result, each built from the engine's own objects.

Each module defines ``TITLE`` and ``build(activation, order, checks) -> Derivation``; the
registry below maps the public name to it.  Build one with :func:`build` and write it with
:mod:`perturb.latex` (standalone LaTeX, Markdown, JSON).  The numeric checks embedded in a
document are run when it is built (``checks=False`` skips them).

>>> "four_point_vertex" in REGISTRY
True
>>> build("catapult", checks=False).title
'Catapult maps of the uv model'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from perturb.errors import PerturbError
from perturb.latex import Derivation

__all__ = ["REGISTRY", "DerivationInfo", "derivation_names", "get_derivation", "build"]


@dataclass(frozen=True)
class DerivationInfo:
    """A registered derivation: its module, default activation, and whether it takes ``order``."""

    name: str
    module: str
    default_activation: str | None
    takes_order: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return importlib.import_module(self.module).TITLE


_ENTRIES = [
    DerivationInfo("nngp_recursion", "derivations.nngp_recursion", "generic", aliases=("nngp",)),
    DerivationInfo("ntk_recursion", "derivations.ntk_recursion", "generic", aliases=("ntk",)),
    DerivationInfo("criticality", "derivations.criticality", "tanh"),
    DerivationInfo("four_point_vertex", "derivations.four_point_vertex", "generic", aliases=("V",)),
    DerivationInfo("kernel_correction", "derivations.kernel_correction", "generic", aliases=("G1",)),
    DerivationInfo("order_k", "derivations.order_k", "generic", takes_order=True),
    DerivationInfo("relu_moments", "derivations.relu_moments", "relu", aliases=("relu_exact",)),
    DerivationInfo("catapult", "derivations.catapult", None),
]
try:  # the NTK-variance derivation needs perturb.ntk (issue 7); registered only when present
    importlib.import_module("perturb.ntk")
    _ENTRIES.append(DerivationInfo("ntk_variance", "derivations.ntk_variance", "relu"))
    _ENTRIES.append(DerivationInfo("dntk", "derivations.dntk", "generic", aliases=("ntk_move",)))
    _ENTRIES.append(DerivationInfo("ddntk", "derivations.ddntk", "generic", aliases=("ntk_run",)))
    _ENTRIES.append(DerivationInfo("ntk_multi", "derivations.ntk_multi", "generic", aliases=("ntk_inputs",)))
    _ENTRIES.append(DerivationInfo("ntk_order2", "derivations.ntk_order2", "generic"))
except ImportError:
    pass

#: name -> info (plain dict)
REGISTRY: dict[str, DerivationInfo] = {e.name: e for e in _ENTRIES}
_ALIASES = {a: e.name for e in _ENTRIES for a in e.aliases}


def derivation_names() -> list[str]:
    """The registered derivation names."""
    return list(REGISTRY)


def get_derivation(name: str) -> DerivationInfo:
    """Look up a derivation by name or alias; unknown names list the valid ones."""
    key = _ALIASES.get(name, name)
    if key not in REGISTRY:
        raise PerturbError(f"unknown derivation '{name}'; valid names: {', '.join(REGISTRY)}")
    return REGISTRY[key]


def build(name: str, *, activation: str | None = None, order: int | None = None, checks: bool = True) -> Derivation:
    """Build a registered derivation (its embedded checks run unless ``checks=False``)."""
    info = get_derivation(name)
    if order is not None and not info.takes_order and order != 1:
        raise PerturbError(f"derivation '{info.name}' has no --order option (only order_k does)")
    if order is not None and order < 1:
        raise PerturbError(f"order must be >= 1, got {order}")
    module = importlib.import_module(info.module)
    act = activation if activation is not None else info.default_activation
    if info.default_activation is None and activation not in (None,):
        raise PerturbError(f"derivation '{info.name}' takes no activation")
    return module.build(act, order, checks)
