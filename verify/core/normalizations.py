"""The eval-mode BatchNorm after each frozen layer (docs/design.md §1): its statistics and its two readings.

A BatchNorm in eval mode computes ``N(h) = γ (h − μ) / √(v + ε) + β`` per neuron (per channel of a
convolution): an affine map ``h ↦ s h + t`` with ``s = γ / √(v + ε)`` and ``t = β − s μ``. `Normalizations`
converts between the two for `verify.FrozenNetwork` and `verify.ConvFrozenNetwork`; `norm_statistics` reads
their running statistics and ``eps``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verify.core.validate import as_array, as_real, as_sequence

__all__ = ["Normalizations", "norm_statistics", "per_layer"]


class Normalizations:
    """The eval-mode BatchNorm after each frozen layer, shared by `FrozenNetwork` and the convolutional
    `verify.core.conv_networks.ConvFrozenNetwork`: running statistics, ``eps``, and the conversion between
    BatchNorm ``(gamma, beta)`` and per-neuron (per-channel) affine maps ``h -> s*h + t`` (docs/design.md §1).

    A subclass sets ``_mean``, ``_var``, ``_layer_eps`` and ``_std`` (``sqrt(v + eps)``) per layer and has
    ``widths`` and ``masks``.
    """

    _mean: tuple[np.ndarray, ...]
    _var: tuple[np.ndarray, ...]
    _layer_eps: tuple[float, ...]
    _std: tuple[np.ndarray, ...]
    widths: tuple[int, ...]
    masks: tuple[np.ndarray, ...]

    @property
    def density(self) -> float:
        """Fraction of non-zero frozen weights over all layers."""
        return sum(int(np.count_nonzero(m)) for m in self.masks) / sum(m.size for m in self.masks)

    @property
    def running_mean(self) -> tuple[np.ndarray, ...]:
        """BatchNorm running means ``mu_j``."""
        return self._mean

    @property
    def running_var(self) -> tuple[np.ndarray, ...]:
        """BatchNorm running variances ``v_j``."""
        return self._var

    @property
    def eps(self) -> float | tuple[float, ...]:
        """BatchNorm ``eps``: one float when every layer shares it, else one per layer (as given)."""
        first = self._layer_eps[0]
        return first if all(e == first for e in self._layer_eps) else self._layer_eps

    @property
    def layer_eps(self) -> tuple[float, ...]:
        """BatchNorm ``eps`` of each of the ``2L`` layers (equal when one value was given)."""
        return self._layer_eps

    @property
    def norm_std(self) -> tuple[np.ndarray, ...]:
        """``sqrt(v_j + eps_j)`` per layer: what BatchNorm divides by, so ``s = gamma / norm_std``."""
        return self._std

    def norm_params(
        self, scales: Sequence[np.ndarray], shifts: Sequence[np.ndarray]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Convert per-neuron affine maps ``h -> s*h + t`` to BatchNorm ``(gamma, beta)`` (docs/design.md §1).

        ``gamma = s * sqrt(v + eps)`` and ``beta = t + s * mu``; the inverse of `affine_maps`.
        """
        gamma = [np.asarray(s) * std for s, std in zip(scales, self._std, strict=True)]
        beta = [np.asarray(t) + np.asarray(s) * mu for s, t, mu in zip(scales, shifts, self._mean, strict=True)]
        return gamma, beta

    def affine_maps(self, gamma: Sequence[object], beta: Sequence[object]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-neuron ``(s, t)`` of each normalization: ``s = gamma / sqrt(v + eps)``, ``t = beta - s * mu``."""
        gs, bs = self._check_params(gamma, beta)
        scales = [g / std for g, std in zip(gs, self._std, strict=True)]
        shifts = [b - s * mu for b, s, mu in zip(bs, scales, self._mean, strict=True)]
        return scales, shifts

    def _check_params(self, gamma: Sequence[object], beta: Sequence[object]) -> tuple[list, list]:
        widths = self.widths[1:]
        gs = as_sequence(gamma, "gamma", len(widths))
        bs = as_sequence(beta, "beta", len(widths))
        gs = [as_array(g, f"gamma[{j}]", (n,)) for j, (g, n) in enumerate(zip(gs, widths, strict=True))]
        bs = [as_array(b, f"beta[{j}]", (n,)) for j, (b, n) in enumerate(zip(bs, widths, strict=True))]
        return gs, bs


def norm_statistics(
    counts: Sequence[int],
    running_mean: Sequence[object] | None,
    running_var: Sequence[object] | None,
    eps: object,
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], tuple[float, ...], tuple[np.ndarray, ...]]:
    """The BatchNorm statistics of layers with ``counts`` channels, read-only: ``(mean, var, eps, std)`` per layer
    (defaults 0 and 1; ``eps`` one value or one per layer; ``std = sqrt(v + eps)``, which must be positive)."""
    if (isinstance(eps, Sequence) and not isinstance(eps, (str, bytes))) or (
        isinstance(eps, np.ndarray) and eps.ndim == 1
    ):
        layer_eps = tuple(
            as_real(e, f"eps[{j}]", minimum=0.0) for j, e in enumerate(as_sequence(list(eps), "eps", len(counts)))
        )
    else:
        layer_eps = (as_real(eps, "eps", minimum=0.0),) * len(counts)
    mean = per_layer(running_mean, "running_mean", counts, 0.0)
    var = per_layer(running_var, "running_var", counts, 1.0)
    for j, (v, e) in enumerate(zip(var, layer_eps, strict=True)):
        if np.any(v + e <= 0):
            raise ValueError(
                f"running_var[{j}] + eps must be positive for every neuron, got minimum "
                f"{float(np.min(v + e))!r}; use a positive running variance or eps > 0"
            )
    return mean, var, layer_eps, tuple(np.sqrt(v + e) for v, e in zip(var, layer_eps, strict=True))


def per_layer(
    values: Sequence[object] | None, name: str, counts: Sequence[int], default: float
) -> tuple[np.ndarray, ...]:
    """One read-only array of ``counts[j]`` entries per layer (``default`` where ``values`` or its entry is None)."""
    entries = [None] * len(counts) if values is None else as_sequence(values, name, len(counts))
    out = []
    for j, (n, v) in enumerate(zip(counts, entries, strict=True)):
        array = np.full(n, default) if v is None else as_array(v, f"{name}[{j}]", (n,))
        array.setflags(write=False)
        out.append(array)
    return tuple(out)
