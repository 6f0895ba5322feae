"""The pairing of target layer ``k`` with frozen layers ``2k-1`` and ``2k`` (docs/design.md §2).

``B`` is the part of ``M_{2k-1}`` fed by the live neurons of layer ``2k-2`` (the first ``d_{k-1}``;
all inputs for ``k = 1``), ``A`` the rows of ``M_{2k}`` that carry the target (the first ``d_k``;
all rows for ``k = L``). Extra neurons of even layers are switched off. A block hands the solvers its
`ScaleEquation` and the bias shift the per-channel range of its odd layer (`verify.core.channels`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from verify.core.arithmetic import FLOAT, Arithmetic
from verify.core.channels import Channels
from verify.core.domains import AffineRange, Domain
from verify.core.errors import InfeasibleError
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.core.scale_equation import ScaleEquation

__all__ = ["Block", "blocks", "check_architecture", "widths_mismatch"]


@dataclass(frozen=True)
class Block:
    """The matrices of block ``k``: ``A`` (d_k, n), ``B`` (n, d_{k-1}), frozen biases, target layer, and
    the channels of its odd layer."""

    k: int
    a: np.ndarray
    b: np.ndarray
    c_odd: np.ndarray
    c_even: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    channels: Channels

    @cached_property
    def equation(self) -> ScaleEquation:
        """The block's scale equation ``A diag(γ) B = W`` (docs/design.md §2), built once."""
        return ScaleEquation(self.a, self.b, self.w)

    @cached_property
    def half_equation(self) -> ScaleEquation:
        """A paired block's equation on one half, ``A_h diag(γ) B_h = W`` (docs/design.md §3)."""
        m = self.pairs
        if m is None:
            raise ValueError(f"block {self.k} is not paired ([B; -B], [A, -A])")
        return ScaleEquation(self.a[:, :m], self.b[:m], self.w)

    def odd_range(self, region: Domain, arithmetic: Arithmetic = FLOAT) -> AffineRange:
        """Per-channel range of the odd layer's input ``h = B z + c`` for ``z`` in ``region`` (docs/design.md §2)."""
        return self.channels.reduce_range(arithmetic.affine_range(region, self.b, self.c_odd))

    @property
    def pairs(self) -> int | None:
        """``m`` if the block is paired (docs/design.md §3): ``B = [B_h; −B_h]``, ``c = [c_h; −c_h]`` (zero
        biases included) and ``A = [A_h, −A_h]`` exactly, with ``m >= 1`` rows in each half; otherwise None.

        Bit-for-bit equality is the right test: negation is exact in floating point, so a mirrored
        network stays mirrored through any conversion (float32, torch), and a block that is mirrored
        only approximately is not paired (its halves do not cancel exactly). `reconstruct` solves a
        paired block on its halves on any domain, so the two equal Khatri–Rao columns of a mirrored
        pair never both enter one system."""
        n = self.b.shape[0]
        if n == 0 or n % 2:
            return None
        m = n // 2
        mirrored = (
            np.array_equal(self.b[m:], -self.b[:m])
            and np.array_equal(self.c_odd[m:], -self.c_odd[:m])
            and np.array_equal(self.a[:, m:], -self.a[:, :m])
        )
        return m if mirrored else None

    @property
    def odd(self) -> int:
        """0-based index of frozen layer ``2k-1``."""
        return 2 * self.k - 2

    @property
    def even(self) -> int:
        """0-based index of frozen layer ``2k``."""
        return 2 * self.k - 1


def blocks(target: TargetNetwork, frozen: FrozenNetwork) -> Iterator[Block]:
    """Yield the blocks ``k = 1 … L`` (call `check_architecture` first)."""
    d = target.widths
    for k in range(1, target.depth + 1):
        odd, even = 2 * k - 2, 2 * k - 1
        yield Block(
            k=k,
            a=frozen.weights[even][: d[k], :],
            b=frozen.weights[odd][:, : d[k - 1]],
            c_odd=frozen.biases[odd],
            c_even=frozen.biases[even][: d[k]],
            w=target.weights[k - 1],
            bias=target.biases[k - 1],
            channels=frozen.channels[odd],
        )


def widths_mismatch(d: Sequence[int], n: Sequence[int]) -> tuple[str, int, int] | None:
    """The first reason frozen widths ``n`` cannot carry target widths ``d`` (docs/design.md §1), or None.

    Returns ``("depth", layers, 2L)`` when ``n`` does not have ``2L`` layers for a target of depth
    ``L``, ``("inputs", n_0, d_0)`` or ``("outputs", n_2L, d_L)`` when the input or output widths
    differ. Each caller words the reason for its own audience (`check_architecture` for networks,
    ``python -m verify reconstruct`` for saved state dicts).
    """
    if len(n) - 1 != 2 * (len(d) - 1):
        return "depth", len(n) - 1, 2 * (len(d) - 1)
    if n[0] != d[0]:
        return "inputs", n[0], d[0]
    if n[-1] != d[-1]:
        return "outputs", n[-1], d[-1]
    return None


_MISMATCH = {
    "depth": "frozen has {have} layers but a target of depth L = {depth} needs 2L = {need}",
    "inputs": "frozen input width n_0 = {have} must equal the target's d_0 = {need}",
    "outputs": "frozen output width n_{layers} = {have} must equal the target's d_L = {need}",
}


def check_architecture(target: object, frozen: object) -> None:
    """Raise ValueError (InfeasibleError for a too-narrow even layer) unless ``frozen`` can carry ``target``."""
    if not isinstance(target, TargetNetwork):
        raise ValueError(f"target must be a verify.TargetNetwork, got {type(target).__name__}")
    if not isinstance(frozen, FrozenNetwork):
        raise ValueError(f"frozen must be a verify.FrozenNetwork, got {type(frozen).__name__}")
    d, n = target.widths, frozen.widths
    mismatch = widths_mismatch(d, n)
    if mismatch is not None:
        kind, have, need = mismatch
        raise ValueError(_MISMATCH[kind].format(have=have, need=need, depth=target.depth, layers=2 * target.depth))
    for k in range(1, target.depth):
        if n[2 * k] < d[k]:
            raise InfeasibleError(
                f"block {k}: even frozen layer {2 * k} has {n[2 * k]} neurons but must carry d_{k} = {d[k]} target "
                f"neurons; use width >= {d[k]}",
                block=k,
                width=n[2 * k],
                width_needed=d[k],
            )
