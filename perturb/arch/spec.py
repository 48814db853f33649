"""Architecture descriptions: layers, the ``serial``/``residual`` combinators, JSON round trip.

An architecture is a list of layers applied in order to inputs of shape N×H×W×C (images),
N×W×C (sequences) or N×d (vectors); at infinite width each layer is a map of the pair kernel
``K_{αβ}(p, p')`` (inputs α, β; spatial positions p, p') and of the NTK (:mod:`.maps`).

==================  ============================================================================
JSON                Python
==================  ============================================================================
``dense``           ``dense(C_W, C_b)``: acts on the channel axis, ``W_ij ~ N(0, C_W/fan_in)``
``conv``            ``conv(filter, padding, C_W, C_b)``: stride 1, fan-in = filter area × channels
``act``             ``act(name)``: any activation of :func:`perturb.get_activation`
``avg_pool``        ``avg_pool(window, padding="VALID")``: stride = window
``global_avg_pool`` ``global_avg_pool()``
``flatten``         ``flatten()``
``residual``        ``residual(*layers)``: ``x + block(x)``
==================  ============================================================================

``serial(*layers)`` builds an :class:`Architecture`; ``Architecture.from_spec`` /
``Architecture.from_json`` read the JSON list of the command line and ``to_spec``/``to_json``
write it, so ``Architecture.from_json(a.to_json()) == a``.  :meth:`Architecture.check` walks
the layers over an input shape and refuses what has no kernel: an unknown layer type, a filter
or window larger than the input, a filter whose rank is not the input's spatial rank, an
activation whose input is not a Gaussian pre-activation, a residual block that changes the
shape or does not end with fresh weights, a readout that is not a dense layer on vectors.

>>> a = serial(conv([3, 3], C_W=2.0), act("relu"), global_avg_pool(), dense(C_W=1.0))
>>> a.check((8, 8, 3))
()
>>> Architecture.from_json(a.to_json()) == a
True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from ..activations import get_activation
from ..errors import PerturbError

__all__ = [
    "Dense",
    "Conv",
    "Act",
    "AvgPool",
    "GlobalAvgPool",
    "Flatten",
    "Residual",
    "Architecture",
    "LAYER_TYPES",
    "dense",
    "conv",
    "act",
    "avg_pool",
    "global_avg_pool",
    "flatten",
    "residual",
    "serial",
]

PADDINGS = ("SAME", "VALID")


def _num(value, what: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PerturbError(f"{what} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise PerturbError(f"{what} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _shape(value, what: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise PerturbError(f"{what} must be a list of 1 or 2 positive integers ([k] or [kh, kw]), got {value!r}")
    return tuple(int(v) for v in value)


def _padding(value, where: str) -> str:
    if not isinstance(value, str) or value.upper() not in PADDINGS:
        raise PerturbError(f"{where}: padding must be one of {', '.join(PADDINGS)}, got {value!r}")
    return value.upper()


@dataclass(frozen=True)
class Dense:
    """Fully connected layer on the channel axis: ``z = b + W x``, ``W ~ N(0, C_W/fan_in)``."""

    C_W: float = 1.0
    C_b: float = 0.0
    type = "dense"

    def __post_init__(self):
        object.__setattr__(self, "C_W", _num(self.C_W, "dense: C_W"))
        object.__setattr__(self, "C_b", _num(self.C_b, "dense: C_b"))

    def to_spec(self) -> dict:
        return {"type": "dense", "C_W": self.C_W, "C_b": self.C_b}


@dataclass(frozen=True)
class Conv:
    """Convolution, stride 1: ``z(p) = b + Σ_{d ∈ filter} W_d x(p + d)``, fan-in = area × channels.

    ``SAME`` pads with zeros (``(k-1)//2`` before, the rest after, as XLA/neural-tangents);
    ``VALID`` keeps the positions where the filter fits.
    """

    filter: tuple[int, ...]
    padding: str = "SAME"
    C_W: float = 1.0
    C_b: float = 0.0
    type = "conv"

    def __post_init__(self):
        object.__setattr__(self, "filter", _shape(self.filter, "conv: filter"))
        object.__setattr__(self, "padding", _padding(self.padding, "conv"))
        object.__setattr__(self, "C_W", _num(self.C_W, "conv: C_W"))
        object.__setattr__(self, "C_b", _num(self.C_b, "conv: C_b"))

    def to_spec(self) -> dict:
        return {"type": "conv", "filter": list(self.filter), "padding": self.padding,
                "C_W": self.C_W, "C_b": self.C_b}


@dataclass(frozen=True)
class Act:
    """Elementwise activation: a registered name or a SymPy expression in ``z`` (as text)."""

    name: str
    type = "act"

    def __post_init__(self):
        name = self.name
        if hasattr(name, "free_symbols") and not isinstance(name, str):   # a SymPy expression
            name = str(name)
        if not isinstance(name, str):
            raise PerturbError(f"act: name must be an activation name or expression, got {name!r}")
        a = get_activation(name)
        if a.is_generic:
            raise PerturbError("act: the generic activation sigma(z) has no numeric kernels; "
                               "choose a concrete activation (relu, erf, tanh, ...)")
        object.__setattr__(self, "name", name)

    @property
    def activation(self):
        return get_activation(self.name)

    def to_spec(self) -> dict:
        return {"type": "act", "name": self.name}


@dataclass(frozen=True)
class AvgPool:
    """Average pooling over non-overlapping windows (stride = window), ``VALID`` padding."""

    window: tuple[int, ...]
    padding: str = "VALID"
    type = "avg_pool"

    def __post_init__(self):
        object.__setattr__(self, "window", _shape(self.window, "avg_pool: window"))
        pad = _padding(self.padding, "avg_pool")
        if pad != "VALID":
            raise PerturbError("avg_pool: only padding VALID is supported (stride = window)")
        object.__setattr__(self, "padding", pad)

    def to_spec(self) -> dict:
        return {"type": "avg_pool", "window": list(self.window), "padding": self.padding}


@dataclass(frozen=True)
class GlobalAvgPool:
    """Average over all spatial positions (images/sequences -> vectors)."""

    type = "global_avg_pool"

    def to_spec(self) -> dict:
        return {"type": "global_avg_pool"}


@dataclass(frozen=True)
class Flatten:
    """Concatenate positions and channels into one vector (a no-op on vectors)."""

    type = "flatten"

    def to_spec(self) -> dict:
        return {"type": "flatten"}


@dataclass(frozen=True)
class Residual:
    """``x + block(x)`` (neural-tangents: ``serial(FanOut(2), parallel(Identity(), block), FanInSum())``)."""

    block: tuple = field(default=())
    type = "residual"

    def __post_init__(self):
        blk = self.block.layers if isinstance(self.block, Architecture) else self.block
        blk = tuple(_as_layer(x, "residual block") for x in blk)
        if not blk:
            raise PerturbError("residual: the block is empty; x + block(x) needs at least one layer")
        object.__setattr__(self, "block", blk)

    def to_spec(self) -> dict:
        return {"type": "residual", "block": [x.to_spec() for x in self.block]}


LAYER_TYPES = {"dense": Dense, "conv": Conv, "act": Act, "avg_pool": AvgPool,
               "global_avg_pool": GlobalAvgPool, "flatten": Flatten, "residual": Residual}
_KEYS = {"dense": ({"C_W", "C_b"}, set()), "conv": ({"filter", "padding", "C_W", "C_b"}, {"filter"}),
         "act": ({"name"}, {"name"}), "avg_pool": ({"window", "padding"}, {"window"}),
         "global_avg_pool": (set(), set()), "flatten": (set(), set()), "residual": ({"block"}, {"block"})}
_LAYER_CLASSES = tuple(LAYER_TYPES.values())


def _as_layer(x, where: str):
    if isinstance(x, _LAYER_CLASSES):
        return x
    if isinstance(x, Architecture):
        raise PerturbError(f"{where}: nest an architecture with residual(...) or pass its layers")
    raise PerturbError(f"{where}: {x!r} is not a layer (use dense, conv, act, avg_pool, "
                       "global_avg_pool, flatten, residual)")


def _from_dict(d, where: str):
    if not isinstance(d, dict):
        raise PerturbError(f"{where}: each layer must be a JSON object like {{\"type\": \"dense\"}}, got {d!r}")
    typ = d.get("type")
    if typ not in LAYER_TYPES:
        raise PerturbError(f"{where}: unknown layer type {typ!r}; valid types: {', '.join(LAYER_TYPES)}")
    allowed, required = _KEYS[typ]
    extra = sorted(set(d) - allowed - {"type"})
    if extra:
        raise PerturbError(f"{where} ({typ}): unknown key {extra[0]!r}; valid keys: "
                           f"{', '.join(sorted(allowed)) or 'none'}")
    missing = sorted(required - set(d))
    if missing:
        raise PerturbError(f"{where} ({typ}): missing key {missing[0]!r}")
    kw = {k: v for k, v in d.items() if k != "type"}
    if typ == "residual":
        blk = kw["block"]
        if not isinstance(blk, list):
            raise PerturbError(f"{where} (residual): block must be a list of layers, got {blk!r}")
        return Residual(tuple(_from_dict(x, f"{where}.block[{i}]") for i, x in enumerate(blk)))
    try:
        return LAYER_TYPES[typ](**kw)
    except PerturbError as exc:
        raise PerturbError(f"{where}: {exc}") from None


def _spatial_text(sp_shape) -> str:
    return "×".join(str(s) for s in sp_shape) if sp_shape else "vector"


@dataclass(frozen=True)
class Architecture:
    """A sequence of layers; the last is a dense readout to one output.

    >>> a = Architecture.from_spec([{"type": "dense", "C_W": 2.0}, {"type": "act", "name": "relu"},
    ...                             {"type": "dense", "C_W": 2.0}])
    >>> a.layers[1]
    Act(name='relu')
    """

    layers: tuple

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(_as_layer(x, f"layer {i}") for i, x in enumerate(self.layers)))
        if not self.layers:
            raise PerturbError("the architecture is empty; it needs at least a dense readout layer")

    # ------------------------------------------------------------------ JSON
    @classmethod
    def from_spec(cls, spec) -> Architecture:
        """From the JSON list of layers (already parsed)."""
        if not isinstance(spec, list) or not spec:
            raise PerturbError("the architecture spec must be a non-empty JSON list of layers, "
                               'e.g. [{"type": "dense", "C_W": 1.0}]')
        return cls(tuple(_from_dict(d, f"layer {i}") for i, d in enumerate(spec)))

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        """From JSON text."""
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PerturbError(f"architecture spec is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        return cls.from_spec(spec)

    def to_spec(self) -> list[dict]:
        """The JSON list of layers."""
        return [x.to_spec() for x in self.layers]

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_spec(), indent=indent)

    # ------------------------------------------------------------------ validation
    def check(self, input_spatial: tuple[int, ...]) -> tuple[int, ...]:
        """Validate the layers on inputs of spatial shape ``input_spatial`` + (channels,).

        ``input_spatial`` is ``(H, W, C)``, ``(W, C)`` or ``(d,)`` (one input's shape); returns the
        spatial shape of the output (``()``: vectors).  Raises PerturbError naming the layer.
        """
        shape = tuple(int(s) for s in input_spatial)
        if not 1 <= len(shape) <= 3:
            raise PerturbError(f"inputs must be N×d vectors, N×W×C sequences or N×H×W×C images; "
                               f"got one input of shape {shape}")
        last = self.layers[-1]
        if not isinstance(last, Dense):
            raise PerturbError(f"the last layer must be a dense readout to one output; got {last.type}")
        sp_out, gauss, _ = _walk(self.layers, shape[:-1], False, "layer ")
        if sp_out:
            raise PerturbError(f"the readout dense layer gets {_spatial_text(sp_out)} feature maps; put "
                               "flatten or global_avg_pool before it (the output must be one number per input)")
        return sp_out

    def needs_full_spatial(self) -> bool:
        """True when a pooling layer needs the covariance between different positions
        (otherwise the pixel-diagonal ``K(p, p)`` suffices: conv maps diagonals to diagonals)."""
        return _has_pool(self.layers)


def _has_pool(layers) -> bool:
    for x in layers:
        if isinstance(x, (AvgPool, GlobalAvgPool)):
            return True
        if isinstance(x, Residual) and _has_pool(x.block):
            return True
    return False


def _walk(layers, sp_shape, gauss, prefix):
    """Propagate (spatial shape, Gaussian?) through layers; 'fresh' = output is W·h + b with
    weights used nowhere else (zero covariance with anything computed before)."""
    fresh = False
    for i, x in enumerate(layers):
        where = f"{prefix}{i} ({x.type})"
        if isinstance(x, Dense):
            gauss, fresh = True, True
        elif isinstance(x, Conv):
            if not sp_shape:
                raise PerturbError(f"{where}: needs N×W×C or N×H×W×C inputs; its input is N×d vectors")
            if len(x.filter) != len(sp_shape):
                raise PerturbError(f"{where}: filter {list(x.filter)} has {len(x.filter)} dimension(s) but the "
                                   f"input has {len(sp_shape)} spatial dimension(s) ({_spatial_text(sp_shape)})")
            if x.padding == "VALID":
                if any(k > s for k, s in zip(x.filter, sp_shape)):
                    raise PerturbError(f"{where}: filter {list(x.filter)} is larger than the "
                                       f"{_spatial_text(sp_shape)} input with padding VALID")
                sp_shape = tuple(s - k + 1 for k, s in zip(x.filter, sp_shape))
            gauss, fresh = True, True
        elif isinstance(x, Act):
            if not gauss:
                raise PerturbError(f"{where}: its input is not a Gaussian pre-activation (the raw input or an "
                                   "activation output reaches it); put a dense or conv layer before it")
            gauss, fresh = False, False
        elif isinstance(x, AvgPool):
            if not sp_shape:
                raise PerturbError(f"{where}: needs spatial inputs; its input is N×d vectors")
            if len(x.window) != len(sp_shape):
                raise PerturbError(f"{where}: window {list(x.window)} has {len(x.window)} dimension(s) but the "
                                   f"input has {len(sp_shape)} spatial dimension(s) ({_spatial_text(sp_shape)})")
            if any(k > s for k, s in zip(x.window, sp_shape)):
                raise PerturbError(f"{where}: window {list(x.window)} is larger than the "
                                   f"{_spatial_text(sp_shape)} input with padding VALID")
            sp_shape = tuple(s // k for k, s in zip(x.window, sp_shape))
        elif isinstance(x, GlobalAvgPool):
            if not sp_shape:
                raise PerturbError(f"{where}: needs spatial inputs; its input is N×d vectors")
            sp_shape = ()
        elif isinstance(x, Flatten):
            sp_shape = ()
        elif isinstance(x, Residual):
            sp_b, g_b, fresh_b = _walk(x.block, sp_shape, gauss, f"{where} block layer ")
            if sp_b != sp_shape:
                raise PerturbError(f"{where}: the block maps {_spatial_text(sp_shape)} to {_spatial_text(sp_b)}; "
                                   "x + block(x) needs the same shape (use SAME padding)")
            if not fresh_b:
                raise PerturbError(f"{where}: the block must end with a dense or conv layer (possibly followed "
                                   "by nothing else), so that block(x) is uncorrelated with x")
            gauss = gauss and g_b
            fresh = False
    return sp_shape, gauss, fresh


# ---------------------------------------------------------------------- the combinator API


def dense(C_W: float = 1.0, C_b: float = 0.0) -> Dense:
    """A dense layer ``{"type": "dense", "C_W": C_W, "C_b": C_b}``.

    >>> dense(2.0).to_spec()
    {'type': 'dense', 'C_W': 2.0, 'C_b': 0.0}
    """
    return Dense(C_W, C_b)


def conv(filter, padding: str = "SAME", C_W: float = 1.0, C_b: float = 0.0) -> Conv:
    """A convolution with filter ``[kh, kw]`` (images) or ``[k]`` (sequences), stride 1.

    >>> conv([3, 3], "VALID", C_W=2.0).filter
    (3, 3)
    """
    return Conv(filter, padding, C_W, C_b)


def act(name) -> Act:
    """An activation layer: a registered name (``"relu"``, ``"erf"``, ...) or an expression in z.

    >>> act("relu(z) - 0.1*z").name
    'relu(z) - 0.1*z'
    """
    return Act(name)


def avg_pool(window, padding: str = "VALID") -> AvgPool:
    """Average pooling over non-overlapping windows (stride = window).

    >>> avg_pool([2, 2]).window
    (2, 2)
    """
    return AvgPool(window, padding)


def global_avg_pool() -> GlobalAvgPool:
    """Average over all positions.

    >>> global_avg_pool().to_spec()
    {'type': 'global_avg_pool'}
    """
    return GlobalAvgPool()


def flatten() -> Flatten:
    """Flatten positions × channels into one vector.

    >>> flatten().to_spec()
    {'type': 'flatten'}
    """
    return Flatten()


def residual(*layers) -> Residual:
    """``x + block(x)`` with ``block = serial(*layers)``.

    >>> residual(act("relu"), conv([3], C_W=2.0)).to_spec()["type"]
    'residual'
    """
    if len(layers) == 1 and isinstance(layers[0], Architecture):
        layers = layers[0].layers
    return Residual(tuple(layers))


def serial(*layers) -> Architecture:
    """An architecture: the layers (or architectures, spliced in) applied in order.

    >>> serial(dense(1.0), act("erf"), dense(1.0)).to_spec()[1]
    {'type': 'act', 'name': 'erf'}
    """
    flat = []
    for x in layers:
        flat.extend(x.layers if isinstance(x, Architecture) else (x,))
    return Architecture(tuple(flat))
