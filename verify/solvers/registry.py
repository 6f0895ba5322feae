"""Solvers of one block's scale equation behind one interface (docs/design.md §5).

Every solver takes a `verify.core.scale_equation.ScaleEquation` and returns a `ScaleSolution` whose
``method`` names what ran and whose ``diagnostics`` hold the solver's own figures (iterations, stop
reason, status, chosen columns), so that the certificate can report them. `SOLVERS` maps each name
to its module:

* ``direct``: LU on a square ``K`` (`verify.solvers.direct`). ``O(d⁶)``.
* ``lstsq``: minimum-norm least squares on the explicit ``K`` (SVD, `verify.solvers.lstsq`). ``O(d⁶)``.
* ``iterative``: matrix-free LSMR, scipy's or torch's on the tensors' device
  (`verify.solvers.iterative`). ``O(d⁴)`` per iteration, memory ``O(d³)``.
* ``l1``, ``linf``, ``box``, ``min_shift``: convex programs (`verify.solvers.convex`).
* ``exact``: rational arithmetic (`verify.solvers.exact`; its rationals come from ``solve_exact``).
* ``minimal``: the minimal mode's homogeneous system (`verify.solvers.minimal`).
* ``auto``: ``direct`` at the exact width, ``lstsq`` up to ``d_out·d_in = 1024``, else ``iterative``.

`METHODS` are the names `reconstruct` accepts for paper mode (``minimal`` is a mode, not a method).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from verify.core.scale_equation import ScaleEquation, ScaleSolution, as_equation
from verify.solvers.direct import solve_direct
from verify.solvers.iterative import solve_iterative
from verify.solvers.lstsq import solve_lstsq
from verify.solvers.minimal import solve_minimal

__all__ = [
    "AUTO_LSTSQ_LIMIT",
    "METHODS",
    "SOLVERS",
    "choose",
    "solve",
    "solve_direct",
    "solve_iterative",
    "solve_with",
]

METHODS = ("auto", "direct", "lstsq", "iterative", "l1", "linf", "box", "min_shift", "exact")
AUTO_LSTSQ_LIMIT = 1024
"""``auto`` uses the explicit ``K`` up to this many equations (``d = 32``), the iterative solver beyond."""


def _convex(method: str) -> Callable[..., ScaleSolution]:
    def run(equation: ScaleEquation, *, block: int, bound: float | None = None, image: Any = None) -> ScaleSolution:
        from verify.solvers.convex import solve_convex  # cvxpy is imported only when a convex method runs

        return solve_convex(method, equation, block=block, bound=bound, image=image)

    return run


def _exact(equation: ScaleEquation, *, block: int) -> ScaleSolution:
    from verify.solvers.exact import solve_exact  # python-flint is imported only when it runs

    return solve_exact(equation, block=block)[0]


SOLVERS: dict[str, Callable[..., ScaleSolution]] = {
    "direct": solve_direct,
    "lstsq": solve_lstsq,
    "iterative": solve_iterative,
    "l1": _convex("l1"),
    "linf": _convex("linf"),
    "box": _convex("box"),
    "min_shift": _convex("min_shift"),
    "exact": _exact,
    "minimal": solve_minimal,
}
"""Every solver by name: ``solver(equation, *, block, **its options) -> ScaleSolution``."""

_OPTIONS = {"iterative": ("device",), "box": ("bound",), "min_shift": ("image",)}
"""The options each solver takes (the others are ignored, so one call can carry all of them)."""


def choose(n: int, needed: int) -> str:
    """The method ``auto`` picks for a block with ``n`` neurons and ``needed`` equations."""
    if n == needed:
        return "direct"
    return "lstsq" if needed <= AUTO_LSTSQ_LIMIT else "iterative"


def solve(method: str, equation: ScaleEquation, *, block: int, **options: Any) -> ScaleSolution:
    """Solve block ``block``'s scale equation with ``method`` (``auto`` or a key of `SOLVERS`).

    ``options``: ``bound`` (for ``box``), ``image`` (the odd layer's `AffineRange`, for ``min_shift``),
    ``device`` (a `TorchSpec`: run ``iterative`` in torch there); a solver ignores the others.
    """
    if method == "auto":
        solution = solve(choose(equation.n, equation.needed), equation, block=block, **options)
        return replace(solution, method=f"auto -> {solution.method}")
    if method not in SOLVERS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    taken = {name: options[name] for name in _OPTIONS.get(method, ()) if name in options}
    return SOLVERS[method](equation, block=block, **taken)


def solve_with(method: str, *operands: Any, block: int, **options: Any) -> ScaleSolution:
    """`solve` for one `ScaleEquation` or its three matrices ``a, b, w`` (the call form of earlier versions)."""
    return solve(method, as_equation(operands), block=block, **options)
