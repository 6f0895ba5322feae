"""Frozen residual networks (docs/design.md §8, Case 2 of the theorem).

A `ResidualFrozenNetwork` carries a *stream* ``x`` of width ``D = max_k d_k``. The input enters as
``x = [z_0; 0]``; for each target layer ``k`` a *stage* of ``m`` residual branches follows, and a ReLU
on the stream after every stage but the last; the output is the stream's first ``d_L`` rows::

    x ← x + N'_j(A_j σ(N_j(B_j x + c_j)) + c'_j)      branch j = 1 … m of a stage
    x ← σ(x)                                            between stages

Each branch is a two-layer `FrozenNetwork` ``D → n_j → D`` (its odd layer ``B_j``, its even layer
``A_j``, each followed by an eval-mode BatchNorm), so ``depth = 2 m L`` normalized layers.

The stream bookkeeping (`verify.core.streams`) decides every branch's Case-1 block from the target alone:
`branch_systems` walks it.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np

from verify.core.errors import InfeasibleError
from verify.core.interop import like
from verify.core.memory import Pair, check_build
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.core.streams import BranchBlock, BranchSystem, StreamMap, branch_needs, check_row_space, stage_rows
from verify.core.tolerances import EPS
from verify.core.validate import as_count, as_points, as_seed, as_sequence
from verify.core.widths import resolve_widths, whole_widths

__all__ = [
    "BranchBlock",
    "BranchSystem",
    "ResidualFrozenNetwork",
    "StreamMap",
    "branch_needs",
    "branch_systems",
    "residual_pairs",
    "stage_rows",
]


class ResidualFrozenNetwork:
    """A frozen residual network (module notes): ``L`` stages of ``m`` branches on a stream of width ``D``.

    Parameters
    ----------
    stages : sequence of sequences of FrozenNetwork
        ``stages[k][j]`` is branch ``j`` of stage ``k``: a `FrozenNetwork` with two layers ``D → n → D``
        (odd layer ``B_j`` of shape ``(n, D)``, even layer ``A_j`` of shape ``(D, n)``, their frozen biases
        and BatchNorm statistics). Every stage has the same number of branches.
    inputs, outputs : int
        ``d_0`` (the input fills the stream's first rows) and ``d_L`` (the output is its first rows).
    """

    def __init__(self, stages: Sequence[Sequence[FrozenNetwork]], *, inputs: int, outputs: int) -> None:
        items = [as_sequence(stage, f"stages[{k}]") for k, stage in enumerate(as_sequence(stages, "stages"))]
        if not items or not items[0]:
            raise ValueError("stages must hold at least one stage of at least one branch")
        branches = len(items[0])
        stream = None
        for k, stage in enumerate(items):
            if len(stage) != branches:
                raise ValueError(
                    f"every stage needs the same number of branches: stage 1 has {branches}, "
                    f"stage {k + 1} has {len(stage)}"
                )
            for j, net in enumerate(stage):
                if not isinstance(net, FrozenNetwork) or len(net.weights) != 2:
                    raise ValueError(
                        f"stages[{k}][{j}] must be a two-layer verify.FrozenNetwork (D -> n -> D), got {net!r}"
                    )
                width = net.widths[0]
                stream = width if stream is None else stream
                if net.widths[0] != stream or net.widths[2] != stream:
                    raise ValueError(
                        f"stages[{k}][{j}] has widths {list(net.widths)}; every branch must read and write the "
                        f"stream of width D = {stream} (widths [D, n, D])"
                    )
        self._inputs = as_count(inputs, "inputs")
        self._outputs = as_count(outputs, "outputs")
        if max(self._inputs, self._outputs) > stream:
            raise ValueError(f"inputs ({inputs}) and outputs ({outputs}) must fit the stream width D = {stream}")
        self._stages = tuple(tuple(stage) for stage in items)
        self._stream = int(stream)

    @classmethod
    def for_target(
        cls,
        target: TargetNetwork,
        branches: int = 1,
        width: str | int | float | Sequence[Sequence[int]] = "paper",
        *,
        seed: int = 1,
        distribution: str = "gaussian",
        biases: bool = False,
        density: float = 1.0,
    ) -> ResidualFrozenNetwork:
        """A random frozen residual network shaped for ``target``: stream width ``max_k d_k``, ``L`` stages of
        ``branches`` branches.

        Parameters
        ----------
        target : TargetNetwork
            Fixes ``L``, ``d_0``, ``d_L`` and the stream width ``D = max(d_0, …, d_L)``.
        branches : int
            ``m >= 1`` branches per stage, at most the rows of the smallest stage (`stage_rows`).
        width : "paper", "minimal", int, float or nested sequence of int
            Odd widths ``n``: ``"paper"``/``"minimal"`` give each branch what it needs in that mode
            (`branch_needs`, about ``d²/m`` for a square target), an int is used for every branch, a float
            ``f > 0`` gives ``ceil(f · paper need)``, and ``width[k][j]`` sets branch ``j`` of stage ``k + 1``.
        seed : int
            The same seed gives the same network; each branch draws from its own stream.
        distribution, biases, density
            As in `FrozenNetwork.for_target` (each branch is drawn by it, with ``fan_in = D`` for ``B_j``).
        """
        if not isinstance(target, TargetNetwork):
            raise ValueError(f"target must be a verify.TargetNetwork, got {type(target).__name__}")
        if isinstance(branches, bool) or not isinstance(branches, (int, np.integer)) or branches < 1:
            raise ValueError(f"branches must be an integer >= 1, got {branches!r}")
        d = target.widths
        stream = max(d)
        odd = _odd_widths(width, d, int(branches))
        check_build("ResidualFrozenNetwork.for_target", residual_pairs(d, width, int(branches)))
        root = np.random.default_rng([3, as_seed(seed)])
        seeds = root.integers(0, 2**62, size=(len(odd), int(branches)))
        shape = TargetNetwork([np.zeros((stream, stream))])
        stages = [
            [
                FrozenNetwork.for_target(
                    shape,
                    width=[n],
                    seed=int(seeds[k, j]),
                    distribution=distribution,
                    biases=biases,
                    density=density,
                )
                for j, n in enumerate(widths)
            ]
            for k, widths in enumerate(odd)
        ]
        return cls(stages, inputs=d[0], outputs=d[-1])

    @property
    def stages(self) -> tuple[tuple[FrozenNetwork, ...], ...]:
        """``stages[k][j]``: branch ``j`` of stage ``k + 1``, a two-layer `FrozenNetwork` ``D → n → D``."""
        return self._stages

    @property
    def branches(self) -> int:
        """``m``: branches per stage."""
        return len(self._stages[0])

    @property
    def stream_width(self) -> int:
        """``D``: the width of the residual stream."""
        return self._stream

    @property
    def inputs(self) -> int:
        """``d_0``."""
        return self._inputs

    @property
    def outputs(self) -> int:
        """``d_L``."""
        return self._outputs

    @property
    def stage_count(self) -> int:
        """``L``: the number of stages (target layers it can carry)."""
        return len(self._stages)

    @property
    def depth(self) -> int:
        """``2 m L``: the number of normalized layers."""
        return 2 * self.branches * self.stage_count

    @property
    def odd_widths(self) -> tuple[tuple[int, ...], ...]:
        """``odd_widths[k][j]``: the odd width ``n`` of branch ``j`` of stage ``k + 1``."""
        return tuple(tuple(net.widths[1] for net in stage) for stage in self._stages)

    @property
    def layers(self) -> tuple[FrozenNetwork, ...]:
        """Every branch in network order (stage by stage): layer ``2i`` and ``2i + 1`` belong to branch ``i``."""
        return tuple(net for stage in self._stages for net in stage)

    @property
    def widths(self) -> tuple[int, ...]:
        """The output width of every normalized layer, in order (``n_j`` and ``D`` per branch)."""
        return tuple(w for net in self.layers for w in net.widths[1:])

    @property
    def density(self) -> float:
        """Fraction of non-zero frozen weights over all layers."""
        nets = self.layers
        return sum(int(np.count_nonzero(m)) for n in nets for m in n.weights) / sum(
            m.size for n in nets for m in n.weights
        )

    def _split(self, values: Sequence[object], name: str) -> list[list[object]]:
        items = as_sequence(values, name, self.depth)
        return [items[2 * i : 2 * i + 2] for i in range(len(self.layers))]

    def _each_branch(
        self, convert: str, first: Sequence[object], second: Sequence[object], names: tuple[str, str]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``FrozenNetwork.<convert>`` of every branch on its two layers' entries of ``first`` and ``second``,
        concatenated back into two lists of ``depth`` arrays."""
        out: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        pairs = zip(self.layers, self._split(first, names[0]), self._split(second, names[1]), strict=True)
        for net, a, b in pairs:
            u, v = getattr(net, convert)(a, b)
            out[0].extend(u)
            out[1].extend(v)
        return out

    def norm_params(
        self, scales: Sequence[np.ndarray], shifts: Sequence[np.ndarray]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-neuron affine maps ``h -> s*h + t`` of every layer to BatchNorm ``(gamma, beta)``
        (`FrozenNetwork.norm_params` of each branch)."""
        return self._each_branch("norm_params", scales, shifts, ("scales", "shifts"))

    def affine_maps(self, gamma: Sequence[object], beta: Sequence[object]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """BatchNorm ``(gamma, beta)`` of every layer to per-neuron ``(s, t)`` (`FrozenNetwork.affine_maps`)."""
        return self._each_branch("affine_maps", gamma, beta, ("gamma", "beta"))

    def forward(self, x: object, gamma: Sequence[object], beta: Sequence[object]) -> np.ndarray:
        """Evaluate the network on ``x`` of shape ``(batch, d_0)`` (or ``(d_0,)``) with BatchNorm ``(gamma, beta)``
        (``depth`` arrays each, in layer order); returns ``(batch, d_L)``. A torch ``x`` gives a tensor."""
        return like(x, self._run(x, gamma, beta, magnitude=False))

    def magnitude(self, x: object, gamma: Sequence[object], beta: Sequence[object]) -> np.ndarray:
        """The network evaluated with every quantity replaced by its absolute value (each branch by
        `FrozenNetwork.magnitude`, the stream adding absolute values): the scale of its rounding errors."""
        return like(x, self._run(x, gamma, beta, magnitude=True))

    def _run(self, x: object, gamma: Sequence[object], beta: Sequence[object], *, magnitude: bool) -> np.ndarray:
        gs, bs = self._split(gamma, "gamma"), self._split(beta, "beta")
        z, single = as_points(x, self._inputs)
        stream = np.zeros((z.shape[0], self._stream))
        stream[:, : self._inputs] = np.abs(z) if magnitude else z
        i = 0
        for k, stage in enumerate(self._stages):
            for net in stage:
                if magnitude:
                    stream = stream + net.magnitude(stream, gs[i], bs[i])
                else:
                    stream = stream + net.forward(stream, gs[i], bs[i])
                i += 1
            if k < len(self._stages) - 1:
                stream = np.maximum(stream, 0.0)
        out = stream[:, : self._outputs]
        return out[0] if single else out

    def __repr__(self) -> str:
        return (
            f"ResidualFrozenNetwork(inputs={self._inputs}, outputs={self._outputs}, stream={self._stream}, "
            f"stages={self.stage_count}, branches={self.branches}, odd_widths={[list(w) for w in self.odd_widths]})"
        )


def _odd_widths(width: Any, d: tuple[int, ...], branches: int) -> list[list[int]]:
    """Resolve the ``width`` argument of `ResidualFrozenNetwork.for_target` to ``[stage][branch]`` odd widths."""
    stages = list(itertools.pairwise(d))
    for k, (d_in, d_out) in enumerate(stages, start=1):
        stage_rows(d_in, d_out, branches, stage=k)  # refuses too many branches, naming the stage

    def need(mode: str) -> list[int]:
        return [n for k, (a, b) in enumerate(stages, start=1) for n in branch_needs(a, b, branches, mode, stage=k)]

    found = resolve_widths(width, need, "nested lists")
    if found is not None:
        return [found[k * branches : (k + 1) * branches] for k in range(len(stages))]
    rows = as_sequence(width, "width", len(stages))
    return [whole_widths(row, f"width[{k}]", branches, "branch") for k, row in enumerate(rows)]


def residual_pairs(d: Sequence[int], width: Any, branches: int) -> list[Pair]:
    """The frozen pairs (`verify.core.memory.Pair`) of a residual network for target widths ``d`` and the
    ``width`` of `ResidualFrozenNetwork.for_target`: every branch reads and writes the stream of width
    ``max d``; its paper and minimal widths are `branch_needs`."""
    stream = max(d)
    odd = _odd_widths(width, tuple(d), branches)
    pairs = []
    for k, ((d_in, d_out), widths) in enumerate(zip(itertools.pairwise(d), odd, strict=True), start=1):
        paper = branch_needs(d_in, d_out, branches, "paper", stage=k)
        minimal = branch_needs(d_in, d_out, branches, "minimal", stage=k)
        for j, n in enumerate(widths):
            pairs.append(Pair(f"stage {k} branch {j + 1}", stream, n, stream, paper[j], minimal[j]))
    return pairs


def check_residual_architecture(target: object, frozen: object) -> None:
    """ValueError unless ``frozen`` (a `ResidualFrozenNetwork`) has the shape to carry ``target``."""
    if not isinstance(target, TargetNetwork):
        raise ValueError(f"target must be a verify.TargetNetwork, got {type(target).__name__}")
    if not isinstance(frozen, ResidualFrozenNetwork):
        raise ValueError(f"frozen must be a verify.ResidualFrozenNetwork, got {type(frozen).__name__}")
    d = target.widths
    if frozen.stage_count != target.depth:
        raise ValueError(f"frozen has {frozen.stage_count} stages but the target has depth L = {target.depth}")
    if (frozen.inputs, frozen.outputs) != (d[0], d[-1]):
        raise ValueError(
            f"frozen reads {frozen.inputs} inputs and writes {frozen.outputs} outputs; the target needs "
            f"d_0 = {d[0]} and d_L = {d[-1]}"
        )
    if frozen.stream_width < max(d):
        raise ValueError(f"the stream width D = {frozen.stream_width} is below the target's widest layer {max(d)}")
    for k in range(1, target.depth + 1):
        stage_rows(d[k - 1], d[k], frozen.branches, stage=k)


def branch_systems(
    target: TargetNetwork, frozen: ResidualFrozenNetwork
) -> Generator[BranchSystem, tuple[np.ndarray, np.ndarray] | None, None]:
    """Every branch's Case-1 block, in network order, from the stream bookkeeping alone (module notes).

    Call `check_residual_architecture` first. The systems depend on the target and the frozen weights
    only: the stream map after a branch is ``T_R ← W_R, c_R ← b_R`` whatever the solve gives. An
    approximate construction (docs/design.md §11) ``send``s, for a branch that cannot write its rows
    exactly, the affine map ``(T_R, c_R)`` it does write instead; the next systems are then solved
    against the stream as it really is, and a row it was to clear no longer counts as cleared (it is
    not 0, so ``T`` keeps that rank). Sending ``None`` (or iterating) is the exact bookkeeping.
    """
    d = target.widths
    stream = frozen.stream_width
    index = 0
    for k, stage in enumerate(frozen.stages, start=1):
        d_in, d_out = d[k - 1], d[k]
        w_pad = np.zeros((stream, d_in))
        w_pad[:d_out] = target.weights[k - 1]
        b_pad = np.zeros(stream)
        b_pad[:d_out] = target.biases[k - 1]
        state = StreamMap.start(stream, d_in)
        cleared = 0
        for j, (net, rows) in enumerate(zip(stage, stage_rows(d_in, d_out, len(stage), stage=k), strict=True), 1):
            rank = d_in - cleared
            p, q, cond = state.factor(rank)
            if not np.isfinite(cond) or cond * EPS * max(state.t.shape) >= 1:
                error = InfeasibleError(
                    f"stage {k}, branch {j}: the stream map T (rows written so far) has lost rank: it no longer "
                    f"determines the stage input z (condition {cond:.3g}), so no branch can compute its rows. The "
                    f"target is not generic here (a leading block of W_{k} is singular); with fewer branches a "
                    f"stage overwrites fewer rows before it reads them (branches=1 never does)",
                    block=index + 1,
                )
                error.stage, error.branch = k, j
                raise error
            b_j, a_j = net.weights
            change = w_pad[rows] - state.t[rows]
            check_row_space(change, q, cond, stage=k, branch=j)
            block = BranchBlock(
                k=1,
                a=a_j[rows],
                b=b_j @ p,
                c_odd=b_j @ state.c + net.biases[0],
                c_even=net.biases[1][rows],
                w=change @ q.T,
                bias=b_pad[rows] - state.c[rows],
                channels=net.channels[0],
                stream_weight=b_j @ state.t,
                stream_change=change,
            )
            written = yield BranchSystem(k, j, index, rows, block, rank, cond, net, p)
            if written is None:
                state = state.written(rows, w_pad[rows], b_pad[rows])
                cleared += int(np.count_nonzero(rows >= d_out))
            else:
                state = state.written(rows, *written)
            index += 1
