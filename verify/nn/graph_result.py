"""What `verify.nn.graph_fit.fit_graph` returns: one `NodeFit` per target layer and the graph's certificate.

The figures (docs/design.md §10): the rigorous bound on ``|ĝ − f̂|`` at the output over the whole domain and
at every node, the end-to-end check of both modules' own forwards on fresh points against it, and per pair
the bias shift against the signal and the error carried in against the activity margins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify.construction.reconstruct import Reconstruction
from verify.core.domains import Domain
from verify.core.f_max import accuracy_reference, bound_over_f_max, holds_against_f_max
from verify.core.numerics import json_ready, residual_ratio

__all__ = ["GraphReconstruction", "NodeFit"]


@dataclass(frozen=True)
class NodeFit:
    """One target Linear of the graph and the reconstruction of its frozen pair.

    Attributes
    ----------
    name, source : str
        The graph node and where it comes from (module path and class).
    depth : int
        Linear nodes on the longest path from the input up to and including this one.
    result : verify.Reconstruction
        The pair's one-block reconstruction, with its certificate (on ``region``).
    region : Domain
        The box (or, for a Linear reading the input, the domain) its certificate covers.
    shift_ratio : float
        ``max τ / max |s ⊙ (B z + c)|`` over the first `verify.nn.graph_fit.CHECK_BATCH` sample points: the
        largest bias shift against the signal.
    margin_ratio : float
        ``max |s| (|B| e_in) / margin`` over the odd neurons (0/0 read as 0): ``<= 1`` means the error
        carried into the pair cannot take a shifted neuron out of its linear regime (above 1, the graph
        bound counts how far it may leave it).
    error_bound : float
        Rigorous bound on ``|ĝ − f̂|`` at the node's output over the domain (largest entry).
    observed_error : float
        ``max |ĝ − f̂|`` at the node's output over the sample points (torch's forwards).
    scale : float
        The target's absolute-value evaluation at the node's output (largest entry).
    seconds : float
        Wall time of the pair's reconstruction.
    """

    name: str
    source: str
    depth: int
    result: Reconstruction
    region: Domain
    shift_ratio: float
    margin_ratio: float
    error_bound: float
    observed_error: float
    scale: float
    seconds: float = 0.0

    @property
    def error_ratio(self) -> float:
        """``observed_error / error_bound`` (0/0 read as 0): must be ``<= 1``."""
        return residual_ratio(np.array(self.observed_error), np.array(self.error_bound))


@dataclass(frozen=True, eq=False)
class GraphReconstruction:
    """The reconstruction of a target graph: one `NodeFit` per Linear, and the whole graph's certificate.

    Attributes
    ----------
    nodes : tuple of NodeFit
        In topological order.
    error_bound : float
        Rigorous bound on ``max |ĝ − f̂|`` at the output over the whole domain, for the frozen module
        evaluated in its dtype in any summation order (`verify.core.graph_bound.graph_error_bound`);
        ``inf`` when an intermediate value may overflow (``reason`` says where).
    scale : float
        The target's absolute-value evaluation at the output over the domain (largest entry): a figure.
    rtol : float
        Accuracy demanded: ``error_bound <= rtol · f_max`` (`verify.core.f_max.holds_against_f_max`).
    points : int
        Fresh domain points of the end-to-end check (half on the boundary; a box's corners included).
    max_abs_error, max_relative_error : float
        ``max |g(x) − f(x)|`` of the modules' own operations on those points, and that over ``max |f(x)|``.
    output_size : float
        ``max |f(x)|`` over those points: what the output really is, against ``scale``, what the interval
        bounds allow it to be.
    f_max : float
        ``max (|f̂(x)| − δ_f)`` over those points that provably lie in the domain and every output, ``δ_f`` the
        graph bound on the target module's own rounding at the output (`verify.core.f_max.sampled_f_max`):
        a lower bound of the exact target's largest output on the domain, what ``holds`` judges against.
    domain : Domain
        The input domain.
    mode : str
        The mode every pair was solved in (``"paper"``, ``"minimal"`` or ``"approximate"``).
    reason : str
        Why ``error_bound`` is infinite (empty otherwise).
    exact : bool
        False when ``mode="approximate"`` approximated some pair (below its threshold, docs/design.md §11):
        the certificate then holds when ``error_bound`` is finite and no sampled error exceeds its bound,
        ``error_bound`` being the proved ``max |g − f|`` (approximation and rounding). True otherwise: the
        ``rtol`` rule.
    approximation_error : float
        The graph bound in exact arithmetic (no rounding): the part of ``error_bound`` due to the approximated
        pairs' weight mismatch (0 when exact); each pair's own figure is in its node's ``result.certificate``.
    approximated : tuple of str
        The nodes whose pairs were approximated, in topological order.
    """

    nodes: tuple[NodeFit, ...]
    error_bound: float
    scale: float
    rtol: float
    points: int
    max_abs_error: float
    max_relative_error: float
    domain: Domain
    output_size: float = 0.0
    mode: str = "paper"
    reason: str = ""
    f_max: float = float("nan")
    exact: bool = True
    approximation_error: float = 0.0
    approximated: tuple[str, ...] = ()

    @property
    def error_ratio(self) -> float:
        """Worst ``observed / bound`` over the output and every node (must be ``<= 1``)."""
        output = residual_ratio(np.array(self.max_abs_error), np.array(self.error_bound))
        return max([output] + [n.error_ratio for n in self.nodes])

    @property
    def bound_over_output(self) -> float:
        """``error_bound / max |f|`` on the points: the certified bound against the output's actual size
        (``error_bound / scale`` is smaller by however much the interval bounds overstate the output)."""
        return residual_ratio(np.array(self.error_bound), np.array(self.output_size))

    @property
    def relative_error_bound(self) -> float:
        """``error_bound / f_max``: the figure ``holds`` compares with ``rtol`` (``0/0`` read as 0)."""
        return bound_over_f_max(self.error_bound, self.f_max)

    @property
    def bound_over_scale(self) -> float:
        """``error_bound / scale``, against the interval figure (``0/0`` read as 0)."""
        return residual_ratio(np.array(self.error_bound), np.array(self.scale))

    @property
    def max_shift_ratio(self) -> float:
        """The largest bias shift relative to the signal over all pairs."""
        return max((n.shift_ratio for n in self.nodes), default=0.0)

    @property
    def depth(self) -> int:
        """The largest depth of a Linear node."""
        return max((n.depth for n in self.nodes), default=0)

    def failures(self) -> list[str]:
        """What does not hold, in words (empty when the certificate holds)."""
        out = []
        if not self.exact and not np.isfinite(self.error_bound):
            out.append(f"the approximation's error bound is not finite ({self.reason or 'no reason given'})")
        if self.exact and not holds_against_f_max(self.error_bound, self.f_max, self.rtol):
            out.append(
                f"the error bound {self.error_bound:.3g} is {self.relative_error_bound:.3g} "
                f"{accuracy_reference(self.f_max)}, above rtol = {self.rtol:.3g} (interval scale {self.scale:.3g})"
                + (f" ({self.reason})" if self.reason else "")
            )
        if not self.error_ratio <= 1:
            out.append(f"a sampled error exceeds its bound ({self.error_ratio:.3g} of it)")
        return out

    @property
    def holds(self) -> bool:
        """Every pair certified (they are, or no result exists), the graph's bound within ``rtol``,
        and no sampled error beyond its bound."""
        return not self.failures()

    def by_depth(self) -> list[dict]:
        """Per depth: the nodes, the largest shift ratio, the largest bound and worst observed/bound ratio."""
        rows = []
        for depth in sorted({n.depth for n in self.nodes}):
            at = [n for n in self.nodes if n.depth == depth]
            rows.append(
                {
                    "depth": depth,
                    "nodes": [n.name for n in at],
                    "max_shift_ratio": max(n.shift_ratio for n in at),
                    "max_margin_ratio": max(n.margin_ratio for n in at),
                    "error_bound": max(n.error_bound for n in at),
                    "bound_over_scale": max(n.error_bound / n.scale if n.scale > 0 else 0.0 for n in at),
                    "worst_error_ratio": max(n.error_ratio for n in at),
                }
            )
        return rows

    def to_dict(self) -> dict:
        """JSON-ready figures (no arrays)."""
        return json_ready(
            {
                "holds": self.holds,
                "error_bound": self.error_bound,
                "scale": self.scale,
                "f_max": self.f_max,
                "relative_error_bound": self.relative_error_bound,
                "bound_over_scale": self.bound_over_scale,
                "rtol": self.rtol,
                "points": self.points,
                "max_abs_error": self.max_abs_error,
                "max_relative_error": self.max_relative_error,
                "output_size": self.output_size,
                "bound_over_output": self.bound_over_output,
                "error_ratio": self.error_ratio,
                "exact": self.exact,
                "approximation_error": self.approximation_error,
                "approximated": list(self.approximated),
                "by_depth": self.by_depth(),
            }
        )
