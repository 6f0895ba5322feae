"""What stops the dense chain's bound: the floor of worst-case rounding (`python benchmarks/dense_floor.py`).

Measured on the cases of the claim ``certificate/tightness`` (`verify.job.tightness_cases`), nothing asserted:

* ``dense``: the 30 dense float64 chains of ``dense-f64`` (`RANGE_SHAPES`, paper width, 2,000 fresh points each).
  Per target: the certified bound, the observed ``max |g − f|`` (numpy's forward against the target's), and the
  **floor** of any bound that lets every rounding be its full ``u`` with the sign that adds up. At each fresh
  point ``x`` the floor is ``u Σ_op |∂out/∂op| |op|`` over every operation of both networks that rounds (each
  product, each addition of a dot product, BatchNorm's ``h − μ``, ``γ·``, ``/σ`` and ``+ β``), the derivative
  taken through the network's linear regime at ``x``: in the order the sums are written (``order``), and in the
  worst order found (``any``: one sign's terms largest first, then the other sign's smallest first, which
  makes every partial sum as large as a partial sum of that many terms can be). A bound that holds for every
  summation order cannot be below ``any`` at the points where it is reached (first order; every rounding
  at its worst), so ``any / observed`` is what a sound bound of this kind can reach at best. Also: the
  bound's per-block ``max δ_k`` against the error observed after block ``k`` (its pre-activation, against the
  target's in ``np.longdouble``), and the bound's share by source.
* ``modes``: the same chains and the README's float32 MLP (``mlp-f32``, 10 targets) constructed in paper mode
  (the default) and in minimal mode at the same (paper) width, whose null space holds one more solution per
  output row (the even scales ``s′``) and whose choice minimizes the bound's proxy
  (`verify.solvers.min_bound`): bound / max ``|f|``, bound / observed, the blocks' condition numbers and the
  largest ``|γ|``, and the construction's time.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

import verify
from verify.job.tightness_cases import LOOSE_RTOL, RANGE_SHAPES, _points, _readme_mlp

POINTS = 2000
U = 2.0**-53


def _chain(seed: int) -> tuple[verify.TargetNetwork, verify.FrozenNetwork, verify.Domain]:
    widths = RANGE_SHAPES[seed % 3]
    target = verify.TargetNetwork.random(widths, seed=seed)
    frozen = verify.FrozenNetwork.for_target(target, width="paper", seed=seed + 100)
    ones = np.ones(widths[0])
    return target, frozen, verify.Ball(1.0) if seed % 2 == 0 else verify.Box(-ones, ones)


def _ordered(leaves: np.ndarray, sign: float) -> np.ndarray:
    """``Σ |partial sums|`` of each row's leaves added one by one: ``sign``'s leaves largest first, then the others
    smallest first (zero leaves last: adding 0 is exact)."""
    a = leaves * sign
    top = float(np.abs(a).max(initial=0.0)) * 4 + 1
    key = np.where(a > 0, -a, np.where(a < 0, top - a, np.inf))
    ordered = np.take_along_axis(leaves, np.argsort(key, axis=1, kind="stable"), axis=1)
    partial = np.cumsum(ordered, axis=1)[:, 1:]
    return np.sum(np.abs(partial) * (ordered[:, 1:] != 0), axis=1)


def _sums(leaves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Σ |partial sums|`` in the written order and in the worst order found, per row of ``leaves``."""
    written = np.sum(np.abs(np.cumsum(leaves, axis=1)[:, 1:]) * (leaves[:, 1:] != 0), axis=1)
    return written, np.maximum(_ordered(leaves, 1.0), _ordered(leaves, -1.0))


