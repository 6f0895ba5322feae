"""Odd-layer widths: the paper's and the minimal width of one block, and a ``width`` argument resolved per block.

Every frozen network builder (`verify.FrozenNetwork.for_target`, `verify.ConvFrozenNetwork.for_target`,
`verify.ResidualFrozenNetwork.for_target`) takes ``width`` as ``"paper"``, ``"minimal"``, an int, a float
multiple of the paper width or a list; `resolve_widths` reads the first four, one rule for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from verify.core.validate import as_count, as_sequence

__all__ = ["layer_widths", "minimal_width", "paper_width", "resolve_widths", "whole_widths"]


def paper_width(d_out: int, d_in: int) -> int:
    """Odd-layer width of the paper's construction for one block: ``d_out * d_in`` (docs/design.md §2)."""
    return as_count(d_out, "d_out") * as_count(d_in, "d_in")


def minimal_width(d_out: int, d_in: int) -> int:
    """Smallest odd-layer width of the linear-regime construction: ``d_out * (d_in - 1) + 1``.

    Below it a generic target layer has no solution with free output scales (docs/design.md §2, minimal
    mode): the homogeneous system has more equations than unknowns minus one.
    """
    return as_count(d_out, "d_out") * (as_count(d_in, "d_in") - 1) + 1


def resolve_widths(width: object, need: Callable[[str], list[int]], listed: str = "a list of ints") -> list[int] | None:
    """A ``width`` argument given as ``"paper"``, ``"minimal"``, an int or a float, resolved to one odd width per
    entry of ``need(mode)`` (the widths each mode needs): an int for every entry, a float ``f`` gives
    ``ceil(f · need("paper"))``. None for any other value (a list: the caller reads it); ValueError naming what works
    (``listed``: how the caller's list form is described)."""
    if isinstance(width, str):
        if width not in ("paper", "minimal"):
            raise ValueError(f"width must be 'paper', 'minimal', an int, a float or {listed}, got {width!r}")
        return need(width)
    if isinstance(width, bool):
        raise ValueError(f"width must be 'paper', 'minimal', an int, a float or {listed}, got {width!r}")
    if isinstance(width, (int, np.integer)):
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        return [int(width)] * len(need("paper"))
    if isinstance(width, (float, np.floating)):
        if not np.isfinite(width) or width <= 0:
            raise ValueError(f"width as a multiple of the paper width must be positive and finite, got {width}")
        return [max(1, int(np.ceil(width * n - 1e-9))) for n in need("paper")]
    return None


def whole_widths(width: object, name: str, count: int, per: str) -> list[int]:
    """``width`` as a list of ``count`` integers ``>= 1``; ValueError naming ``name`` and what it is ``per``."""
    items = as_sequence(width, name, count)
    if any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 for w in items):
        raise ValueError(f"{name} as a list must hold one integer >= 1 per {per}, got {items!r}")
    return [int(w) for w in items]


def layer_widths(width: object, sizes: Sequence[tuple[int, int]]) -> list[int]:
    """The ``width`` of `FrozenNetwork.for_target` resolved to one odd width per layer of ``(d_out, d_in)`` ``sizes``:
    ``"paper"`` ``d_out·d_in``, ``"minimal"`` ``d_out(d_in − 1) + 1``, an int, a float multiple of paper, or a list."""
    rules = {"paper": paper_width, "minimal": minimal_width}
    found = resolve_widths(width, lambda mode: [rules[mode](d_out, d_in) for d_out, d_in in sizes])
    return found if found is not None else whole_widths(width, "width", len(sizes), "block")
