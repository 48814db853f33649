"""The fully connected network spec (docs/conventions.md).

Layers are counted as in PDLT and lectures 4–5: the input ``x`` has dimension ``n_0``; there
are ``L`` hidden layers of widths ``n_1..n_L``; the output is layer ``L+1``.  Layer ``ℓ`` has
weight variance ``C_W^{(ℓ)}/n_{ℓ-1}``, bias variance ``C_b^{(ℓ)}`` and NTK learning-rate factors
``λ_W^{(ℓ)}/n_{ℓ-1}``, ``λ_b^{(ℓ)}``; by default ``λ = C`` (the NTK parameterisation).

>>> net = Network("relu", widths=(16, 16), C_W=2.0, C_b=0.0)
>>> net.depth, net.C_W, net.lambda_W
(2, (2.0, 2.0, 2.0), (2.0, 2.0, 2.0))
>>> Network("tanh", depth=3).widths is None     # infinite width
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .activations import Activation, get_activation
from .errors import PerturbError

__all__ = ["Network", "per_layer"]


def per_layer(value, n_layers: int, name: str, *, positive: bool = False) -> tuple[float, ...]:
    """Broadcast a scalar or a per-layer sequence to a tuple of ``n_layers`` floats, checked."""
    if isinstance(value, (str, bytes)):
        raise PerturbError(f"{name} must be a number or a list of numbers, got {value!r}")
    if isinstance(value, Sequence):
        vals = tuple(value)
        if len(vals) != n_layers:
            raise PerturbError(f"{name} has {len(vals)} entries; expected one per layer ({n_layers})")
    else:
        vals = (value,) * n_layers
    out = []
    for v in vals:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise PerturbError(f"{name} must be numeric, got {v!r}") from None
        if not math.isfinite(f):
            raise PerturbError(f"{name} must be finite, got {v!r}")
        if positive and f <= 0:
            raise PerturbError(f"{name} must be > 0, got {v!r}")
        if f < 0:
            raise PerturbError(f"{name} must be >= 0 (it is a variance), got {v!r}")
        out.append(f)
    return tuple(out)


@dataclass(frozen=True)
class Network:
    """A fully connected network: activation, depth or hidden widths, and per-layer C's and λ's.

    Args:
        activation: a spec accepted by :func:`perturb.activations.get_activation`.
        widths: hidden widths ``n_1..n_L`` (``None`` for infinite width; then give ``depth``).
        depth: the number of hidden layers ``L`` (taken from ``widths`` when given).
        C_W, C_b: weight and bias variances, a scalar or one per layer ``1..L+1``.
        lambda_W, lambda_b: NTK learning-rate factors (default: equal to C_W, C_b).
    """

    activation: Activation
    widths: tuple[int, ...] | None
    depth: int
    C_W: tuple[float, ...]
    C_b: tuple[float, ...]
    lambda_W: tuple[float, ...]
    lambda_b: tuple[float, ...]

    def __init__(
        self,
        activation,
        widths: Sequence[int] | None = None,
        depth: int | None = None,
        C_W=1.0,
        C_b=0.0,
        lambda_W=None,
        lambda_b=None,
    ):
        act = get_activation(activation)
        if widths is not None:
            ws = []
            for w in widths:
                if isinstance(w, bool) or not float(w).is_integer() or int(w) < 1:
                    raise PerturbError(f"widths must be positive integers, got {w!r}")
                ws.append(int(w))
            widths_t: tuple[int, ...] | None = tuple(ws)
            if depth is not None and depth != len(ws):
                raise PerturbError(f"depth={depth} disagrees with {len(ws)} hidden widths")
            depth = len(ws)
            if depth < 1:
                raise PerturbError("a network needs at least one hidden layer (widths is empty)")
        else:
            widths_t = None
            if depth is None:
                raise PerturbError("give the hidden widths or, for infinite width, the depth")
        if isinstance(depth, bool) or int(depth) != depth or depth < 1:
            raise PerturbError(f"depth (number of hidden layers) must be a positive integer, got {depth!r}")
        depth = int(depth)
        n = depth + 1
        cw = per_layer(C_W, n, "C_W", positive=True)
        cb = per_layer(C_b, n, "C_b")
        lw = cw if lambda_W is None else per_layer(lambda_W, n, "lambda_W")
        lb = cb if lambda_b is None else per_layer(lambda_b, n, "lambda_b")
        for k, v in dict(activation=act, widths=widths_t, depth=depth, C_W=cw, C_b=cb,
                         lambda_W=lw, lambda_b=lb).items():
            object.__setattr__(self, k, v)

    @property
    def is_infinite(self) -> bool:
        return self.widths is None

    def replace(self, **changes) -> Network:
        """A copy with some fields changed (dataclasses.replace semantics, re-validated)."""
        fields = dict(activation=self.activation, widths=self.widths, depth=None if self.widths else self.depth,
                      C_W=self.C_W, C_b=self.C_b, lambda_W=self.lambda_W, lambda_b=self.lambda_b)
        if "widths" in changes and changes["widths"] is None and "depth" not in changes:
            fields["depth"] = self.depth
        fields.update(changes)
        return Network(**fields)

    def __repr__(self) -> str:
        w = "∞" if self.widths is None else ",".join(map(str, self.widths))
        return (f"Network({self.activation.name}, L={self.depth}, widths={w}, "
                f"C_W={_fmt(self.C_W)}, C_b={_fmt(self.C_b)})")


def _fmt(t):
    return f"{t[0]:g}" if len(set(t)) == 1 else list(t)


