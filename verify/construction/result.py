"""What `verify.reconstruct` returns: the tuned normalization parameters and their certificate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verify.core.approximate_certificate import ApproximateCertificate
from verify.core.certificate import Certificate
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
    certificate : Certificate, ResidualCertificate or ApproximateCertificate
        The figures proving ``g = f`` on the domain (it holds: failing results are never returned); a
        residual network's is a `verify.core.residual_certificate.ResidualCertificate`; for
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
        (`verify.core.linear_bounds`, docs/design.md §6.8), and the median ratio of the two; empty otherwise.
    timings : dict
        Wall seconds of the fit's parts where measured (dense chains): ``"linear_bounds"`` (the target's
        linear bounds and the block queries of the shifts; absent on ``R^d``), ``"construction"`` (the solves
        and shifts of every block, without them) and ``"error_bound"`` (which computes its own linear bounds).
    solve_seconds : tuple of float
        Wall time of each block's (or branch's) scale-equation solve, in order: the time the choice of
        solution costs (docs/design.md §5, *Which solution*), beside ``seconds``, the whole construction's.
        Kept out of the certificate, which is reproducible bit for bit.
    seconds : float
        Wall time of the whole construction (solves, shifts, bound and checks).
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

    def network(self, x: object) -> np.ndarray:
        """Evaluate the frozen network with the tuned ``(gamma, beta)``: ``(batch, d_0) -> (batch, d_L)``
        (a convolutional network: ``(batch, *input_shape) -> (batch, *output_shape)``).

        Evaluated in float64 (the points' integer or bool dtype is never used); the certificate's
        ``error_bound`` covers this evaluation and any in the certified ``dtype``.
        """
        return self.frozen.forward(x, self.gamma, self.beta)
