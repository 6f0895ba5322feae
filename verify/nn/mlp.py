"""Random torch stacks to start from: a target ``Linear -> ReLU -> …`` and a frozen ``Linear -> BatchNorm1d -> ReLU …``.

Both follow the grammar of `verify.nn.grammar` (`TARGET`, `FROZEN`), so `verify.nn.modules` reads
them back; each is seeded without touching torch's global generator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from verify.core.memory import check_build
from verify.core.networks import dense_pairs
from verify.core.validate import as_count, as_real, as_seed, as_sequence

__all__ = ["frozen_mlp", "target_mlp"]


def _widths(widths: Sequence[int], what: str, count_ok: Callable[[int], bool]) -> list[int]:
    """``widths`` as integers >= 1 (a float width such as 12.5 is refused, never truncated)."""
    items = as_sequence(widths, "widths")
    if not count_ok(len(items)):
        raise ValueError(f"widths must list {what}, got {items!r}")
    return [as_count(w, f"widths[{j}]") for j, w in enumerate(items)]


def target_mlp(
    widths: Sequence[int], *, seed: int = 0, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> nn.Sequential:
    """A random target ``Linear -> ReLU -> … -> Linear`` with widths ``d_0 … d_L`` (torch's default
    ``nn.Linear`` initialization, seeded by ``seed`` without touching the global generator)."""
    dims = _widths(widths, "d_0 … d_L (at least two integers >= 1)", lambda n: n >= 2)
    seed = as_seed(seed)
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for j in range(1, len(dims)):
            layers.append(nn.Linear(dims[j - 1], dims[j], dtype=dtype))
            if j < len(dims) - 1:
                layers.append(nn.ReLU())
    module = nn.Sequential(*layers)
    return module if device is None else module.to(device)


def frozen_mlp(
    widths: Sequence[int],
    *,
    seed: int = 0,
    paired: bool = False,
    biases: bool = False,
    eps: float = 1e-5,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> nn.Sequential:
    """A random frozen ``Linear -> BatchNorm1d -> ReLU`` stack with widths ``n_0 … n_{2L}``, in eval mode.

    Linear weights are ``N(0, 1/fan_in)`` (a torch generator of its own, seeded by ``seed``; torch's
    global generator is left untouched, as `target_mlp` leaves it); BatchNorm starts at
    weight 1, bias 0, running mean 0, variance 1. ``dtype`` defaults to torch's default dtype (so
    the module takes the same inputs as an ``nn.Linear`` built next to it); the construction is
    solved in float64 either way, and ``dtype=torch.float64`` keeps its full accuracy in the module.
    ``paired=True`` builds the looks-linear network of docs/design.md §3: every odd layer is ``[B; −B]``
    (its width must be even) and the next layer's columns are ``[A, −A]``, so `verify.reconstruct`
    with ``domain=None`` is exact on all of R^d.
    """
    dims = _widths(widths, "n_0 … n_2L (an odd number >= 3 of integers >= 1)", lambda n: n >= 3 and n % 2 == 1)
    seed = as_seed(seed)
    eps = as_real(eps, "eps", minimum=0.0)
    if paired and any(dims[j] % 2 for j in range(1, len(dims), 2)):
        raise ValueError(f"paired=True needs even odd-layer widths n_1, n_3, …, got {dims[1::2]}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    # each parameter once, plus the widest layer's draw and its scaled copy while they are copied in
    check_build("frozen_mlp", dense_pairs(dims[::2], dims[1::2]), (dtype.itemsize, 2 * dtype.itemsize))
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    previous_half = None
    for j in range(1, len(dims)):
        n_in, n_out = dims[j - 1], dims[j]
        odd = j % 2 == 1
        with torch.random.fork_rng(devices=[]):  # nn.Linear's own initialization draws from the global generator
            linear = nn.Linear(n_in, n_out, bias=biases, dtype=dtype)
        with torch.no_grad():
            if paired and odd:
                half = torch.randn(n_out // 2, n_in, generator=generator, dtype=dtype) / n_in**0.5
                linear.weight.copy_(torch.cat([half, -half]))
                if biases:
                    c = torch.randn(n_out // 2, generator=generator, dtype=dtype)
                    linear.bias.copy_(torch.cat([c, -c]))
            elif paired and previous_half is not None:
                half = torch.randn(n_out, previous_half, generator=generator, dtype=dtype) / n_in**0.5
                linear.weight.copy_(torch.cat([half, -half], dim=1))
                if biases:
                    linear.bias.copy_(torch.randn(n_out, generator=generator, dtype=dtype))
            else:
                linear.weight.copy_(torch.randn(n_out, n_in, generator=generator, dtype=dtype) / n_in**0.5)
                if biases:
                    linear.bias.copy_(torch.randn(n_out, generator=generator, dtype=dtype))
        previous_half = n_out // 2 if (paired and odd) else None
        layers += [linear, nn.BatchNorm1d(n_out, eps=eps, dtype=dtype)]
        if j < len(dims) - 1:
            layers.append(nn.ReLU())
    module = nn.Sequential(*layers)
    if device is not None:
        module = module.to(device)
    return module.eval()
