"""The figures the dense bound's layer roundings are taken from hold at fresh points (docs/design.md §6.5).

`verify.core.tree_rounding` bounds a frozen layer's rounding from per-leaf bounds ``|M_jl v_l|``, the sum of
the leaves' sizes ``T``, the larger of the positive and the negative leaves' sums ``M``, and ``H >= |M v + c|``,
all over the computed inputs ``v`` of the layer on the whole domain (linear forms through the odd layer's
affine map, its slack and its rounding). Here torch's own forward of the fitted frozen module, in float32 or
float64, gives each layer's computed inputs at fresh points (box corners or a ball's axis points included),
and every figure the bound used (recorded from `verify.core.tree_rounding.block_roundings`) must be at
least what those inputs give.
The sampled figures are float64 sums of at most ``n + 1`` terms, so each is compared with a slack of
``2 (n + 2) 2^-53`` of its terms' magnitude (Higham's ``γ_{n+1}``, doubled).
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import note

import verify
import verify.core.tree_rounding as tree_rounding
from properties._support import certified_or_discard
from properties.strategies import domains
from properties.test_soundness import box_points, fresh_points, mlp_modules

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@mlp_modules
def test_layer_figures_bound_the_computed_layers(dtype, widths, mode, data, seed):
    """Every figure of every frozen layer is at least its value at torch's forward on fresh points (module notes)."""
    from verify.nn import fit_norm_layers, frozen_like, target_mlp

    torch_dtype = getattr(torch, dtype)
    target = target_mlp(widths, seed=seed, dtype=torch_dtype).eval()
    frozen = frozen_like(target, mode, seed=seed + 1)
    domain = data.draw(domains(widths[0], max_center=10.0), label="domain")
    recorded = []
    original = tree_rounding.layer_figures

    def record(weights, bias, largest, sup, total=None):
        figures = original(weights, bias, largest, sup, total)
        recorded.append((np.array(weights), np.array(bias), figures))
        return figures

    with mock.patch.object(tree_rounding, "layer_figures", record):
        # mode forced: "auto" at the paper width runs both constructions, and the figures of one are recorded here
        certified_or_discard(lambda: fit_norm_layers(frozen, target, domain, mode=mode, rtol=1e12, progress=False))
    assert len(recorded) == 2 * (len(widths) - 1)  # both layers of every block (bounded domain, shifted blocks)
    resolved = domain.resolve(widths[0])
    rng = np.random.default_rng(seed)
    x = box_points(resolved, 512, rng) if isinstance(resolved, verify.Box) else fresh_points(resolved, widths[0], rng)
    inputs = []
    linears = [m for m in frozen.modules() if isinstance(m, torch.nn.Linear)]
    hooks = [m.register_forward_hook(lambda _, args, __: inputs.append(args[0].double().numpy())) for m in linears]
    with torch.no_grad():
        frozen.eval()(torch.tensor(x, dtype=torch_dtype))
    for hook in hooks:
        hook.remove()
    for j, (weights, bias, (leaves, total, cap, value)) in enumerate(recorded):
        v = inputs[j][:, : weights.shape[1]]  # an odd layer's live inputs (the others are 0), an even layer's all
        terms = np.abs(v)[:, None, :] * np.abs(weights)[None, :, :]  # (points, rows, inputs)
        size = terms.sum(axis=2) + np.abs(bias)
        slack = 2 * (weights.shape[1] + 2) * 2.0**-53 * size
        positive = np.where(weights > 0, terms, 0).sum(axis=2) + np.maximum(bias, 0)
        negative = np.where(weights < 0, terms, 0).sum(axis=2) + np.maximum(-bias, 0)
        note(f"layer {j + 1}: T {total}, sampled {size.max(axis=0)}")
        assert np.all(terms <= leaves[None, :, : weights.shape[1]])
        assert np.all(size - slack <= total)
        assert np.all(np.maximum(positive, negative) - slack <= cap)
        assert np.all(np.abs(v @ weights.T + bias) - slack <= value)
