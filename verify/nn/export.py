"""Numpy networks back to torch: a `verify.FrozenNetwork` (and a reconstruction of it) as an ``nn.Sequential``.

The inverse of `verify.nn.modules.from_module`: the module is ``Linear -> BatchNorm1d -> ReLU ->
… -> Linear -> BatchNorm1d`` (grammar `verify.nn.grammar.FROZEN`, docs/design.md §1), with the
frozen weights, biases, running statistics and eps, and the tuned BatchNorm weight and bias when a
`verify.Reconstruction` is given.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from verify.construction.reconstruct import Reconstruction
from verify.core.interop import to_host
from verify.core.networks import FrozenNetwork

__all__ = ["to_module"]


def _tensor(values: object, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    return torch.tensor(np.asarray(to_host(values), dtype=np.float64), dtype=dtype, device=device)  # a copy


def to_module(
    frozen: FrozenNetwork,
    result: Reconstruction | None = None,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> nn.Sequential:
    """``frozen`` as a torch ``nn.Sequential`` in eval mode, with ``result``'s tuned BatchNorm parameters.

    Parameters
    ----------
    frozen : FrozenNetwork
        The frozen network: Linear weights ``M_j`` and biases ``c_j`` (a Linear gets a bias only
        where ``c_j`` is non-zero), BatchNorm running mean, variance and eps.
    result : Reconstruction, optional
        A reconstruction of ``frozen``: its ``gamma`` and ``beta`` become the BatchNorm weight and
        bias, so that ``to_module(frozen, result)(x)`` equals ``result.network(x)`` up to rounding.
        Without it, BatchNorm starts at weight 1 and bias 0.
    dtype, device : optional
        Of the module's tensors. Default: the dtype and device of the tensors ``frozen`` was built
        from (float64 for numpy arrays, or for integer or bool tensors).

    Torch's global random generator is left untouched (the layers' own initialization is
    overwritten, and runs under `torch.random.fork_rng`).
    """
    if not isinstance(frozen, FrozenNetwork):
        raise ValueError(f"frozen must be a verify.FrozenNetwork, got {type(frozen).__name__}")
    if result is not None:
        if not isinstance(result, Reconstruction):
            raise ValueError(f"result must be a verify.Reconstruction or None, got {type(result).__name__}")
        if result.frozen is not frozen and (
            result.frozen.widths != frozen.widths
            or not all(np.array_equal(a, b) for a, b in zip(result.frozen.weights, frozen.weights, strict=True))
        ):
            raise ValueError(
                "result was computed for another frozen network (its widths or weights differ); "
                "pass the FrozenNetwork the reconstruction was built for"
            )
    spec = frozen.torch
    if dtype is None:
        dtype = spec.dtype if spec is not None and spec.dtype.is_floating_point else torch.float64
    if device is None:
        device = spec.device if spec is not None else "cpu"
    layers: list[nn.Module] = []
    last = len(frozen.weights) - 1
    for j, (m, c, mu, var) in enumerate(
        zip(frozen.weights, frozen.biases, frozen.running_mean, frozen.running_var, strict=True)
    ):
        with torch.random.fork_rng(devices=[]):
            linear = nn.Linear(m.shape[1], m.shape[0], bias=bool(np.any(c)), dtype=dtype, device=device)
            norm = nn.BatchNorm1d(m.shape[0], eps=frozen.layer_eps[j], dtype=dtype, device=device)
        with torch.no_grad():
            linear.weight.copy_(_tensor(m, dtype, device))
            if linear.bias is not None:
                linear.bias.copy_(_tensor(c, dtype, device))
            norm.running_mean.copy_(_tensor(mu, dtype, device))
            norm.running_var.copy_(_tensor(var, dtype, device))
            if result is not None:
                norm.weight.copy_(_tensor(result.gamma[j], dtype, device))
                norm.bias.copy_(_tensor(result.beta[j], dtype, device))
        layers += [linear, norm]
        if j < last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()
