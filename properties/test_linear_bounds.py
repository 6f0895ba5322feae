"""The linear bounds contain the target's true values (docs/design.md §6.9).

For random targets and domains, every pre-activation ``h_j(x)`` of the target at fresh points of
the domain (boundary, box corners included), computed by torch's own forward of the target as an
``nn.Sequential`` in float64, lies in ``[lo_j, hi_j]``, and so does every block query ``B z_{k−1}(x)``
in ``LinearBounds.range``; the ranges never exceed the interval ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import verify
from properties.strategies import domains, seeds, targets
from verify.core.linear_bounds import target_bounds

torch = pytest.importorskip("torch")

FRESH = 1024


def _sequential(target: verify.TargetNetwork) -> torch.nn.Sequential:
    """The target as the module a user would write: Linear, ReLU, …, Linear, in float64."""
    layers: list = []
    for w, b in zip(target.weights, target.biases, strict=True):
        linear = torch.nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.tensor(w))
            linear.bias.copy_(torch.tensor(b))
        layers += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


@given(data=st.data(), seed=seeds())
def test_linear_bounds_contain_the_true_preactivations(data: st.DataObject, seed: int) -> None:
    """§6.9: ``lo_j <= h_j(x) <= hi_j`` at fresh points, and ``B z`` within its queried range."""
    target = data.draw(targets(min_depth=2, max_depth=4, max_width=10, biases=None, degenerate=None))
    domain = data.draw(domains(target.widths[0], flat=None)).resolve(target.widths[0])
    bounds = target_bounds(target, domain)
    x = domain.sample(FRESH, np.random.default_rng(seed))
    module = _sequential(target)
    rng = np.random.default_rng(seed + 1)
    with torch.no_grad():
        inputs = torch.tensor(x)
        for j in range(1, target.depth + 1):
            h = module[: 2 * j - 1](inputs).numpy()
            note(f"layer {j}: lowest slack {np.min(h - bounds.lo[j - 1]):.3g}, {np.min(bounds.hi[j - 1] - h):.3g}")
            assert np.all(bounds.lo[j - 1] <= h) and np.all(h <= bounds.hi[j - 1])
            assert np.all(bounds.lo[j - 1] >= bounds.interval_lo[j - 1])
            assert np.all(bounds.hi[j - 1] <= bounds.interval_hi[j - 1])
            z = x if j == 1 else module[: 2 * j - 2](inputs).numpy()
            query = rng.standard_normal((5, target.widths[j - 1]))
            low, high = bounds.range(j - 1, query)
            values = z @ query.T
            assert np.all(low <= values) and np.all(values <= high)
