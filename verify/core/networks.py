"""The two networks of docs/design.md §1: the target ReLU network and the frozen normalized network.

Target ``f`` with widths ``d_0 … d_L``::

    z_0 = x,   z_k = relu(W_k z_{k-1} + b_k)  (k < L),   f(x) = W_L z_{L-1} + b_L

Frozen ``g`` with ``2L`` linear layers, widths ``n_0 = d_0, n_1, …, n_{2L} = d_L``, each followed
by a BatchNorm in eval mode (frozen running mean/variance and eps) whose weight ``gamma`` and bias
``beta`` are the only tuned parameters::

    h_j = M_j u_{j-1} + c_j,   N_j(h) = gamma_j * (h - mu_j) / sqrt(v_j + eps) + beta_j
    u_0 = x,   u_j = relu(N_j(h_j))  (j < 2L),   g(x) = N_{2L}(h_{2L})

Weights use the ``torch.nn.Linear`` convention: shape ``(out, in)``.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import numpy as np

from verify.core.channels import Channels, DenseChannels
from verify.core.interop import TorchSpec, like, torch_spec
from verify.core.memory import Pair, check_build
from verify.core.normalizations import Normalizations, norm_statistics, per_layer
from verify.core.validate import as_array, as_points, as_real, as_seed, as_sequence
from verify.core.widths import layer_widths, minimal_width, paper_width

__all__ = ["FrozenNetwork", "Normalizations", "TargetNetwork", "dense_pairs", "minimal_width", "paper_width"]


_TARGET_STREAM, _FROZEN_STREAM = 1, 2


def _generator(seed: int, stream: int) -> np.random.Generator:
    """Independent random streams for targets and frozen networks drawn with the same seed (an integer >= 0)."""
    return np.random.default_rng([stream, as_seed(seed)])


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


class _Layers:
    """What both networks share: a chain of ``(out, in)`` weights and where their tensors came from."""

    _weights: tuple[np.ndarray, ...]
    _biases: tuple[np.ndarray, ...]
    _torch: TorchSpec | None

    @property
    def weights(self) -> tuple[np.ndarray, ...]:
        """The linear weights, read-only: ``(W_1, …, W_L)`` of a target, ``(M_1, …, M_{2L})`` of a frozen network."""
        return self._weights

    @property
    def biases(self) -> tuple[np.ndarray, ...]:
        """The linear biases, read-only (zeros where none were given): ``b_k`` of a target, ``c_j`` of a frozen one."""
        return self._biases

    @property
    def torch(self) -> TorchSpec | None:
        """Device and dtype of the torch tensors it was built from (None for numpy input)."""
        return self._torch

    @property
    def widths(self) -> tuple[int, ...]:
        """The input width and every layer's output width: ``(d_0, …, d_L)`` or ``(n_0, …, n_{2L})``."""
        return (self._weights[0].shape[1], *(w.shape[0] for w in self._weights))


