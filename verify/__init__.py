"""verify: exact reconstruction of ReLU networks by tuning only normalization layers.

The public API (docs/design.md §1–2, §6)::

    target = verify.TargetNetwork.random([3, 5, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, width="paper", seed=1)
    result = verify.reconstruct(target, frozen, verify.Ball(1.0), mode="paper")
    result.gamma, result.beta, result.network(x), result.certificate.holds

Case 2 (docs/design.md §8), skip connections: ``verify.ResidualFrozenNetwork.for_target(target, branches=m)``
has odd widths about ``d²/m`` at depth ``2mL``; `reconstruct` and `feasibility` take it the same way.

Convolutions (docs/design.md §9): ``verify.ConvTargetNetwork`` / ``verify.ConvFrozenNetwork`` (layers
``verify.Conv``, ``verify.Linear``, pooling, ``verify.Flatten``) go through `reconstruct` with a `Box` over
the input tensor. PyTorch models, Sequential or written as classes (docs/design.md §10): `verify.nn`,
imported on first use (``verify.nn.fit_norm_layers``): ``import verify`` alone does not import torch.

BLAS threads inside the library's calls: `set_blas_threads`, `blas_threads` (docs/design.md §5).
"""

from verify.construction.frontier import Frontier, FrontierPoint, frontier
from verify.construction.reconstruct import MODES, Reconstruction, reconstruct
from verify.construction.residual import ResidualReconstruction
from verify.core.approximate_certificate import ApproximateCertificate
from verify.core.certificate import BlockCertificate, Certificate, SampledCheck
from verify.core.conv_networks import ConvFrozenNetwork, ConvTargetNetwork
from verify.core.convolution import AdaptiveAvgPool, AvgPool, Conv, Flatten, Linear, MaxPool
from verify.core.domains import Ball, Box, Domain
from verify.core.errors import CertificateError, InfeasibleError
from verify.core.feasibility import BlockFeasibility, FeasibilityReport, feasibility
from verify.core.networks import FrozenNetwork, TargetNetwork, minimal_width, paper_width
from verify.core.residual import ResidualFrozenNetwork
from verify.core.scale_equation import khatri_rao
from verify.core.threads import blas_thread_limit, blas_threads, set_blas_threads
from verify.core.tolerances import evaluation_tolerance, residual_tolerance

__all__ = [
    "MODES",
    "AdaptiveAvgPool",
    "ApproximateCertificate",
    "AvgPool",
    "Ball",
    "BlockCertificate",
    "BlockFeasibility",
    "Box",
    "Certificate",
    "CertificateError",
    "Conv",
    "ConvFrozenNetwork",
    "ConvTargetNetwork",
    "Domain",
    "FeasibilityReport",
    "Flatten",
    "Frontier",
    "FrontierPoint",
    "FrozenNetwork",
    "InfeasibleError",
    "Linear",
    "MaxPool",
    "Reconstruction",
    "ResidualFrozenNetwork",
    "ResidualReconstruction",
    "SampledCheck",
    "TargetNetwork",
    "blas_thread_limit",
    "blas_threads",
    "evaluation_tolerance",
    "feasibility",
    "frontier",
    "khatri_rao",
    "minimal_width",
    "paper_width",
    "reconstruct",
    "residual_tolerance",
    "set_blas_threads",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Import ``verify.nn`` on first access as ``verify.nn``, so that ``import verify`` needs no torch."""
    if name == "nn":
        import importlib

        return importlib.import_module("verify.nn")
    raise AttributeError(f"module 'verify' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, with the lazily imported ``nn``."""
    return sorted([*globals(), "nn"])
