"""Solve for the BatchNorm parameters of a torch module, load them, and check the module's own forward.

`fit_norm_layers` reads both modules (`verify.nn.modules`), calls `verify.reconstruct`
(docs/design.md §2–§6) and loads γ, β into the frozen module with `load_norm_params`;
`forward_error` compares the tuned module with the target through torch's forward.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from verify.construction.reconstruct import Reconstruction, reconstruct
from verify.construction.residual import ResidualReconstruction
from verify.core.domains import Domain
from verify.nn.frozen_like import conv_networks, uses_structure
from verify.nn.grammar import NORM
from verify.nn.graph_fit import GraphReconstruction, fit_graph
from verify.nn.modules import from_module, norm_layers, target_from_module
from verify.nn.residual import FrozenResidualMLP

__all__ = ["fit_norm_layers", "forward_error", "load_norm_params"]


def load_norm_params(module: nn.Module, result: Reconstruction | ResidualReconstruction) -> None:
    """Write ``result.gamma`` / ``result.beta`` into the module's BatchNorm ``weight`` / ``bias``, in place.

    Nothing else changes: running statistics, eps, Linear weights and biases keep their values.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a torch nn.Module holding the BatchNorm layers, got {type(module).__name__}")
    if not isinstance(result, (Reconstruction, ResidualReconstruction)):
        raise ValueError(
            f"result must be a verify.Reconstruction or verify.ResidualReconstruction, got {type(result).__name__}"
        )
    norms = norm_layers(module)
    if len(norms) != len(result.gamma):
        raise ValueError(f"the module has {len(norms)} BatchNorm layers but the result tunes {len(result.gamma)}")
    with torch.no_grad():
        for j, (bn, gamma, beta) in enumerate(zip(norms, result.gamma, result.beta, strict=True)):
            if bn.weight.shape[0] != len(gamma):
                raise ValueError(f"BatchNorm {j} has {bn.weight.shape[0]} features but the result has {len(gamma)}")
            for name, value in zip(NORM.tunes, (gamma, beta), strict=True):
                tensor = torch.as_tensor(np.asarray(value.cpu() if hasattr(value, "cpu") else value))
                getattr(bn, name).copy_(tensor)


def fit_norm_layers(
    frozen: nn.Module, target: nn.Module, domain: Domain | None, **options: object
) -> Reconstruction | ResidualReconstruction | GraphReconstruction:
    """Solve for the BatchNorm parameters of ``frozen`` that make it compute ``target`` on ``domain``.

    Reads both modules, calls `verify.reconstruct` (``options``: ``mode``, ``method``, ``rtol``, …), loads
    the BN weight and bias into ``frozen`` in place and returns the `Reconstruction` (its
    certificate holds, docs/design.md §6). ``domain=None`` needs a paired frozen network (exact on
    all of R^d, docs/design.md §3). The result is certified in the modules' dtype (docs/design.md §6.5):
    ``error_bound <= rtol · scale`` for the float32 (or float16) forward of the loaded module, so
    float32 modules usually need ``rtol`` around ``1e-3`` (the default ``1e-6`` suits float64).

    Convolutional modules (``Conv1d``/``Conv2d``, pooling, a target BatchNorm to fold; docs/design.md §9) are
    read by `verify.nn.frozen_like.conv_networks` over the domain's input shape (a ``verify.Box`` with
    ``lo``/``hi`` shaped like one input, or ``shape=``), and solved and certified in float64.

    ``frozen`` is left in eval mode, the mode the construction is for: BatchNorm normalizes with its
    running statistics. One train-mode forward would normalize with batch statistics instead and,
    with torch's default momentum, overwrite those running statistics for good. To keep it in eval
    mode through code that calls ``.train()`` (a training loop, say), wrap it with
    ``verify.nn.norm_only(frozen, statistics="frozen")``.

    A `verify.nn.FrozenResidualMLP` (docs/design.md §8) is read with its ``to_network`` and reconstructed as a
    residual network (certified in float64, by a sampled check).

    Modules other than two ``nn.Sequential`` stacks (models written as classes, ResNets) are read as
    graphs with torch.fx and reconstructed node by node (`verify.nn.graph_fit.fit_graph`,
    docs/design.md §10); the result is then a `verify.nn.graph_fit.GraphReconstruction`.
    """
    if isinstance(frozen, FrozenResidualMLP):
        result = reconstruct(target_from_module(target), frozen.to_network(), domain, **options)
    elif not (isinstance(frozen, nn.Sequential) and isinstance(target, nn.Sequential)):
        return fit_graph(frozen, target, domain, **options)
    elif uses_structure(target, frozen):  # convolutions, pooling, a target's BatchNorm (docs/design.md §9)
        result = reconstruct(*conv_networks(target, frozen, domain), domain, **options)
    else:
        result = reconstruct(target_from_module(target), from_module(frozen), domain, **options)
    load_norm_params(frozen, result)
    frozen.eval()
    return result


def forward_error(frozen: nn.Module, target: nn.Module, points: np.ndarray) -> float:
    """``max |g − f| / max |f|`` of the modules' own forwards on ``points`` (``max |g − f|`` if ``f = 0``).

    Each module gets the points in the dtype of its parameters; both outputs are compared in float64.
    """
    dtypes = (next(target.parameters()).dtype, next(frozen.parameters()).dtype)
    with torch.no_grad():
        f = target(torch.tensor(points, dtype=dtypes[0])).double()
        g = frozen(torch.tensor(points, dtype=dtypes[1])).double()
    error, size = float((g - f).abs().max()), float(f.abs().max())
    return error / size if size > 0 else error
