"""The one grammar of the stacks `verify.nn` reads: which layer kinds may follow which, what each contributes.

A frozen network (docs/design.md §1) is ``Linear -> BatchNorm1d -> ReLU -> … -> Linear -> BatchNorm1d``
(`FROZEN`): each Linear is followed by the BatchNorm1d whose weight and bias (γ, β) the construction
tunes, a ReLU separates consecutive pairs and none follows the last. A target is
``Linear -> ReLU -> … -> Linear`` (`TARGET`). Eval-mode ``Dropout`` and ``Identity`` are the identity
and are skipped (`SKIPPED`); anything else is refused, with the reason `REFUSED` gives where there is
one.

Two readers consume this table, each wording its own messages for a step the grammar refuses:
`verify.nn.modules` (torch modules, where a ReLU is a layer) and `verify.nn.rebuild` (state dicts,
where a ReLU has no parameters and shows only as a gap in the layer indices). Both feed their
layers through `walk`. Torch is not imported here: kinds are named as torch names their classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "FROZEN",
    "LAYERNORM_IN_STATE_DICT",
    "LINEAR",
    "NORM",
    "REFUSED",
    "RELU",
    "SKIPPED",
    "TARGET",
    "Grammar",
    "LayerKind",
    "walk",
]


@dataclass(frozen=True)
class LayerKind:
    """One kind of layer and what it contributes.

    A kind has its torch class ``name`` (``"Linear"``, ``"BatchNorm1d"``, ``"ReLU"``); the tensors it
    ``reads`` into the `verify.FrozenNetwork` / `verify.TargetNetwork` (docs/design.md §1); the
    parameters the construction ``tunes`` (BatchNorm's γ, β); further entries a state dict may hold
    that are neither read nor tuned (``stored``); and the entries that may be absent (``optional``:
    a Linear without bias, a BatchNorm1d without a batch counter).
    """

    name: str
    reads: tuple[str, ...] = ()
    tunes: tuple[str, ...] = ()
    stored: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @property
    def entries(self) -> tuple[str, ...]:
        """Every name under which a state dict may store one of its tensors."""
        return self.tunes + self.reads + self.stored

    @property
    def required(self) -> tuple[str, ...]:
        """The entries a state dict must hold for this kind."""
        return tuple(name for name in self.entries if name not in self.optional)


LINEAR = LayerKind("Linear", reads=("weight", "bias"), optional=("bias",))
NORM = LayerKind(
    "BatchNorm1d",
    reads=("running_mean", "running_var"),
    tunes=("weight", "bias"),
    stored=("num_batches_tracked",),
    optional=("num_batches_tracked",),
)
RELU = LayerKind("ReLU")


@dataclass(frozen=True)
class Grammar:
    """Which kinds may start a stack, follow each kind, and end it.

    ``name`` is ``"target"`` or ``"frozen"``; ``after`` maps a kind (``None`` for the start of the
    stack) to the kinds that may follow it; ``last`` holds the kinds a stack may end with.
    """

    name: str
    after: Mapping[LayerKind | None, tuple[LayerKind, ...]]
    last: tuple[LayerKind, ...]

    def allows(self, previous: LayerKind | None, kind: LayerKind) -> bool:
        """Whether ``kind`` may follow ``previous`` (``None``: start the stack)."""
        return kind in self.after.get(previous, ())

    def may_end(self, last: LayerKind | None) -> bool:
        """Whether a stack may end after ``last`` (``None``: an empty stack, never)."""
        return last in self.last


TARGET = Grammar(
    "target",
    after={
        None: (LINEAR,),
        LINEAR: (RELU,),  # a Linear, then its ReLU (or the end: the output is the last Linear)
        RELU: (LINEAR,),
    },
    last=(LINEAR,),
)
"""Linear -> ReLU -> … -> Linear: the target network f (docs/design.md §1)."""

FROZEN = Grammar(
    "frozen",
    after={
        None: (LINEAR,),
        LINEAR: (NORM,),  # every Linear is followed by the BatchNorm1d whose γ, β are tuned
        NORM: (RELU,),  # then a ReLU (or the end: the output is the last BatchNorm1d)
        RELU: (LINEAR,),
    },
    last=(NORM,),  # the output is the last BatchNorm1d: a ReLU after it would change it
)
"""Linear -> BatchNorm1d -> ReLU -> … -> Linear -> BatchNorm1d: the frozen network g (docs/design.md §1)."""

SKIPPED = ("Dropout", "Identity", "Flatten")
"""Layers that are the identity here and are skipped: a Dropout with ``p = 0`` or in eval mode, Identity, and a
Flatten (the networks take flat ``(batch, d_0)`` inputs, on which it is the identity: a model that starts by
flattening images is read as taking the flattened images)."""

_INPUT_STATISTICS = "normalizes with statistics of its own input"
_SCALE_INVARIANT = (
    f"{_INPUT_STATISTICS} (LN(c·h) = LN(h) for c > 0), so tuning it cannot reproduce a target that is not "
    "scale-invariant (docs/design.md §7)"
)
REFUSED = {
    "LayerNorm": f"LayerNorm {_SCALE_INVARIANT}; use BatchNorm1d",
    "GroupNorm": f"GroupNorm {_INPUT_STATISTICS} (docs/design.md §7); use BatchNorm1d",
    "GELU": "the construction needs ReLU (σ(t) = t when active, σ(t) − σ(−t) = t); GELU is not piecewise linear",
    "Sigmoid": "the construction needs ReLU; Sigmoid is not piecewise linear",
    "Tanh": "the construction needs ReLU; Tanh is not piecewise linear",
    **dict.fromkeys(
        (
            "Conv1d",
            "Conv2d",
            "MaxPool1d",
            "MaxPool2d",
            "AvgPool1d",
            "AvgPool2d",
            "AdaptiveAvgPool1d",
            "AdaptiveAvgPool2d",
        ),
        "the MLP reader reads Linear stacks only; a convolutional network is read by fit_norm_layers (through "
        "verify.nn.frozen_like.conv_networks, docs/design.md §8), its frozen network built by frozen_like",
    ),
}
"""Class name -> why a layer of that class cannot be read (docs/design.md §7 for the normalizations)."""

LAYERNORM_IN_STATE_DICT = (
    f"LayerNorm is unsupported: it {_SCALE_INVARIANT}; the frozen network needs BatchNorm1d with running statistics"
)
"""Why a 1-D weight without running statistics (a LayerNorm, as a state dict shows it) is refused."""

T = TypeVar("T")
Step = tuple[LayerKind, T]


def walk(
    grammar: Grammar,
    steps: Iterable[Step[T]],
    refuse: Callable[[Step[T] | None, Step[T] | None], Exception],
) -> Iterator[Step[T]]:
    """Yield each ``(kind, payload)`` of ``steps`` once ``grammar`` allows it after the one before.

    A step the grammar refuses raises ``refuse(previous, step)`` (``previous`` is ``None`` at the
    start); a stack that may not end where it does raises ``refuse(previous, None)``. Being a
    generator, it lets the reader check each yielded layer before the next step is judged, so the
    first problem in layer order is the one reported.
    """
    previous: Step[T] | None = None
    for step in steps:
        if not grammar.allows(None if previous is None else previous[0], step[0]):
            raise refuse(previous, step)
        yield step
        previous = step
    if not grammar.may_end(None if previous is None else previous[0]):
        raise refuse(previous, None)
