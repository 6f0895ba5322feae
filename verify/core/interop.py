"""PyTorch at the edge: remember where the caller's tensors lived and give results back there.

The core computes in numpy float64. Networks built from torch tensors record a `TorchSpec`
(device and dtype of their first tensor); results for such networks come back as tensors on
that device, and the ``iterative`` solver runs its GEMMs there. torch is imported only when a
tensor is actually seen, so numpy users never need it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TorchSpec", "is_tensor", "like", "to_caller", "to_host", "torch_spec"]


def is_tensor(value: object) -> bool:
    """Whether ``value`` is a torch tensor (checked without importing torch)."""
    return type(value).__module__.split(".")[0] == "torch" and hasattr(value, "detach")


@dataclass(frozen=True)
class TorchSpec:
    """Where results go back to: a torch device and dtype."""

    device: Any
    dtype: Any

    def tensor(self, array: np.ndarray) -> Any:
        """``array`` as a tensor of this spec."""
        import torch

        return torch.tensor(np.asarray(array), dtype=self.dtype, device=self.device)

    def solve_tensor(self, array: Any) -> Any:
        """``array`` (numpy or a tensor) as a float64 tensor on this spec's device, for a solve there.

        The values are never rounded to the spec's own dtype first: a float64 operand given to a
        network built from float32 tensors keeps all its digits (a solve is always float64).
        """
        import torch

        if is_tensor(array):
            return array.detach().to(device=self.device, dtype=torch.float64)
        return torch.tensor(np.asarray(array, dtype=np.float64), dtype=torch.float64, device=self.device)


def torch_spec(values: Iterable[object]) -> TorchSpec | None:
    """The spec of the first torch tensor among ``values`` (nested lists searched), or None."""
    for value in values:
        if is_tensor(value):
            return TorchSpec(value.device, value.dtype)
        if isinstance(value, (list, tuple)):
            found = torch_spec(value)
            if found is not None:
                return found
    return None


def like(reference: object, array: np.ndarray) -> Any:
    """``array`` as a tensor on ``reference``'s device and dtype if ``reference`` is a tensor, else as is."""
    if is_tensor(reference):
        return TorchSpec(reference.device, reference.dtype).tensor(array)
    return array


def to_caller(arrays: list[np.ndarray], spec: TorchSpec | None) -> list:
    """Return ``arrays`` unchanged for numpy callers, as tensors of ``spec`` for torch callers."""
    return arrays if spec is None else [spec.tensor(a) for a in arrays]


def to_host(value: object) -> object:
    """A tensor (anything with ``detach`` and ``cpu``) detached and moved to host memory as a numpy array;
    anything else unchanged."""
    detach = getattr(value, "detach", None)
    if callable(detach) and hasattr(value, "cpu"):
        return detach().cpu().numpy()
    return value
