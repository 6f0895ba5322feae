"""The cases of the claim ``certificate/tightness``: how close each certified bound is to what is observed.

Each case builds its targets and frozen networks (seeded), certifies them the way a user would, and
measures on fresh points of the domain (seed ``4000 + s``; a box gets half uniform points and half
corners, both extreme corners included, `verify.job.claims.routes.fresh_points`; a ball half inside,
half on its sphere) the observed error ``max |g − f|`` and ``max |f|``, where ``g`` is torch's own
forward of the tuned frozen module in its dtype (the numpy network for the dense chains, which have no
module) and ``f`` the target evaluated in float64 on the weights it stores; the target's own forward in
its dtype is compared too, and the larger of the two differences is the observed error.

Cases (`CASES`):

* ``dense-f64``: 30 dense chains of `RANGE_SHAPES` (target seed ``s``, shape ``s mod 3``, Ball(1) for
  even seeds, ``[-1, 1]^d`` otherwise, frozen seed ``s + 100``, paper width): the family of
  ``benchmarks/bench.py ranges``;
* ``resnet-f64`` / ``resnet-f32``: `SmallResNet`, the README's ResNet class (two BasicBlocks), on
  ``[0, 1]^{3×6×6}``, ``torch.manual_seed(0)``, ``frozen_like(width="paper", seed=0)``;
* ``mlp-f32``: the README's float32 example, ``frozen_mlp([4, 16, 4, 12, 3], seed=s)`` and a
  ``4 → 4 → 3`` target after ``torch.manual_seed(s)``, Ball(1), seeds 0–9;
* ``cnn-f32``: the CNN class of `verify.job.graph_models` (``"cnn"``, seed 0) in float32, frozen seed 1000;
* ``resnet8-f64``: ResNet-8 (`verify.job.graph_models.ResNet` ``(16, 32, 64)``, 10 classes) at 2× paper
  width on ``[0, 1]^{3×32×32}``, as ``benchmarks/bench.py resnet8`` (minutes; ``--full`` and
  ``bench.py tightness`` only; 64 fresh images, see `CASES`).

Whether a model "certifies at rtol" is the library's own verdict: ``fit_norm_layers(..., rtol=rtol)``
returns, or raises `verify.CertificateError`. A refused model is fitted again at `LOOSE_RTOL` (the
construction does not depend on ``rtol``, which only judges) so that its bound can still be measured
against torch's forward.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import verify
from verify.job.graph_models import BasicBlock, ResNet, build, domain_of

__all__ = ["CASES", "LOOSE_RTOL", "RANGE_SHAPES", "SmallResNet", "certified_bound", "measure_case"]

LOOSE_RTOL = 1e12
"""The ``rtol`` of the refit of a refused model: it accepts any finite bound, so the bound can be measured."""

RANGE_SHAPES = ([8, 16, 16, 4], [4, 8, 8, 8, 2], [6, 12, 12, 3])
"""The dense chains' shapes (target seed ``s`` has shape ``s mod 3``), as ``benchmarks/bench.py ranges``."""


class SmallResNet(nn.Module):
    """The README's ResNet class: a stem, BasicBlocks ``4 → 4`` and ``4 → 8`` (stride 2), pooling, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4)
        self.layer1, self.layer2 = BasicBlock(4, 4), BasicBlock(4, 8, 2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(F.relu(self.bn(self.stem(x)))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def certified_bound(result: Any) -> float:
    """The certified ``error_bound`` of a result's certificate (every route's result is a `Reconstruction`)."""
    return float(result.certificate.error_bound)


def _f_max(result: Any) -> float | None:
    """The certificate's own ``f_max`` (a lower bound on ``max |f|``), where the certificate has one."""
    value = getattr(result.certificate, "f_max", None)
    return None if value is None else float(value)


def _points(domain: Any, shape: tuple[int, ...], count: int, seed: int) -> np.ndarray:
    from verify.job.claims.routes import fresh_points  # here: the claims package imports this module

    rng = np.random.default_rng(4000 + seed)
    if isinstance(domain, verify.Box):
        return fresh_points(domain, count, rng)
    return domain.resolve(int(np.prod(shape))).sample(count, rng)


def module_case(
    make: Callable[[], tuple[nn.Module, nn.Module, Any, tuple[int, ...]]],
    rtol: float,
    points: int,
    seed: int,
    **options: Any,
) -> dict[str, Any]:
    """One target module: fitted at ``rtol`` (certified or refused), measured on ``points`` fresh points."""
    from verify.nn import fit_norm_layers

    start = time.perf_counter()
    frozen, target, domain, shape = make()
    try:
        result = fit_norm_layers(frozen, target, domain, rtol=rtol, progress=False, **options)
        certified, tuned = True, frozen
    except verify.CertificateError:
        certified, tuned = False, None
    if tuned is None:  # refused: the same construction, judged loosely, so the bound can be measured
        frozen, target, domain, shape = make()
        result = fit_norm_layers(frozen, target, domain, rtol=LOOSE_RTOL, progress=False, **options)
        tuned = frozen
    dtype = next(target.parameters()).dtype
    x = _points(domain, shape, points, seed)
    inputs = torch.tensor(x.reshape(points, *shape), dtype=dtype)
    with torch.no_grad():
        g = tuned.eval()(inputs).double().reshape(points, -1)
        f_own = target(inputs).double().reshape(points, -1)
        f = copy.deepcopy(target).double()(inputs.double()).reshape(points, -1)
    observed = float(max((g - f).abs().max(), (g - f_own).abs().max()))
    return {
        "certified": certified,
        "bound": certified_bound(result),
        "observed": observed,
        "max_f": float(f.abs().max()),
        "f_max": _f_max(result),
        "seconds": time.perf_counter() - start,
    }


