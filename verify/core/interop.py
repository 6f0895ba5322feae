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

__all__ = [
    "FLOATING",
    "TorchSpec",
    "dtype_name",
    "is_tensor",
    "like",
    "refuse_tf32",
    "result_spec",
    "round_to",
    "to_caller",
    "to_host",
    "torch_spec",
]


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
    """``array`` as a tensor on ``reference``'s device and dtype if ``reference`` is a tensor, else as is.

    An integer or bool ``reference`` gives a float64 tensor: networks evaluate in floating point.
    """
    if is_tensor(reference):
        return result_spec(TorchSpec(reference.device, reference.dtype)).tensor(array)
    return array


def to_caller(arrays: list[np.ndarray], spec: TorchSpec | None) -> list:
    """Return ``arrays`` unchanged for numpy callers, as tensors of ``spec`` for torch callers."""
    return arrays if spec is None else [spec.tensor(a) for a in arrays]


def to_host(value: object) -> object:
    """A tensor (anything with ``detach`` and ``cpu``) detached and moved to host memory as a numpy array;
    anything else unchanged."""
    detach = getattr(value, "detach", None)
    if callable(detach) and hasattr(value, "cpu"):
        tensor = detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":  # no numpy counterpart; float32 holds it exactly
            tensor = tensor.float()
        return tensor.numpy()
    return value


FLOATING = ("float16", "bfloat16", "float32", "float64")
"""The floating dtypes a result can be certified in (`verify.core.error_bound`)."""


def dtype_name(spec: TorchSpec | None) -> str:
    """The evaluation dtype of networks built with ``spec``: its torch floating dtype by name, else ``"float64"``
    (numpy arrays, and integer or bool tensors, whose results are floats)."""
    if spec is None:
        return "float64"
    name = str(spec.dtype).removeprefix("torch.")
    return name if name in FLOATING else "float64"


def result_spec(spec: TorchSpec | None) -> TorchSpec | None:
    """``spec`` with a non-floating dtype (integer, bool) replaced by torch.float64: results are never integers."""
    if spec is None or dtype_name(spec) == str(spec.dtype).removeprefix("torch."):
        return spec
    import torch

    return TorchSpec(spec.device, torch.float64)


def round_to(array: np.ndarray, dtype: str) -> np.ndarray:
    """``array`` rounded to the nearest values of ``dtype`` (by name), returned as float64."""
    array = np.asarray(array, dtype=np.float64)
    if dtype == "float64":
        return array.copy()
    if dtype in ("float32", "float16"):
        with np.errstate(over="ignore"):
            return array.astype(dtype).astype(np.float64)
    import torch

    return torch.tensor(array, dtype=torch.float64).to(getattr(torch, dtype)).to(torch.float64).numpy()


def refuse_tf32(device: Any, dtype: str, *, convolutions: bool = False) -> None:
    """ValueError when float32 work on a CUDA ``device`` may run in TF32, which the bound does not model.

    Every bound assumes IEEE arithmetic in the evaluation dtype: float32 with a 24-bit significand
    (``u = 2^-24``). On CUDA, ``torch.backends.cuda.matmul.allow_tf32`` lets cuBLAS run float32 matrix
    products (``nn.Linear``) in TF32, and ``torch.backends.cudnn.allow_tf32`` (on by default) lets cuDNN
    run float32 convolutions in TF32: products rounded to an 11-bit significand (``u = 2^-11``), far
    outside a float32 bound. Such a run is refused, naming the flag and how to turn it off; other devices
    and dtypes pass. ``device`` is a torch device (or anything whose ``type``, or string before ``:``, is
    its kind), ``dtype`` the evaluation dtype by name; ``convolutions`` says whether cuDNN's flag applies.
    """
    kind = getattr(device, "type", str(device).split(":")[0])
    if dtype != "float32" or kind != "cuda":
        return
    import torch

    flags = ["torch.backends.cuda.matmul.allow_tf32"] if torch.backends.cuda.matmul.allow_tf32 else []
    if convolutions and torch.backends.cudnn.allow_tf32:
        flags.append("torch.backends.cudnn.allow_tf32")
    if flags:
        raise ValueError(
            f"{' and '.join(flags)} is on: CUDA may then compute float32 "
            f"{'matrix products and convolutions' if convolutions else 'matrix products'} in TF32 (an 11-bit "
            "significand), and the certified bound assumes IEEE float32 (24 bits); set "
            + " and ".join(f"{flag} = False" for flag in flags)
            + " before fitting and when running the module (or use float64 modules)"
        )
