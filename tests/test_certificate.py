"""The certificate (docs/design.md §6): its figures are recomputed independently, and a failing one raises."""

import dataclasses
import json

import numpy as np
import pytest

import verify
import verify.construction.tuning as construct  # where each block is solved and shifted
from verify.core.linear_bounds import linear_regions, target_bounds
from verify.core.tolerances import EPS

TARGET = verify.TargetNetwork.random([3, 4, 2], seed=3)
FROZEN = verify.FrozenNetwork.for_target(TARGET, seed=4, biases=True)


def test_figures_match_an_independent_recomputation():
    result = verify.reconstruct(TARGET, FROZEN, verify.Ball(1.0, [0.5, 0.0, -0.5]), method="lstsq")
    regions = linear_regions(target_bounds(TARGET, result.domain))  # the shifts' regions (docs/design.md §6.9)
    for k, block in enumerate(result.certificate.blocks, start=1):
        odd, even = 2 * k - 2, 2 * k - 1
        s, tau = result.scales[odd], result.shifts[odd]
        b_mat = FROZEN.weights[odd][:, : TARGET.widths[k - 1]]
        a_mat = FROZEN.weights[even][: TARGET.widths[k], :]
        row = result.scales[even][: TARGET.widths[k]]
        error = np.diag(row) @ a_mat @ np.diag(s) @ b_mat - TARGET.weights[k - 1]
        # Two evaluations of the same n-term sums: they differ by rounding, (n + 2) eps times the terms.
        terms = np.abs(np.diag(row) @ np.abs(a_mat) @ np.diag(np.abs(s)) @ np.abs(b_mat))
        assert abs(block.residual - np.max(np.abs(error))) <= (s.size + 2) * EPS * terms.max()
        image = regions[k - 1].affine_range(b_mat, FROZEN.biases[odd])
        margin = np.min(s * image.mid + tau - np.abs(s) * image.rad)
        assert block.min_margin == pytest.approx(margin, rel=1e-12, abs=1e-15)
        k_mat = verify.khatri_rao(a_mat, b_mat)
        sv = np.linalg.svd(k_mat, compute_uv=False)
        assert block.rank == np.linalg.matrix_rank(k_mat) == TARGET.widths[k] * TARGET.widths[k - 1]
        assert block.condition == pytest.approx(sv[0] / sv[-1], rel=1e-8)
    # The sampled check on the same points, recomputed.
    x = result.domain.sample(256, np.random.default_rng(0))
    f = TARGET(x)
    assert result.certificate.sampled.max_abs_error == np.max(np.abs(result.network(x) - f))


def test_certificate_serializes_to_json():
    result = verify.reconstruct(TARGET, FROZEN, verify.Box([-1, -1, -1], [1, 2, 3]), mode="minimal")
    data = json.loads(json.dumps(result.certificate.to_dict()))
    assert data["holds"] is True and data["mode"] == "minimal" and data["domain"]["kind"] == "box"
    assert len(data["blocks"]) == 2 and all(b["holds"] for b in data["blocks"])


def test_negative_margin_raises_certificate_error(monkeypatch):
    """Dropping the bias shift leaves neurons inactive somewhere: the certificate must catch it."""
    monkeypatch.setattr(construct, "bias_shift", lambda scale, image: np.zeros_like(scale))
    with pytest.raises(verify.CertificateError, match=r"activity margin .* < 0") as info:
        verify.reconstruct(TARGET, FROZEN, verify.Ball(1.0))
    assert not info.value.certificate.holds
    assert info.value.certificate.failures()


def test_wrong_scales_fail_the_residual_and_sampled_checks(monkeypatch):
    original = construct.solve_with

    def perturbed(*args, **kwargs):
        solution = original(*args, **kwargs)
        return dataclasses.replace(solution, scale=solution.scale * (1 + 1e-9), method="perturbed")

    monkeypatch.setattr(construct, "solve_with", perturbed)
    with pytest.raises(verify.CertificateError, match="scale-equation residual ratio"):
        verify.reconstruct(TARGET, FROZEN, verify.Ball(1.0))


def test_rtol_is_enforced():
    with pytest.raises(verify.CertificateError, match="exceeds rtol = 1e-300"):
        verify.reconstruct(TARGET, FROZEN, verify.Ball(1.0), rtol=1e-300)