def _dense(seed: int, points: int) -> dict[str, Any]:
    start = time.perf_counter()
    widths = RANGE_SHAPES[seed % 3]
    target = verify.TargetNetwork.random(widths, seed=seed)
    frozen = verify.FrozenNetwork.for_target(target, width="paper", seed=seed + 100)
    d = widths[0]
    domain = verify.Ball(1.0) if seed % 2 == 0 else verify.Box(-np.ones(d), np.ones(d))
    result = verify.reconstruct(target, frozen, domain, progress=False)
    x = _points(domain, (widths[0],), points, seed)
    f = target(x)
    return {
        "certified": bool(result.certificate.holds),
        "bound": certified_bound(result),
        "observed": float(np.max(np.abs(result.network(x) - f))),
        "max_f": float(np.max(np.abs(f))),
        "f_max": _f_max(result),
        "seconds": time.perf_counter() - start,
    }


def _small_resnet(dtype: torch.dtype) -> Callable[[], tuple[nn.Module, nn.Module, Any, tuple[int, ...]]]:
    def make() -> tuple[nn.Module, nn.Module, Any, tuple[int, ...]]:
        from verify.nn import frozen_like

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            target = SmallResNet().to(dtype).eval()
        shape = (3, 6, 6)
        return frozen_like(target, width="paper", seed=0), target, verify.Box(0.0, 1.0, shape=shape), shape

    return make


def _readme_mlp(seed: int) -> Callable[[], tuple[nn.Module, nn.Module, Any, tuple[int, ...]]]:
    def make() -> tuple[nn.Module, nn.Module, Any, tuple[int, ...]]:
        from verify.nn import frozen_mlp

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            frozen = frozen_mlp([4, 16, 4, 12, 3], seed=seed, dtype=torch.float32)
            target = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3)).float()
        return frozen, target, verify.Ball(1.0), (4,)

    return make


def _cnn() -> tuple[nn.Module, nn.Module, Any, tuple[int, ...]]:
    from verify.nn import frozen_like

    target = build("cnn", 0).float()
    lo, hi, shape = domain_of("cnn")
    return frozen_like(target, width="paper", seed=1000), target, verify.Box(lo, hi, shape=shape), shape


def _resnet8() -> tuple[nn.Module, nn.Module, Any, tuple[int, ...]]:
    from verify.nn import frozen_like

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        target = ResNet((16, 32, 64), 1, classes=10).double().eval()
    shape = (3, 32, 32)
    return frozen_like(target, width=2.0, seed=1), target, verify.Box(0.0, 1.0, shape=shape), shape


CASES: dict[str, dict[str, Any]] = {
    "dense-f64": {"label": "dense chains, 30 targets", "dtype": "float64", "rtol": 1e-6, "targets": 30},
    "resnet-f64": {"label": "small ResNet (2 BasicBlocks, 3x6x6)", "dtype": "float64", "rtol": 1e-6, "targets": 1},
    "mlp-f32": {"label": "README MLP, 10 targets", "dtype": "float32", "rtol": 1e-3, "targets": 10},
    "cnn-f32": {"label": "CNN class (graph_models 'cnn')", "dtype": "float32", "rtol": 1e-3, "targets": 1},
    "resnet-f32": {"label": "small ResNet (2 BasicBlocks, 3x6x6)", "dtype": "float32", "rtol": 1e-2, "targets": 1},
    "resnet8-f64": {
        "label": "ResNet-8, 2x paper width",
        "dtype": "float64",
        "rtol": 1e-6,
        "targets": 1,
        "max_points": 64,
    },
}
"""Per case: its table label, dtype, the ``rtol`` its goal certifies at, how many targets it has, and at most
how many fresh points (ResNet-8's frozen forward takes about 1.5 s per image on one core: 64 images, corners
included, instead of 2,000)."""


def measure_case(case: str, index: int, points: int) -> dict[str, Any]:
    """Target ``index`` of ``case`` (a key of `CASES`), measured on ``points`` fresh points; never raises."""
    points = min(points, CASES[case].get("max_points", points)) if case in CASES else points
    row: dict[str, Any] = {"case": case, "index": index, "points": points}
    rtol = CASES[case]["rtol"] if case in CASES else 0.0
    try:
        if case == "dense-f64":
            row |= _dense(index, points)
        elif case in ("resnet-f64", "resnet-f32"):
            row |= module_case(_small_resnet(getattr(torch, CASES[case]["dtype"])), rtol, points, index)
        elif case == "mlp-f32":
            row |= module_case(_readme_mlp(index), rtol, points, index)
        elif case == "cnn-f32":
            row |= module_case(_cnn, rtol, points, index)
        elif case == "resnet8-f64":
            row |= module_case(_resnet8, rtol, points, index, samples=64)
        else:
            raise ValueError(f"case must be one of {tuple(CASES)}, got {case!r}")
        row["sound"] = row["observed"] <= row["bound"]
        if not row["sound"]:
            row["reason"] = (
                f"max |g - f| = {row['observed']:.3g} on {points} fresh points exceeds the bound {row['bound']:.3g}"
            )
    except Exception as error:  # recorded as this target's failure, with its reason
        row |= {"sound": False, "reason": f"{type(error).__name__}: {error}"}
    return row
