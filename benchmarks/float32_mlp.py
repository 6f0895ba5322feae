"""The README's float32 MLP example on 10 targets: its certified bound against f_max and against the scale.

``python benchmarks/float32_mlp.py`` (about 10 s). For torch seeds 0-9 the README's target
``Linear(4, 4) -> ReLU -> Linear(4, 3)`` is fitted into ``frozen_mlp([4, 16, 4, 12, 3], seed=0)`` on the unit
ball, in float32, with a large ``rtol`` so that every certificate is returned; then ``error_bound / f_max`` (what
``holds`` compares with ``rtol``; docs/design.md §6.8) and ``error_bound / scale`` (the interval figure) are
printed per target, with how many targets each ``rtol`` certifies against either, and torch's own float32 error
on 4,096 fresh points of the ball (``seed 1``) against the bound; then the same targets in float64 at the
default ``rtol``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import verify
from verify.nn import fit_norm_layers, frozen_mlp

RTOLS = (1e-2, 1e-3, 1e-4)


def main() -> None:
    """Fit the 10 targets and print the table and the counts."""
    x = torch.tensor(verify.Ball(1.0).resolve(4).sample(4096, np.random.default_rng(1)), dtype=torch.float32)
    rows = []
    for seed in range(10):
        torch.manual_seed(seed)
        target = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
        frozen = frozen_mlp([4, 16, 4, 12, 3], seed=0)
        certificate = fit_norm_layers(frozen, target, verify.Ball(1.0), rtol=1.0).certificate
        with torch.no_grad():
            observed = float((frozen.eval()(x).double() - target.double()(x.double())).abs().max())
        assert observed <= certificate.error_bound, (seed, observed, certificate.error_bound)
        rows.append((seed, certificate.error_bound, certificate.f_max, certificate.scale, observed))
        print(
            f"seed {seed}: bound {certificate.error_bound:.3g}, f_max {certificate.f_max:.3g}, scale "
            f"{certificate.scale:.3g}; bound/f_max {certificate.relative_error_bound:.3g}, bound/scale "
            f"{certificate.bound_over_scale:.3g}; observed {observed:.3g} ({certificate.error_bound / observed:.0f}x)"
        )
    over_f_max = np.array([bound / f_max for _, bound, f_max, _, _ in rows])
    over_scale = np.array([bound / scale for _, bound, _, scale, _ in rows])
    for rtol in RTOLS:
        print(
            f"rtol {rtol:g}: {int(np.sum(over_f_max <= rtol))}/10 certified against f_max, "
            f"{int(np.sum(over_scale <= rtol))}/10 against the scale"
        )
    print(
        f"median bound/f_max {np.median(over_f_max):.2g} (max {over_f_max.max():.2g}); median bound/scale "
        f"{np.median(over_scale):.2g}; median scale/f_max {np.median(over_f_max / over_scale):.2g}; median "
        f"bound/observed {np.median([b / o for _, b, _, _, o in rows]):.0f}"
    )
    double = []
    for seed in range(10):  # the same in float64, at the default rtol
        torch.manual_seed(seed)
        target = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3)).double()
        frozen = frozen_mlp([4, 16, 4, 12, 3], seed=0).double()
        certificate = fit_norm_layers(frozen, target, verify.Ball(1.0)).certificate
        with torch.no_grad():
            observed = float((frozen.eval()(x.double()) - target(x.double())).abs().max())
        double.append((certificate.relative_error_bound, observed / certificate.f_max))
    print(
        f"float64, rtol 1e-6: 10/10 certified; median bound/f_max {np.median([b for b, _ in double]):.2g}, median "
        f"observed/f_max {np.median([o for _, o in double]):.2g}"
    )


if __name__ == "__main__":
    main()
