"""What `verify.nn.graph_fit.fit_graph` returns: a `verify.Reconstruction` whose certificate is a `verify.Certificate`.

The figures (docs/design.md §10) are the certificate's: its ``bound`` is the rigorous bound on ``|ĝ − f̂|``
at the output over the whole domain, its ``sampled`` check is the end-to-end check of both modules' own
forwards on fresh points against it, and each block is one pair, whose route-specific figures (the
target layer's name and depth, the bias shift against the signal, the error carried in against the
activity margins, the bound and observed error at its output) are the block's ``extras``. The result's
``nodes`` pair those figures with each pair's own one-block `verify.Reconstruction`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from verify.construction.result import Reconstruction
from verify.core.certificate import BlockCertificate, Certificate, SampledCheck, error_ratio
from verify.core.domains import Domain
from verify.core.error_bound import ErrorBound
from verify.core.numerics import residual_ratio

__all__ = ["GraphReconstruction", "NodeFit", "graph_certificate"]

GraphReconstruction = Reconstruction
"""Kept for one release: a graph's result is a `verify.Reconstruction` (``isinstance`` checks keep passing)."""


def _extra(key: str, doc: str) -> property:
    """A `NodeFit` figure read from its block's ``extras``."""
    return property(lambda self: self.block.extras[key], doc=doc)


@dataclass(frozen=True)
class NodeFit:
    """One target layer of the graph and the reconstruction of its frozen pair.

    Attributes
    ----------
    result : verify.Reconstruction
        The pair's one-block reconstruction, with its certificate (on ``region``).
    region : Domain
        The box (or, for a layer reading the input, the domain) its certificate covers.
    block : BlockCertificate
        The pair's block of the graph's certificate: its figures, and the route's in ``block.extras``, which
        the properties read (`verify.core.certificate.BlockCertificate`).
    seconds : float
        Wall time of the pair's reconstruction (kept out of the certificate, which is reproducible).
    """

    result: Reconstruction
    region: Domain
    block: BlockCertificate
    seconds: float = 0.0

    name = _extra("name", "The target layer's graph node.")
    source = _extra("source", "Where the layer comes from (module path and class).")
    depth = _extra("depth", "Layers on the longest path from the input up to and including this one.")
    shift_ratio = _extra(
        "shift_ratio",
        "``max τ / max |s ⊙ (B z + c)|`` over the first `verify.nn.graph_fit.CHECK_BATCH` sample points: the "
        "largest bias shift against the signal.",
    )
    margin_ratio = _extra(
        "margin_ratio",
        "``max |s| (|B| e_in) / margin`` over the odd neurons (0/0 read as 0): ``<= 1`` means the error carried "
        "into the pair cannot take a shifted neuron out of its linear regime (above 1, the graph bound counts "
        "how far it may leave it).",
    )
    error_bound = _extra("error_bound", "Rigorous bound on ``|ĝ − f̂|`` at the layer's output over the domain.")
    observed_error = _extra("observed_error", "``max |ĝ − f̂|`` at the layer's output on the sample points.")
    scale = _extra("scale", "The target's absolute-value evaluation at the layer's output (largest entry).")

    @property
    def error_ratio(self) -> float:
        """``observed_error / error_bound`` (0/0 read as 0): must be ``<= 1``."""
        return error_ratio(self.block.extras)


def graph_certificate(
    pairs: list[tuple[BlockCertificate, dict]],
    bound: ErrorBound,
    domain: Domain,
    *,
    points: int,
    error: float,
    size: float,
    f_max: float,
    mode: str,
    method: str,
    rtol: float,
) -> Certificate:
    """The graph's `Certificate`: one block per pair (its own `BlockCertificate`, numbered in topological order,
    with the pair's ``extras``), the rigorous ``bound`` at the output and the end-to-end check.

    The check ran both modules on ``points`` points of the domain: ``error`` is ``max |g − f|`` and ``size``
    ``max |f|`` there, ``f_max`` the target's largest output less its rounding (`verify.core.f_max`); its
    ``bound_ratio`` is the worst ``observed / bound`` over the output and every layer.
    """
    blocks = tuple(replace(block, block=k, extras=extras) for k, (block, extras) in enumerate(pairs, start=1))
    output = residual_ratio(np.array(error), np.array(bound.error_bound))
    worst = max([output] + [error_ratio(b.extras) for b in blocks])
    check = SampledCheck(
        points=points,
        max_abs_error=error,
        max_relative_error=error / size if size > 0 else error,
        error_ratio=float("nan"),
        tolerance=float("nan"),
        min_odd_preactivation=float("nan"),
        rtol=rtol,
        bound_ratio=worst,
        f_max=f_max,
        output_size=size,
    )
    return Certificate(mode, domain.to_dict(), blocks, check, method=method, bound=bound, rtol=rtol)
