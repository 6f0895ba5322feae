"""Regression tests for the solvers' robustness (docs/design.md §5), one per bug found, each naming the bug."""

from __future__ import annotations

import numpy as np
import pytest

import verify


def test_iterative_solves_in_float64_for_a_float32_frozen_network() -> None:
    """Bug: ``iterative`` moved its operands to the caller's torch dtype before widening them to
    float64, so a float64 target with a float32 frozen network was solved with ``W`` rounded to
    float32: residual ratio ~5e-9 against a tolerance of ~2e-14, a `CertificateError`, although
    ``lstsq`` certifies the same instance. The solve now always runs in float64."""
    torch = pytest.importorskip("torch")
    target = verify.TargetNetwork.random([3, 4, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, "paper", seed=1)
    frozen32 = verify.FrozenNetwork([torch.tensor(w, dtype=torch.float32) for w in frozen.weights])
    for method in ("lstsq", "iterative"):
        result = verify.reconstruct(target, frozen32, verify.Ball(1.0), method=method)
        assert result.certificate.holds
        assert result.gamma[0].dtype == torch.float32  # results go back in the caller's dtype
        assert all(b.residual_ratio <= b.residual_tolerance for b in result.certificate.blocks)


def test_solve_tensor_keeps_float64_digits() -> None:
    """Bug (same): `TorchSpec.solve_tensor` rounded through the spec's dtype on its way to float64."""
    torch = pytest.importorskip("torch")
    from verify.core.interop import TorchSpec

    spec = TorchSpec(torch.device("cpu"), torch.float32)
    value = np.array([1 + 2**-40, np.pi])
    assert np.array_equal(spec.solve_tensor(value).numpy(), value)
    assert spec.solve_tensor(torch.tensor(value)).dtype == torch.float64
