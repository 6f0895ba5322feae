"""How tight the dense chain's certified bound is, and what it is made of (`python benchmarks/error_terms.py`).

Two sets, measured (nothing asserted; machines are shared, the times are for reading):

* dense chains in float64: 10 random targets per depth ``L = 1, 2, 3`` (widths 2–5, seed ``s``, frozen
  seed ``1000 + s``, paper mode, a ball or a box), ``error_bound`` against ``max |g − f|`` on 2,000 fresh
  points (``3000 + s``), and the time of one `verify.core.error_bound.error_bound` call;
* the README's float32 PyTorch MLP (``frozen_mlp([4, 16, 4, 12, 3])``, 10 targets, seed ``s``): the bound
  against ``max |f|`` and against torch's own float32 forward on 2,000 fresh points of the unit ball.

Each set also gives the median share of the bound per source (``ErrorBound.terms``).
"""

from __future__ import annotations

import time

import numpy as np

import verify
from verify.core.error_bound import error_bound
from verify.core.networks import FrozenNetwork, TargetNetwork

POINTS = 2000


def _shares(terms: list[dict[str, float]]) -> str:
    names = list(terms[0])
    shares = np.median([[t[n] / sum(t.values()) for n in names] for t in terms], axis=0)
    return ", ".join(f"{n} {v:.2f}" for n, v in zip(names, shares, strict=True) if v >= 0.005)


def dense() -> None:
    """Dense float64 chains, depth 1–3 (module notes)."""
    ratios: list[float] = []
    terms: list[dict[str, float]] = []
    for depth in (1, 2, 3):
        at, seconds = [], []
        for seed in range(10):
            widths = tuple(int(w) for w in np.random.default_rng(seed + 100 * depth).integers(2, 6, size=depth + 1))
            target = TargetNetwork.random(widths, seed=seed)
            frozen = FrozenNetwork.for_target(target, width="paper", seed=1000 + seed)
            ones = np.ones(widths[0])
            domain = verify.Ball(1.0) if seed % 2 == 0 else verify.Box(-ones, ones)
            result = verify.reconstruct(target, frozen, domain, progress=False)
            x = domain.resolve(widths[0]).sample(POINTS, np.random.default_rng(3000 + seed))
            observed = float(np.max(np.abs(result.network(x) - target(x))))
            gamma, beta = ([np.asarray(v, dtype=float) for v in p] for p in (result.gamma, result.beta))
            start = time.perf_counter()
            bound = error_bound(target, frozen, gamma, beta, domain)
            seconds.append(time.perf_counter() - start)
            terms.append(dict(bound.terms))
            if observed > 0:
                at.append(bound.error_bound / observed)
        ratios += at
        print(
            f"dense L={depth}: median bound/observed {np.median(at):.3g} (smallest {min(at):.3g}), "
            f"error_bound {np.median(seconds) * 1e3:.2f} ms"
        )
    print(f"dense, {len(ratios)} targets with an observed error: median bound/observed {np.median(ratios):.3g}")
    print(f"dense, share of the bound: {_shares(terms)}")


def mlp() -> None:
    """The README's float32 MLP (module notes)."""
    import torch
    from torch import nn

    from verify.nn import fit_norm_layers, frozen_mlp

    relative, over, terms = [], [], []
    for seed in range(10):
        torch.manual_seed(seed)
        frozen = frozen_mlp([4, 16, 4, 12, 3], seed=seed)
        target = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
        result = fit_norm_layers(frozen, target, verify.Ball(1.0), rtol=1e-2, progress=False)
        points = verify.Ball(1.0).resolve(4).sample(POINTS, np.random.default_rng(3000 + seed))
        x = torch.tensor(points, dtype=torch.float32)
        with torch.no_grad():
            f, g = target(x), frozen.eval()(x)
        bound = result.certificate.error_bound
        relative.append(bound / float(f.abs().max()))
        over.append(bound / float((g - f).abs().max()))
        terms.append(dict(result.certificate.bound.terms))
    print(
        f"float32 MLP: median bound/max|f| {np.median(relative):.3g} (largest {max(relative):.3g}), "
        f"median bound/observed {np.median(over):.3g}; {sum(r <= 1e-3 for r in relative)}/10 at most 1e-3"
    )
    print(f"float32 MLP, share of the bound: {_shares(terms)}")


if __name__ == "__main__":
    dense()
    mlp()
