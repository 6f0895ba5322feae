"""Errors raised by the construction.

`InfeasibleError` is the honest "the theorem does not apply here" answer: the frozen widths are
below what the chosen mode needs, or the Khatri–Rao system of a block is rank-deficient.
`CertificateError` means a solve finished but its certificate (docs/design.md §6) failed; such a result is
never returned.
"""

from __future__ import annotations

__all__ = ["CertificateError", "InfeasibleError"]


class InfeasibleError(ValueError):
    """The frozen network cannot reproduce the target with the requested mode.

    Attributes
    ----------
    block : int or None
        1-based index k of the failing block (target layer k, frozen layers 2k-1 and 2k).
    rank, needed : int or None
        The rank found for the block's linear system and the rank the mode needs.
    width, width_needed : int or None
        The frozen odd-layer width of the block and a width that would work.
    """

    def __init__(
        self,
        message: str,
        *,
        block: int | None = None,
        rank: int | None = None,
        needed: int | None = None,
        width: int | None = None,
        width_needed: int | None = None,
    ) -> None:
        super().__init__(message)
        self.block = block
        self.rank = rank
        self.needed = needed
        self.width = width
        self.width_needed = width_needed


class CertificateError(ArithmeticError):
    """A reconstruction was computed but its certificate does not hold.

    The failed `Certificate` is attached as ``.certificate`` so that the figures can be inspected.
    """

    def __init__(self, message: str, certificate: object) -> None:
        super().__init__(message)
        self.certificate = certificate