class TargetNetwork(_Layers):
    """A ReLU network ``f`` of depth ``L`` and widths ``d_0 … d_L`` (docs/design.md §1).

    Parameters
    ----------
    weights : sequence of arrays
        ``W_1 … W_L``, ``W_k`` of shape ``(d_k, d_{k-1})`` (the ``torch.nn.Linear`` convention).
    biases : sequence of arrays or None, optional
        ``b_1 … b_L``, ``b_k`` of shape ``(d_k,)``; ``None`` (or a ``None`` entry) means zero.

    The arrays are copied and stored read-only: later changes to the caller's arrays do not affect
    the network.
    """

    def __init__(self, weights: Sequence[object], biases: Sequence[object] | None = None) -> None:
        items = as_sequence(weights, "weights")
        if not items:
            raise ValueError("weights must hold at least one layer (depth L >= 1), got an empty list")
        ws = _chained_weights(items)
        bs = [None] * len(ws) if biases is None else as_sequence(biases, "biases", len(ws))
        self._torch = torch_spec([items, bs])
        self._weights = tuple(ws)
        self._biases = tuple(
            np.zeros(w.shape[0]) if b is None else as_array(b, f"biases[{k}]", (w.shape[0],))
            for k, (w, b) in enumerate(zip(ws, bs, strict=True))
        )
        for b in self._biases:
            b.setflags(write=False)

    @classmethod
    def random(cls, widths: Sequence[int], *, seed: int = 0, biases: bool = True, scale: float = 1.0) -> TargetNetwork:
        """A target with i.i.d. Gaussian weights ``N(0, scale**2 / d_{k-1})`` and biases ``N(0, scale**2)``.

        Parameters
        ----------
        widths : sequence of int
            ``d_0 … d_L``, each >= 1, at least two entries.
        seed : int
            The same seed gives the same network; a `FrozenNetwork.for_target` drawn with the same
            seed is independent of it (separate random streams).
        biases : bool
            Draw biases (default) or set them to zero.
        scale : float
            Positive multiplier of every weight and bias.
        """
        dims = _check_widths(widths, "widths")
        scale = as_real(scale, "scale", positive=True)
        rng = _generator(seed, _TARGET_STREAM)
        ws, bs = [], []
        for d_in, d_out in itertools.pairwise(dims):
            ws.append(rng.standard_normal((d_out, d_in)) * (scale / np.sqrt(d_in)))
            bs.append(rng.standard_normal(d_out) * scale if biases else np.zeros(d_out))
        return cls(ws, bs)

    @property
    def depth(self) -> int:
        """``L``, the number of linear layers."""
        return len(self._weights)

    def __call__(self, x: object) -> np.ndarray:
        """Evaluate ``f`` on ``x`` of shape ``(batch, d_0)`` (or ``(d_0,)``); a torch ``x`` gives a tensor."""
        z, single = as_points(x, self.widths[0])
        for k, (w, b) in enumerate(zip(self._weights, self._biases, strict=True)):
            z = z @ w.T + b
            if k < self.depth - 1:
                z = _relu(z)
        return like(x, z[0] if single else z)

    def magnitude(self, x: object) -> np.ndarray:
        """Evaluate ``f`` with every weight, bias and input replaced by its absolute value.

        This bounds the rounding error of evaluating ``f`` (each layer adds at most
        ``(fan_in + 2) * eps`` times it), see `verify.evaluation_tolerance`.
        """
        z, single = as_points(x, self.widths[0])
        z = np.abs(z)
        for w, b in zip(self._weights, self._biases, strict=True):
            z = z @ np.abs(w).T + np.abs(b)
        return like(x, z[0] if single else z)

    def __repr__(self) -> str:
        return f"TargetNetwork(widths={list(self.widths)})"


