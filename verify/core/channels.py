"""What a normalization scales: the channels of a layer (docs/design.md §1).

A BatchNorm has one ``(gamma, beta)`` per *channel*. In a dense layer every neuron is its own
channel; in a convolution one channel covers all positions of a feature map. Two things in the
construction depend on that grouping, and this module is where a layer says how:

* ``count``: how many scales ``γ`` (and shifts) the layer's normalization has;
* `Channels.reduce_range`: the value ranges of the layer's outputs, computed per *position* by
  interval bounds (docs/design.md §2), reduced to one range per channel, so that one shift per
  channel covers every position of it (the hull of the positions' ranges).

Everything downstream of the block's `verify.core.scale_equation.ScaleEquation` (the solvers and the
feasibility decision) sees channels only as the columns of ``K``. A dense layer's maps are the
identity (`DenseChannels`); a convolution's (`ConvChannels`, docs/design.md §9) takes the hull of
each channel's ranges over its output positions, and its scale equation is the dense one on
flattened kernels (one column per channel: a channel's scale multiplies its whole kernel).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from verify.core.domains import AffineRange

__all__ = ["Channels", "ConvChannels", "DenseChannels"]


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


@dataclass(frozen=True)
class ConvChannels(Channels):
    """A convolution of ``width`` output channels at ``positions`` output positions each.

    ``reduce_range`` takes, per channel, the hull of its positions' ranges: ``lo = min_p (mid_p − rad_p)``,
    ``hi = max_p (mid_p + rad_p)`` and the largest magnitude. The bias shift over the hull is then
    ``max_p`` of the closed-form shift of each position (docs/design.md §9): one shift per channel
    that keeps the channel active at every position.
    """

    width: int
    positions: int

    @property
    def count(self) -> int:
        """``width``: one scale per channel, shared by all its positions."""
        return self.width

    def reduce_range(self, image: AffineRange) -> AffineRange:
        """The hull over positions of ranges given per (channel, position), shape ``(width, positions)``."""
        shape = (self.width, self.positions)
        if np.size(image.mid) != self.width * self.positions:
            raise ValueError(
                f"a range of {np.size(image.mid)} outputs does not fit a convolution of {self.width} channels at "
                f"{self.positions} positions"
            )
        mid, rad = np.reshape(image.mid, shape), np.reshape(image.rad, shape)
        lo, hi = np.min(mid - rad, axis=1), np.max(mid + rad, axis=1)
        centre = (lo + hi) / 2
        half = np.maximum(hi - centre, centre - lo)  # the hull, whatever the rounding of the centre
        return AffineRange(centre, half, np.max(np.reshape(image.size, shape), axis=1))