def _layers_floor(layers: list[tuple], x: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The floor ``u Σ |∂out/∂op| |op|`` per point and output (written order, worst order) of a chain of layers
    ``(M, c, μ, σ, γ, β)`` (``σ = None``: a plain affine layer), ReLU between them."""
    v = x
    masses, maps = [], []
    for j, (m, c, mu, sd, g, b) in enumerate(layers):
        h = v @ m.T + c
        s = g / sd if sd is not None else np.ones(m.shape[0])
        out = g * (h - mu) / sd + b if sd is not None else h
        written, worst = np.zeros((len(x), m.shape[0])), np.zeros((len(x), m.shape[0]))
        for i in range(m.shape[0]):
            if sd is not None and s[i] == 0 and b[i] == 0:
                continue  # switched off: outputs 0 exactly
            products = v * m[i]
            sums = _sums(np.hstack([products, np.full((len(x), 1), c[i])]))
            base = np.sum(np.abs(products), axis=1)
            norm = (3 * np.abs(s[i] * (h[:, i] - mu[i])) + np.abs(out[:, i])) if sd is not None else 0.0
            written[:, i] = abs(s[i]) * (base + sums[0]) + norm
            worst[:, i] = abs(s[i]) * (base + sums[1]) + norm
        last = j == len(layers) - 1
        mask = np.ones_like(out, dtype=bool) if last else out > 0
        masses.append((written, worst, mask))
        maps.append(s[:, None] * m)
        v = out if last else np.maximum(out, 0.0)
    floor_written, floor_worst = np.zeros((len(x), rows)), np.zeros((len(x), rows))
    jac = np.broadcast_to(np.eye(rows), (len(x), rows, rows)).copy()  # ∂out / ∂(layer output)
    for j in range(len(layers) - 1, -1, -1):
        written, worst, mask = masses[j]
        jac = jac * mask[:, None, :]
        floor_written += np.einsum("bri,bi->br", np.abs(jac), written)
        floor_worst += np.einsum("bri,bi->br", np.abs(jac), worst)
        jac = np.einsum("bri,ik->brk", jac, maps[j])
    return U * floor_written, U * floor_worst


def dense_floor(seed: int) -> dict[str, float | list[float]]:
    """One chain of ``dense-f64``: bound, observed, the floors, per-block bound and observed, the shares."""
    target, frozen, domain = _chain(seed)
    result = verify.reconstruct(target, frozen, domain, progress=False)
    x = _points(domain, (target.widths[0],), POINTS, seed)
    gamma, beta = ([np.asarray(v, dtype=np.float64) for v in p] for p in (result.gamma, result.beta))
    frozen_layers = list(
        zip(frozen.weights, frozen.biases, frozen.running_mean, frozen.norm_std, gamma, beta, strict=True)
    )
    target_layers = [(w, b, 0.0, None, 1.0, 0.0) for w, b in zip(target.weights, target.biases, strict=True)]
    g_order, g_any = _layers_floor(frozen_layers, x, target.widths[-1])
    f_order, _ = _layers_floor(target_layers, x, target.widths[-1])  # the target sums in its own order
    observed = float(np.max(np.abs(result.network(x) - target(x))))
    pre = frozen.preactivations(x, result.gamma, result.beta)
    z, per_block = x.astype(np.longdouble), []
    for k, (w, b) in enumerate(zip(target.weights, target.biases, strict=True)):
        h = z @ w.astype(np.longdouble).T + b.astype(np.longdouble)
        per_block.append(float(np.max(np.abs(pre[2 * k + 1][:, : h.shape[1]] - h))))
        z = np.maximum(h, 0)
    bound = result.certificate.bound
    total = sum(value for _, value in bound.terms)
    return {
        "bound": bound.error_bound,
        "observed": observed,
        "order": float(np.max(g_order + f_order)),
        "any": float(np.max(g_any + f_order)),
        "blocks": list(bound.blocks),
        "observed_blocks": per_block,
        **{name: value / total for name, value in bound.terms},
    }


def dense() -> None:
    """The floor of the 30 dense chains (module notes)."""
    rows = [dense_floor(seed) for seed in range(30)]
    ratio = np.array([[r["bound"], r["order"], r["any"]] for r in rows]) / np.array([[r["observed"]] for r in rows])
    print("dense-f64, 30 chains, 2000 fresh points each (median, max over chains):")
    print(f"  bound / observed            {np.median(ratio[:, 0]):7.1f} {np.max(ratio[:, 0]):7.1f}")
    print(f"  floor (written order) / obs {np.median(ratio[:, 1]):7.1f} {np.max(ratio[:, 1]):7.1f}")
    print(f"  floor (any order) / obs     {np.median(ratio[:, 2]):7.1f} {np.max(ratio[:, 2]):7.1f}")
    print(f"  bound / floor (any order)   {np.median(ratio[:, 0] / ratio[:, 2]):7.2f}")
    for name in ("even rounding", "odd rounding", "residual", "target rounding", "margins"):
        print(f"  share of the bound: {name:16s} {np.median([r.get(name, 0.0) for r in rows]):.2f}")
    for depth in (3, 4):
        chosen = [r for r in rows if len(r["blocks"]) == depth]
        growth = np.median([np.array(r["blocks"]) / np.array(r["observed_blocks"]) for r in chosen], axis=0)
        print(
            f"  {depth} blocks: bound max δ_k / observed after block k, median: "
            + ", ".join(f"{v:.0f}" for v in growth)
        )


def _mlp(seed: int, mode: str) -> dict[str, object]:
    import torch

    from verify.nn import fit_norm_layers

    frozen, target, domain, _ = _readme_mlp(seed)()
    start = time.perf_counter()
    result = fit_norm_layers(frozen, target, domain, rtol=LOOSE_RTOL, mode=mode, progress=False)
    seconds = time.perf_counter() - start
    points = domain.resolve(4).sample(POINTS, np.random.default_rng(4000 + seed))
    x = torch.tensor(points, dtype=torch.float32)
    with torch.no_grad():
        f, g = target.double()(x.double()), frozen.eval()(x).double()
    norms = [m for m in frozen.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    certificate = result.certificate
    return {
        "relative": certificate.error_bound / float(f.abs().max()),
        "over": certificate.error_bound / float((g - f).abs().max()),
        "certified": certificate.error_bound <= 1e-3 * certificate.f_max,
        "condition": [round(float(block.condition)) for block in certificate.blocks],
        "gamma": max(float(m.weight.detach().abs().max()) for m in norms),
        "seconds": seconds,
    }


def modes() -> None:
    """Paper against minimal mode at the paper width (module notes)."""
    warnings.filterwarnings("ignore", category=UserWarning)
    for mode in ("paper", "minimal"):
        rows, seconds = [], 0.0
        for seed in range(30):
            target, frozen, domain = _chain(seed)
            start = time.perf_counter()
            result = verify.reconstruct(target, frozen, domain, mode, progress=False)
            seconds += time.perf_counter() - start
            x = _points(domain, (target.widths[0],), POINTS, seed)
            f = target(x)
            bound = result.certificate.error_bound
            rows.append((bound / float(np.max(np.abs(f))), bound / float(np.max(np.abs(result.network(x) - f)))))
        rel, over = np.median(rows, axis=0)
        print(
            f"dense-f64 {mode:7s}: median bound/max|f| {rel:.3g}, bound/observed {over:.0f}; "
            f"construction {seconds:.1f} s"
        )
    for mode in ("paper", "minimal"):
        rows = [_mlp(seed, mode) for seed in range(10)]
        rel = [r["relative"] for r in rows]
        print(
            f"mlp-f32 {mode:7s}: median bound/max|f| {np.median(rel):.3g} "
            f"(max {max(rel):.3g}, seed {int(np.argmax(rel))}), "
            f"bound/observed {np.median([r['over'] for r in rows]):.0f}, {sum(r['certified'] for r in rows)}/10 "
            f"certified at 1e-3; construction {sum(r['seconds'] for r in rows):.1f} s"
        )
        for seed in (8,):
            r = rows[seed]
            print(
                f"    seed {seed}: bound/max|f| {r['relative']:.3g}, cond(K) per block {r['condition']}, "
                f"largest |γ| {r['gamma']:.3g}"
            )


if __name__ == "__main__":
    chosen = sys.argv[1:] or ["dense", "modes"]
    for name in chosen:
        {"dense": dense, "modes": modes}[name]()
