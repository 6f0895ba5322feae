"""Solvers of one block's scale equation behind one interface (docs/design.md §5).

Every solver takes a `verify.core.scale_equation.ScaleEquation` and returns a `ScaleSolution` whose
``method`` names what ran and whose ``diagnostics`` hold the solver's own figures (iterations, stop
reason, status, chosen columns), so that the certificate can report them. `SOLVERS` maps each name
to its module:

* ``direct``: LU on a square ``K`` (`verify.solvers.direct`). ``O(d⁶)``.
* ``lstsq``: minimum-norm least squares on the explicit ``K`` (SVD, `verify.solvers.lstsq`). ``O(d⁶)``.
* ``iterative``: matrix-free LSMR, scipy's or torch's on the tensors' device
  (`verify.solvers.iterative`). ``O(d⁴)`` per iteration, memory ``O(d³)``.
* ``l1``, ``linf``, ``box``, ``min_shift``, ``min_bound``: convex programs (`verify.solvers.convex`);
  ``min_bound`` minimizes the proxy of the certified bound of `verify.solvers.min_bound` exactly.
* ``weighted``: the minimum weighted norm ``min ‖D γ‖₂`` with the bound's per-neuron costs ``D``
  (`verify.solvers.min_bound`): ``lstsq`` or ``iterative`` (chosen as ``auto`` would) on ``K D⁻¹``.
* ``exact``: rational arithmetic (`verify.solvers.exact`; its rationals come from ``solve_exact``).
* ``minimal``: the minimal mode's homogeneous system (`verify.solvers.minimal`).
* ``auto``: ``direct`` at the exact width while its time estimate is at most
  `verify.solvers.planning.AUTO_DIRECT_SECONDS` or at most ``iterative``'s, ``lstsq`` up to
  ``d_out·d_in = 1024``, else ``iterative``;
  ``iterative`` also whenever the explicit method would not fit in the available memory. Wider than the
  exact width, when the odd layer's input range is given (``image``: a shifted block), ``auto`` runs
  that same method as ``weighted``: among the solutions it takes the one of smallest weighted norm, whose
  certified bound is smaller (docs/design.md §5, *Which solution*); ``lstsq`` and ``iterative`` named
  explicitly keep the plain minimum norm.

A solve estimated longer than a minute (`verify.solvers.planning.estimate_seconds`) is announced with its
estimate on standard error first, when that is a terminal (`verify.solvers.planning.announce`).

Before a solver runs, its `memory_estimate` is compared with the available memory
(`available_memory`): an explicit method that would not fit is refused with a `ValueError` naming
the estimate and a method that fits (`check_memory`), instead of dying in a raw ``MemoryError``.

`METHODS` are the names `reconstruct` accepts for paper mode (``minimal`` is a mode, not a method).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from verify.core import memory
from verify.core.scale_equation import ScaleEquation, ScaleSolution, as_equation
from verify.core.threads import limited
from verify.solvers.direct import solve_direct
from verify.solvers.iterative import solve_iterative
from verify.solvers.lstsq import solve_lstsq
from verify.solvers.min_bound import ITERATIVE_REWEIGHTS, REWEIGHTS, solve_weighted
from verify.solvers.minimal import solve_minimal
from verify.solvers.planning import AUTO_DIRECT_SECONDS, announce, estimate_seconds

__all__ = [
    "AUTO_LSTSQ_LIMIT",
    "METHODS",
    "SOLVERS",
    "available_memory",
    "check_memory",
    "choose",
    "memory_estimate",
    "solve",
    "solve_direct",
    "solve_iterative",
    "solve_with",
]

METHODS = (
    "auto",
    "direct",
    "lstsq",
    "iterative",
    "weighted",
    "l1",
    "linf",
    "box",
    "min_shift",
    "min_bound",
    "exact",
)
AUTO_LSTSQ_LIMIT = 1024
"""``auto`` uses the explicit ``K`` up to this many equations (``d = 32``), the iterative solver beyond."""


def _convex(method: str) -> Callable[..., ScaleSolution]:
    def run(
        equation: ScaleEquation, *, block: int, bound: float | None = None, image: Any = None, mean: Any = None
    ) -> ScaleSolution:
        from verify.solvers.convex import solve_convex  # cvxpy is imported only when a convex method runs

        return solve_convex(method, equation, block=block, bound=bound, image=image, mean=mean)

    return run


def _weighted(
    equation: ScaleEquation, *, block: int, image: Any = None, mean: Any = None, device: Any = None
) -> ScaleSolution:
    """``weighted`` (`verify.solvers.min_bound.solve_weighted`): the minimum-norm method ``auto`` would pick for
    the size on ``K D⁻¹``, then `verify.solvers.min_bound.REWEIGHTS` reweighted passes with it (module notes there),
    `verify.solvers.min_bound.ITERATIVE_REWEIGHTS` when that method is ``iterative`` (each pass is a large solve)."""
    if image is None:
        raise ValueError(
            "method 'weighted' needs the odd layer's input range (a shifted block on a bounded domain); a paired "
            "block has no shift: use 'auto', 'lstsq' or 'iterative'"
        )
    inner = choose(equation.n, equation.needed, d_out=equation.d_out, d_in=equation.d_in)
    inner = "lstsq" if inner == "direct" else inner  # the minimum norm of K D⁻¹ y = w (direct picks a subset)
    return solve_weighted(
        equation,
        image,
        lambda scaled: solve(inner, scaled, block=block, device=device),
        name=inner,
        mean=mean,
        reweights=ITERATIVE_REWEIGHTS if inner == "iterative" else REWEIGHTS,
    )


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
    "min_bound": _convex("min_bound"),
    "weighted": _weighted,
    "exact": _exact,
    "minimal": solve_minimal,
}
"""Every solver by name: ``solver(equation, *, block, **its options) -> ScaleSolution``."""

_NORMALIZED = ("direct", "lstsq", "minimal")
"""Solvers run on `ScaleEquation.normalized` here (powers of two, exact; ``γ`` scaled back): their
verdicts then do not depend on the scale of the frozen weights or the target. ``iterative`` and the
convex programs normalize themselves (the convex ones keep ``box``'s bound in ``γ``'s units);
``exact`` is exact."""

_OPTIONS = {
    "iterative": ("device",),
    "box": ("bound",),
    "min_shift": ("image",),
    "min_bound": ("image", "mean"),
    "weighted": ("image", "mean", "device"),
    "minimal": ("image", "mean"),
}
"""The options each solver takes (the others are ignored, so one call can carry all of them)."""


def memory_estimate(method: str, n: int, d_out: int, d_in: int) -> int:
    """Estimated peak bytes of ``method`` on one block (``n`` neurons, ``d_out·d_in`` equations), beyond its inputs.

    Counted in float64 arrays, from what each solver allocates (``m = d_out·d_in``, ``k = min(m, n)``):

    * ``lstsq``: ``K`` and the SVD's copy of it (``2mn``), ``U`` and ``Vᵀ`` (``mk + kn``), LAPACK's
      ``gesdd`` workspace (``~4k²``);
    * ``direct``: ``K`` (``mn``), QR with column pivoting on a copy when ``n > m`` (``mn``), the square
      subset, its LU and LAPACK's copies (``4m²``: an upper bound since the condition estimate no longer
      forms an inverse);
    * ``l1``, ``linf``, ``box``, ``min_shift``, ``min_bound``: ``K``, the singular values' copy, and cvxpy's
      canonicalized constraint matrix (sparse, with indices, built more than once): ``16mn``;
    * ``weighted``: its inner method's, plus the scaled copy of ``B`` and the weights (``n(d_in + 1)``);
    * ``exact``: ``K`` and the rational square system (`verify.solvers.exact` limits its size);
    * ``minimal``: the system ``[W-part | −K]`` (``m × c``, ``c = d_out + n``), its parts, its
      equilibrated copy and the SVD's copy (``5mc``), ``U`` (``m²``, full) and its workspace (``m²``),
      ``Vᵀ`` (``c²``);
    * ``iterative``: ``A``, ``B``, their absolute values and float64 copies (``4n(d_out + d_in)``) and
      LSMR's vectors (``~10 max(m, n)``).

    Checked with ``tracemalloc`` against every solver at ``d = 16, 24`` and ``n = d², 2d²``: each
    estimate is within 10% of the measured peak or above it.
    """
    m = d_out * d_in
    k = min(m, n)
    if method == "iterative":
        words = 4 * n * (d_out + d_in) + 10 * max(m, n)
    elif method == "lstsq":
        words = 2 * m * n + m * k + k * n + 4 * k * k
    elif method == "direct":
        words = (2 if n > m else 1) * m * n + 4 * m * m
    elif method in ("l1", "linf", "box", "min_shift", "min_bound"):
        words = 16 * m * n
    elif method == "weighted":
        inner = choose(n, m, d_out=d_out, d_in=d_in)
        return memory_estimate("lstsq" if inner == "direct" else inner, n, d_out, d_in) + 8 * n * (d_in + 1)
    elif method == "exact":
        words = 2 * m * n
    elif method == "minimal":
        columns = d_out + n
        words = 5 * m * columns + 2 * m * m + columns * columns
    else:
        raise ValueError(f"method must be one of {METHODS} or 'minimal', got {method!r}")
    return 8 * words


def available_memory() -> int | None:
    """Bytes a new allocation can take: `verify.core.memory.available_memory` (``MemAvailable``, the
    ``RLIMIT_AS``/``RLIMIT_DATA`` headroom and the cgroup's limit); None when none can be read."""
    return memory.available_memory()


def _gib(size: float) -> str:
    return f"{size / 2**30:.3g} GiB"


def check_memory(method: str, n: int, d_out: int, d_in: int, *, block: int, available: int | None = None) -> None:
    """Refuse ``method`` on a block whose `memory_estimate` exceeds ``available`` bytes (default
    `available_memory`): a `ValueError` naming the estimate, what is available and a method that fits."""
    available = available_memory() if available is None else available
    needed = memory_estimate(method, n, d_out, d_in)
    if available is None or needed <= available:
        return
    lean = memory_estimate("iterative", n, d_out, d_in)
    advice = (
        f"method 'iterative' (matrix-free LSMR, never forms K) needs about {_gib(lean)}: use method='iterative' "
        "(or 'auto', which picks a method that fits)"
        if lean <= available
        else f"even method 'iterative' needs about {_gib(lean)}: the block is too large for this machine"
    )
    raise ValueError(
        f"block {block}: method {method!r} needs about {_gib(needed)} of memory for the Khatri–Rao system "
        f"({d_out * d_in} equations x {n} neurons) but only {_gib(available)} is available; {advice}"
    )


def choose(
    n: int, needed: int, *, d_out: int | None = None, d_in: int | None = None, available: int | None = None
) -> str:
    """The method ``auto`` picks for a block with ``n`` neurons and ``needed`` equations: ``direct`` at the
    exact width while its `estimate_seconds` is at most `AUTO_DIRECT_SECONDS` or at most ``iterative``'s
    (whose square systems converge slowly), ``lstsq`` up to
    `AUTO_LSTSQ_LIMIT` equations, else ``iterative``; and ``iterative`` whenever the explicit method's
    `memory_estimate` exceeds ``available`` bytes (default `available_memory`). ``d_out, d_in``
    (default ``needed, 1``) only refine the memory estimate (the time estimate depends on ``needed``)."""
    seconds = estimate_seconds("direct", n, needed, 1) or 0.0
    # At the exact width: direct while it is short, and beyond that while it is still faster than LSMR's
    # slowly converging square system (d = 128: a 150 s LU against an estimated half hour of LSMR).
    faster = seconds <= (estimate_seconds("iterative", n, needed, 1) or 0.0)
    direct = n == needed and (seconds <= AUTO_DIRECT_SECONDS or faster)
    method = "direct" if direct else "lstsq" if n != needed and needed <= AUTO_LSTSQ_LIMIT else "iterative"
    if method == "iterative":
        return method
    available = available_memory() if available is None else available
    d_out, d_in = (needed, 1) if d_out is None or d_in is None else (d_out, d_in)
    if available is not None and memory_estimate(method, n, d_out, d_in) > available:
        return "iterative"
    return method


@limited
def solve(method: str, equation: ScaleEquation, *, block: int, **options: Any) -> ScaleSolution:
    """Solve block ``block``'s scale equation with ``method`` (``auto`` or a key of `SOLVERS`).

    ``options``: ``bound`` (for ``box``), ``image`` (the odd layer's `AffineRange`, for ``min_shift``,
    ``min_bound``, ``weighted``, and for ``auto``, which runs ``weighted`` with it above the exact width),
    ``mean`` (the odd layer's running mean, for ``min_bound`` and ``weighted``), ``device`` (a `TorchSpec`: run
    ``iterative`` in torch there); a solver ignores the others. A method
    whose `memory_estimate` exceeds the available memory is refused before it allocates (`check_memory`);
    ``auto`` never picks one.
    """
    shape = (equation.n, equation.d_out, equation.d_in)
    if method == "auto":
        chosen = choose(equation.n, equation.needed, d_out=equation.d_out, d_in=equation.d_in)
        if chosen != "direct" and options.get("image") is not None and equation.n > equation.needed:
            chosen = "weighted"  # a null space to choose in: the solution of smaller bound, at the same cost
        solution = solve(chosen, equation, block=block, **options)
        return replace(solution, method=f"auto -> {solution.method}")
    if method not in SOLVERS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method not in ("iterative", "weighted") or options.get("device") is None:  # a device's memory is not the host's
        check_memory(method, *shape, block=block)
    announce(method, estimate_seconds(method, *shape), block=block, shape=shape)
    if method in _NORMALIZED:
        normalized, unit = equation.normalized()
        taken = {name: options[name] for name in _OPTIONS.get(method, ()) if name in options}
        solution = SOLVERS[method](normalized, block=block, **taken)  # image, mean: homogeneous, units kept
        if unit == 1.0:
            return solution
        return replace(
            solution, scale=solution.scale * unit, diagnostics=solution.diagnostics | {"normalization": unit}
        )
    taken = {name: options[name] for name in _OPTIONS.get(method, ()) if name in options}
    return SOLVERS[method](equation, block=block, **taken)


def solve_with(method: str, *operands: Any, block: int, **options: Any) -> ScaleSolution:
    """`solve` for one `ScaleEquation` or its three matrices ``a, b, w`` (the call form of earlier versions)."""
    return solve(method, as_equation(operands), block=block, **options)