class FrozenNetwork(_Layers, Normalizations):
    """A frozen network of ``2L`` linear layers, each followed by an eval-mode BatchNorm (docs/design.md §1).

    Parameters
    ----------
    weights : sequence of arrays
        ``M_1 … M_{2L}``, ``M_j`` of shape ``(n_j, n_{j-1})``. The number of layers must be even.
    biases : sequence of arrays or None, optional
        Frozen linear biases ``c_j`` of shape ``(n_j,)``; ``None`` (or a ``None`` entry) means zero.
    running_mean, running_var : sequence of arrays or None, optional
        BatchNorm running statistics ``mu_j`` and ``v_j`` (defaults 0 and 1).
    eps : float or sequence of floats
        BatchNorm ``eps >= 0``: one value for every layer, or one per layer (``2L`` values, as torch
        allows a different ``eps`` in each BatchNorm); ``v_j + eps_j`` must be positive everywhere.

    Only the BatchNorm weight ``gamma_j`` and bias ``beta_j`` are ever solved for; everything here
    is copied and stored read-only.
    """

    def __init__(
        self,
        weights: Sequence[object],
        biases: Sequence[object] | None = None,
        running_mean: Sequence[object] | None = None,
        running_var: Sequence[object] | None = None,
        eps: float | Sequence[float] = 0.0,
    ) -> None:
        items = as_sequence(weights, "weights")
        if not items or len(items) % 2:
            raise ValueError(
                f"weights must hold an even number 2L >= 2 of layers (two frozen layers per target layer), "
                f"got {len(items)}"
            )
        ms = _chained_weights(items)
        self._torch = torch_spec([items, biases or [], running_mean or [], running_var or []])
        self._weights = tuple(ms)
        counts = [m.shape[0] for m in ms]
        self._biases = per_layer(biases, "biases", counts, 0.0)
        self._mean, self._var, self._layer_eps, self._std = norm_statistics(counts, running_mean, running_var, eps)

    @classmethod
    def for_target(
        cls,
        target: TargetNetwork,
        width: str | int | float | Sequence[int] = "paper",
        *,
        seed: int = 1,
        distribution: str = "gaussian",
        biases: bool = False,
        density: float = 1.0,
        paired: bool = False,
    ) -> FrozenNetwork:
        """A random frozen network shaped for ``target``.

        Parameters
        ----------
        target : TargetNetwork
            The network to be reproduced; fixes ``L``, ``n_0 = d_0`` and the even widths ``n_{2k} = d_k``.
        width : "paper", "minimal", int, float or sequence of int
            Odd-layer widths ``n_{2k-1}``: ``"paper"`` gives ``d_k * d_{k-1}``, ``"minimal"`` gives
            ``d_k * (d_{k-1} - 1) + 1``, an int is used for every block, a float ``f > 0`` gives
            ``ceil(f * d_k * d_{k-1})``, and a sequence gives one width per block.
        seed : int
            The same seed gives the same network, independent of a target drawn with that seed.
        distribution : "gaussian" or "uniform"
            Weights ``N(0, 1/fan_in)`` or ``U(-sqrt(3/fan_in), sqrt(3/fan_in))`` (same variance).
        biases : bool
            Also draw frozen linear biases from the same distribution (scaled as if ``fan_in = 1``).
        density : float
            ``p`` in ``(0, 1]``: every weight is kept with probability ``p`` (an independent
            Bernoulli(p) mask per layer, exact zeros elsewhere) and kept weights are scaled by
            ``1/sqrt(p)`` so that the variance is unchanged (docs/design.md §4). ``1.0`` is dense.
        paired : bool
            Build the looks-linear network of docs/design.md §3: each odd layer is ``[B; −B]`` (frozen biases
            ``[c; −c]``) and the next layer's columns are ``[A, −A]``. ``width`` then counts the
            *pairs*, so the odd layers are twice as wide; `reconstruct` with ``domain=None`` is
            exact on all of R^d.
        """
        if not isinstance(target, TargetNetwork):
            raise ValueError(f"target must be a TargetNetwork, got {type(target).__name__}")
        if distribution not in ("gaussian", "uniform"):
            raise ValueError(f"distribution must be 'gaussian' or 'uniform', got {distribution!r}")
        if isinstance(density, bool) or not isinstance(density, (int, float, np.floating)) or not 0 < density <= 1:
            raise ValueError(f"density must be a number in (0, 1], got {density!r}")
        d = target.widths
        odd = _odd_widths(width, d)
        check_build("FrozenNetwork.for_target", dense_pairs(d, width, paired=paired))
        rng = _generator(seed, _FROZEN_STREAM)

        draw = functools.partial(draw_weights, rng, distribution=distribution)
        ms, cs = [], []
        n_prev = d[0]
        if paired:
            if density != 1:
                raise ValueError("paired=True builds dense mirrored layers; use density=1.0")
            for k in range(1, len(d)):
                m = odd[k - 1]
                half = draw((m, n_prev), n_prev)
                ms.append(np.vstack([half, -half]))
                c = draw((m,), 1) if biases else np.zeros(m)
                cs.append(np.concatenate([c, -c]))
                half = draw((d[k], m), 2 * m)
                ms.append(np.hstack([half, -half]))
                cs.append(draw((d[k],), 1) if biases else None)
                n_prev = d[k]
            return cls(ms, cs)
        for k in range(1, len(d)):
            for n_out in (odd[k - 1], d[k]):
                ms.append(draw((n_out, n_prev), n_prev, density=density))
                cs.append(draw((n_out,), 1) if biases else None)
                n_prev = n_out
        return cls(ms, cs)

    @property
    def channels(self) -> tuple[Channels, ...]:
        """What each layer's normalization scales (`verify.core.channels`): here one channel per neuron."""
        return tuple(DenseChannels(m.shape[0]) for m in self._weights)

    @property
    def masks(self) -> tuple[np.ndarray, ...]:
        """Boolean patterns ``M_j != 0`` of the frozen weights (all True for a dense network)."""
        return tuple(m != 0 for m in self._weights)

    @property
    def depth(self) -> int:
        """``L``: the number of target layers this network can carry (half its layer count)."""
        return len(self._weights) // 2

    def forward(self, x: object, gamma: Sequence[object], beta: Sequence[object]) -> np.ndarray:
        """Evaluate ``g`` on ``x`` of shape ``(batch, n_0)`` (or ``(n_0,)``) with BatchNorm ``(gamma, beta)``.

        Uses the eval-mode BatchNorm formula ``gamma * (h - mu) / sqrt(v + eps) + beta`` as torch does.
        A torch ``x`` gives a tensor on its device.
        """
        return like(x, self._run(x, gamma, beta)[0])

    def preactivations(self, x: object, gamma: Sequence[object], beta: Sequence[object]) -> list[np.ndarray]:
        """The normalized pre-activations ``N_j(h_j)`` of every layer ``j = 1 … 2L`` on ``x``."""
        return self._run(x, gamma, beta)[1]

    def magnitude(self, x: object, gamma: Sequence[object], beta: Sequence[object]) -> np.ndarray:
        """Evaluate ``g`` with every quantity replaced by its absolute value (a rounding-error scale).

        Each layer's rounding error is at most ``(fan_in + 4) * eps`` times this (see
        `verify.evaluation_tolerance`).
        """
        gs, bs = self._check_params(gamma, beta)
        u, single = as_points(x, self.widths[0])
        u = np.abs(u)
        for m, c, mu, std, g, b in zip(self._weights, self._biases, self._mean, self._std, gs, bs, strict=True):
            h = u @ np.abs(m).T + np.abs(c)
            u = np.abs(g) * (h + np.abs(mu)) / std + np.abs(b)
        return like(x, u[0] if single else u)

    def _run(self, x: object, gamma: Sequence[object], beta: Sequence[object]) -> tuple[np.ndarray, list[np.ndarray]]:
        gs, bs = self._check_params(gamma, beta)
        u, single = as_points(x, self.widths[0])
        pre = []
        last = len(self._weights) - 1
        for j, (m, c, mu, std, g, b) in enumerate(
            zip(self._weights, self._biases, self._mean, self._std, gs, bs, strict=True)
        ):
            h = u @ m.T + c
            n = g * (h - mu) / std + b
            pre.append(n)
            u = n if j == last else _relu(n)
        return (u[0] if single else u), pre

    def __repr__(self) -> str:
        return f"FrozenNetwork(widths={list(self.widths)}, eps={self.eps})"


