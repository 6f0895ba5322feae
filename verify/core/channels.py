"""What a normalization scales: the channels of a layer (docs/design.md §1).

A BatchNorm has one ``(gamma, beta)`` per *channel*. In a dense layer every neuron is its own
channel; in a convolution one channel covers all positions of a feature map. Two things in the
construction depend on that grouping, and this module is where a layer says how:

* ``count``: how many scales ``γ`` (and shifts) the layer's normalization has;
* `Channels.reduce_range`: the value ranges of the layer's outputs, computed per *position* by
  interval bounds (docs/design.md §2), reduced to one range per channel, so that one shift per
  channel covers every position of it (the hull of the positions' ranges).

Everything downstream of the block's `verify.core.scale_equation.ScaleEquation` (the solvers and the
feasibility decision) sees channels only as the columns of ``K``. Only the dense layer is
implemented (`DenseChannels`, where both maps are the identity); a convolution would add a
`Channels` whose ``reduce_range`` takes the hull over positions and a scale equation whose column
for a channel sums the Khatri–Rao columns of its positions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from verify.core.domains import AffineRange

__all__ = ["Channels", "DenseChannels"]


class Channels(ABC):
    """How one layer's outputs group into the channels its normalization scales (see module notes)."""

    @property
    @abstractmethod
    def count(self) -> int:
        """Number of channels: entries of the layer's ``gamma`` and ``beta``."""

    @abstractmethod
    def reduce_range(self, image: AffineRange) -> AffineRange:
        """Per-position output ranges of the layer reduced to per-channel ranges (each containing its positions')."""


@dataclass(frozen=True)
class DenseChannels(Channels):
    """A dense layer of ``width`` neurons: each neuron is a channel, and ranges are already per channel."""

    width: int

    @property
    def count(self) -> int:
        """``width``: one channel per neuron."""
        return self.width

    def reduce_range(self, image: AffineRange) -> AffineRange:
        """The identity (a neuron is one position of one channel); checks the range has one entry per neuron."""
        if len(image.mid) != self.width:
            raise ValueError(f"a range of {len(image.mid)} outputs does not fit a dense layer of {self.width} neurons")
        return image
