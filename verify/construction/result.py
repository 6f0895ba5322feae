"""What every route returns: the tuned normalization parameters and their certificate.

`verify.reconstruct` (dense chains, convolutional networks, Case 2), `verify.nn.fit_norm_layers` and
`verify.nn.graph_fit.fit_graph` all return a `Reconstruction`; a graph's carries its pairs in ``nodes`` and
their figures as the certificate's per-block ``extras``. The properties after ``network`` read the
certificate's figures (``result.error_bound`` is ``result.certificate.error_bound``) under the names the
graph route's result used to have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verify.core.approximate_certificate import ApproximateCertificate
from verify.core.certificate import Certificate, by_depth
from verify.core.domains import Domain

__all__ = ["Reconstruction"]


@dataclass(frozen=True, eq=False)
class Reconstruction:
    """Tuned normalization parameters for a frozen network, with their certificate.

    Attributes
    ----------
    gamma, beta : list of ndarray
        BatchNorm weight and bias of each of the ``2L`` frozen layers: the values to load.
    scales, shifts : list of ndarray
        The same normalizations as per-neuron affine maps ``h -> s*h + t``.
    certificate : Certificate or ApproximateCertificate
        The figures proving ``g = f`` on the domain (it holds: failing results are never returned); a
        residual network's has one block per branch; for
        ``mode="approximate"`` a `verify.core.approximate_certificate.ApproximateCertificate`, which proves
        ``error_bound`` (and says whether the result is ``exact``).
    target, frozen : TargetNetwork and FrozenNetwork, ConvTargetNetwork and ConvFrozenNetwork, or TargetNetwork
        and ResidualFrozenNetwork
        The networks it was built for.
    domain : Domain or None
        The domain on which ``g = f`` is certified; None for a paired network built for all of ``R^d``.
    mode : str
        ``"paper"``, ``"minimal"`` or ``"approximate"``.
    ranges : tuple of RangeWidths
        A dense chain on a bounded domain: per pre-activation node ``h_j`` of the target, the widest
        interval-bound width against the widest width once intersected with the linear bounds
        (`verify.core.linear_bounds`, docs/design.md §6.9), and the median ratio of the two; a graph
        (`verify.nn.graph_fit.fit_graph`): the same per node of the target graph (input excluded), for its
        forward and backward linear ranges (`verify.core.graph_ranges`, §6.10); empty otherwise.
    timings : dict
        Wall seconds of the fit's parts where measured (dense chains): ``"linear_bounds"`` (the target's
        linear bounds and the block queries of the shifts; absent on ``R^d``), ``"construction"`` (the solves
        and shifts of every block, without them) and ``"error_bound"`` (which computes its own linear bounds).
        A graph: ``"linear_bounds"`` (the graph's ranges, computed once) and ``"construction"`` (the rest of
        the fit: the pairs, the bound and the checks).
    solve_seconds : tuple of float
        Wall time of each block's (or branch's) scale-equation solve, in order: the time the choice of
        solution costs (docs/design.md §5, *Which solution*), beside ``seconds``, the whole construction's.
        Kept out of the certificate, which is reproducible bit for bit.
    seconds : float
        Wall time of the whole construction (solves, shifts, bound and checks).
    nodes : tuple of NodeFit
        A graph (`verify.nn.graph_fit.fit_graph`): one `verify.nn.graph_result.NodeFit` per target layer, in
        topological order, with the pair's own one-block `Reconstruction` and the region it is certified on
        (its figures are the extras of ``certificate.blocks``); empty for a chain. ``target`` and ``frozen``
        are then the torch modules, ``gamma``/``beta`` what the frozen module's BatchNorm layers hold, in
        `verify.nn.modules.norm_layers` order (so `verify.nn.load_norm_params` loads them into a copy).
    """

    gamma: list[np.ndarray]
    beta: list[np.ndarray]
    scales: list[np.ndarray]
    shifts: list[np.ndarray]
    certificate: Certificate | ApproximateCertificate | Any
    target: Any
    frozen: Any
    domain: Domain | None
    mode: str
    ranges: tuple = ()
    timings: dict = field(default_factory=dict)
    solve_seconds: tuple[float, ...] = ()
    seconds: float = 0.0
    nodes: tuple = ()

    def network(self, x: object) -> np.ndarray:
        """Evaluate the frozen network with the tuned ``(gamma, beta)``: ``(batch, d_0) -> (batch, d_L)``
        (a convolutional network: ``(batch, *input_shape) -> (batch, *output_shape)``).

        Evaluated in float64 (the points' integer or bool dtype is never used); the certificate's
        ``error_bound`` covers this evaluation and any in the certified ``dtype``. A graph's result is
        evaluated by its frozen module, which holds the tuned values: ``result.frozen(x)``.
        """
        if self.nodes:
            raise ValueError(
                "a graph's result is evaluated by its frozen torch module, which holds the tuned gamma and beta: "
                "call result.frozen(x) on a tensor shaped like the domain's inputs"
            )
        return self.frozen.forward(x, self.gamma, self.beta)

    @property
    def holds(self) -> bool:
        """``certificate.holds`` (a returned result's always does)."""
        return self.certificate.holds

    def failures(self) -> list[str]:
        """``certificate.failures()``: what does not hold, in words."""
        return self.certificate.failures()

    @property
    def error_bound(self) -> float:
        """``certificate.error_bound``: the rigorous bound on ``max |ĝ − f̂|`` over the whole domain."""
        return self.certificate.error_bound

    @property
    def scale(self) -> float:
        """``certificate.scale``: the target's absolute-value evaluation over the domain (largest entry)."""
        return self.certificate.scale

    @property
    def f_max(self) -> float:
        """``certificate.f_max``: the target's largest output on the sample points, less its own rounding."""
        return self.certificate.f_max

    @property
    def rtol(self) -> float:
        """The accuracy demanded, ``error_bound <= rtol · f_max``."""
        return self.certificate.sampled.rtol

    @property
    def relative_error_bound(self) -> float:
        """``certificate.relative_error_bound``: ``error_bound / f_max``."""
        return self.certificate.relative_error_bound

    @property
    def bound_over_scale(self) -> float:
        """``certificate.bound_over_scale``: ``error_bound / scale``."""
        return self.certificate.bound_over_scale

    @property
    def max_relative_error(self) -> float:
        """The sampled ``max |g − f|`` relative to the target's size there (`SampledCheck.max_relative_error`)."""
        return self.certificate.sampled.max_relative_error

    @property
    def output_size(self) -> float:
        """``max |f(x)|`` on the sampled check's points (a graph's; NaN where not measured)."""
        return self.certificate.sampled.output_size

    @property
    def error_ratio(self) -> float:
        """The sampled check's worst ``observed / bound`` (a graph's: over the output and every layer), ``<= 1``."""
        return self.certificate.sampled.bound_ratio

    @property
    def depth(self) -> int:
        """A graph's largest layer depth (0 for a chain)."""
        return max((n.depth for n in self.nodes), default=0)

    @property
    def max_shift_ratio(self) -> float:
        """A graph's largest bias shift relative to the signal over all pairs (0 for a chain)."""
        return max((n.shift_ratio for n in self.nodes), default=0.0)

    def by_depth(self) -> list[dict]:
        """A graph's layers by depth (`verify.core.certificate.by_depth`); empty for a chain."""
        return by_depth(getattr(self.certificate, "blocks", ()))

    @property
    def exact(self) -> bool:
        """False when ``mode="approximate"`` approximated some block (``certificate.exact``), True otherwise."""
        return self.certificate.exact if isinstance(self.certificate, ApproximateCertificate) else True

    @property
    def approximation_error(self) -> float:
        """``certificate.approximation_error`` of an approximate result (the weight mismatch's part), else 0."""
        return getattr(self.certificate, "approximation_error", 0.0)

    @property
    def approximated(self) -> tuple[str, ...]:
        """The blocks ``mode="approximate"`` approximated, by name (a graph's layer, else the block number)."""
        chosen = getattr(self.certificate, "approximate_blocks", ())
        if not chosen:
            return ()
        return tuple(b.extras.get("name", str(b.block)) for b in self.certificate.blocks if b.block in chosen)

    def to_dict(self) -> dict:
        """``certificate.to_dict()``: every figure, JSON-ready."""
        return self.certificate.to_dict()
