"""What `verify.reconstruct` returns: the tuned normalization parameters and their certificate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

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
    certificate : Certificate or ResidualCertificate
        The figures proving ``g = f`` on the domain (it holds: failing results are never returned); a
        residual network's is a `verify.core.residual_certificate.ResidualCertificate`.
    target, frozen : TargetNetwork and FrozenNetwork, ConvTargetNetwork and ConvFrozenNetwork, or TargetNetwork
        and ResidualFrozenNetwork
        The networks it was built for.
    domain : Domain or None
        The domain on which ``g = f`` is certified; None for a paired network built for all of ``R^d``.
    mode : str
        ``"paper"`` or ``"minimal"``.
    """

    gamma: list[np.ndarray]
    beta: list[np.ndarray]
    scales: list[np.ndarray]
    shifts: list[np.ndarray]
    certificate: Certificate | Any
    target: Any
    frozen: Any
    domain: Domain | None
    mode: str

    def network(self, x: object) -> np.ndarray:
        """Evaluate the frozen network with the tuned ``(gamma, beta)``: ``(batch, d_0) -> (batch, d_L)``
        (a convolutional network: ``(batch, *input_shape) -> (batch, *output_shape)``).

        Evaluated in float64 (the points' integer or bool dtype is never used); the certificate's
        ``error_bound`` covers this evaluation and any in the certified ``dtype``.
        """
        return self.frozen.forward(x, self.gamma, self.beta)