def draw_weights(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    fan_in: int,
    *,
    distribution: str = "gaussian",
    density: float = 1.0,
) -> np.ndarray:
    """Random frozen weights: ``N(0, 1/fan_in)`` or ``U(-sqrt(3/fan_in), sqrt(3/fan_in))`` (same variance), then
    (``density < 1``) each kept with probability ``density`` and scaled by ``1/sqrt(density)`` (docs/design.md §4)."""
    if distribution == "gaussian":
        values = rng.standard_normal(shape) / np.sqrt(fan_in)
    else:
        bound = np.sqrt(3.0 / fan_in)
        values = rng.uniform(-bound, bound, shape)
    if density == 1:
        return values
    return np.where(rng.uniform(size=values.shape) < density, values / np.sqrt(density), 0.0)


def dense_pairs(d: Sequence[int], width: str | int | float | Sequence[int], *, paired: bool = False) -> list[Pair]:
    """The frozen pairs (`verify.core.memory.Pair`) of a dense chain: target widths ``d`` and the ``width`` of
    `FrozenNetwork.for_target` (``paired``: it counts mirrored pairs, twice the neurons, docs/design.md §3)."""
    unit = 2 if paired else 1
    return [
        Pair(
            f"block {k} (layer {2 * k - 1})",
            d[k - 1],
            unit * n,
            d[k],
            paper_width(d[k], d[k - 1]),
            minimal_width(d[k], d[k - 1]),
            unit,
        )
        for k, n in enumerate(_odd_widths(width, tuple(d)), start=1)
    ]


def _chained_weights(items: list) -> list[np.ndarray]:
    """``items`` as read-only ``(out, in)`` arrays, each fed by the one before; ValueError naming the bad one."""
    ws = [as_array(w, f"weights[{k}]", (None, None)) for k, w in enumerate(items)]
    for k, w in enumerate(ws):
        if w.shape[0] == 0 or w.shape[1] == 0:
            raise ValueError(f"weights[{k}] has shape {w.shape}; every width must be >= 1")
        if k > 0 and w.shape[1] != ws[k - 1].shape[0]:
            raise ValueError(
                f"weights[{k}] has shape {w.shape} but weights[{k - 1}] has {ws[k - 1].shape[0]} outputs; "
                f"expected shape ({w.shape[0]}, {ws[k - 1].shape[0]}) (out, in)"
            )
    return ws


def _check_widths(widths: Sequence[int], name: str) -> list[int]:
    items = as_sequence(widths, name)
    if len(items) < 2:
        raise ValueError(f"{name} must list d_0 … d_L with at least two entries, got {items!r}")
    for w in items:
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1:
            raise ValueError(f"{name} must be integers >= 1, got {items!r}")
    return [int(w) for w in items]


def _odd_widths(width: str | int | float | Sequence[int], d: tuple[int, ...]) -> list[int]:
    """Resolve the ``width`` argument of `FrozenNetwork.for_target` to one odd width per block."""
    return layer_widths(width, list(zip(d[1:], d[:-1], strict=True)))
