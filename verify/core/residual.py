"""Frozen residual networks and their stream bookkeeping (docs/design.md §8, Case 2 of the theorem).

A `ResidualFrozenNetwork` carries a *stream* ``x`` of width ``D = max_k d_k``. The input enters as
``x = [z_0; 0]``; for each target layer ``k`` a *stage* of ``m`` residual branches follows, and a ReLU
on the stream after every stage but the last; the output is the stream's first ``d_L`` rows::

    x ← x + N'_j(A_j σ(N_j(B_j x + c_j)) + c'_j)      branch j = 1 … m of a stage
    x ← σ(x)                                            between stages

Each branch is a two-layer `FrozenNetwork` ``D → n_j → D`` (its odd layer ``B_j``, its even layer
``A_j``, each followed by an eval-mode BatchNorm), so ``depth = 2 m L`` normalized layers.

Stage ``k`` maps ``[z_{k-1}; 0]`` to ``[W_k z_{k-1} + b_k; 0]`` in place. While it does, the stream is
an explicit affine image of the stage input, ``x = T z + c`` (`StreamMap`), starting at
``T = [I; 0], c = 0``. Branch ``j`` owns the rows ``R_j`` of `stage_rows` (new rows first, then rows
overwritten, rows cleared last) and changes only them: the wanted change is
``(W_R − T_R) z + (b_R − c_R)`` (``W``, ``b`` padded with zero rows for cleared rows), so the branch is
a Case-1 block on ``z`` with the scale equation ``A_R diag(γ) (B_j T) = W_R − T_R`` and the odd
layer's input range that of ``B_j T z + B_j c + c_j`` over the box of ``z``. Afterwards
``T_R ← W_R, c_R ← b_R``. Once a cleared row has lost its ``z_i``, ``T`` has rank ``r < d_{k-1}`` and
later branches solve in the coordinates of its row space (`StreamMap.factor`): ``T = P Q`` with
``Q`` orthonormal rows, equation ``A_R diag(γ) (B_j P) = (W_R − T_R) Qᵀ``.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from verify.core.arithmetic import FLOAT, Arithmetic
from verify.core.blocks import Block
from verify.core.domains import AffineRange, Domain
from verify.core.errors import InfeasibleError
from verify.core.interop import like
from verify.core.memory import Pair, check_build
from verify.core.networks import FrozenNetwork, TargetNetwork, minimal_width, paper_width
from verify.core.tolerances import EPS
from verify.core.validate import as_count, as_points, as_seed, as_sequence

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


def stage_rows(d_in: int, d_out: int, branches: int, *, stage: int = 1) -> list[np.ndarray]:
    """The stream rows each of ``branches`` branches of a stage ``d_in → d_out`` writes, in order.

    The stage handles ``max(d_in, d_out)`` rows: new rows ``d_in ≤ i < d_out`` first (they hold 0, so
    writing them keeps ``T`` of full column rank), then the rows ``i < min(d_in, d_out)`` it overwrites,
    then the rows ``d_out ≤ i < d_in`` it clears. They are split into ``branches`` contiguous runs whose
    sizes differ by at most one. ``ValueError`` when ``branches`` exceeds the number of rows.
    """
    rows = max(d_in, d_out)
    if branches > rows:
        raise ValueError(
            f"stage {stage} ({d_in} -> {d_out}) has {rows} stream rows to write, so at most {rows} branches can each "
            f"own one; got branches={branches}. Use branches <= {rows} (the smallest stage bounds it)"
        )
    order = np.concatenate([np.arange(d_in, d_out), np.arange(min(d_in, d_out)), np.arange(d_out, d_in)])
    return [np.asarray(part, dtype=int) for part in np.array_split(order, branches)]


def branch_needs(d_in: int, d_out: int, branches: int, mode: str, *, stage: int = 1) -> list[int]:
    """The odd width each branch of a stage needs in ``mode`` (docs/design.md §8).

    A branch owning ``|R|`` rows solves ``|R|·r`` equations, where ``r`` is the rank of the stream map
    ``T`` when it runs: ``d_in`` until rows start being cleared, then ``d_in`` minus the rows cleared by
    earlier branches. ``"paper"`` needs ``|R|·r``, ``"minimal"`` ``|R|(r − 1) + 1`` (`paper_width`,
    `minimal_width`).
    """
    rule = {"paper": paper_width, "minimal": minimal_width}[mode]
    needs, cleared = [], 0
    for rows in stage_rows(d_in, d_out, branches, stage=stage):
        needs.append(rule(len(rows), d_in - cleared))
        cleared += int(np.count_nonzero(rows >= d_out))
    return needs


@dataclass(frozen=True)
class StreamMap:
    """The stream during a stage as an affine image of the stage input: ``x = T z + c``.

    Attributes
    ----------
    t : ndarray (D, d_in)
        ``T``.
    c : ndarray (D,)
        ``c``.
    """

    t: np.ndarray
    c: np.ndarray

    @classmethod
    def start(cls, stream: int, d_in: int) -> StreamMap:
        """``T = [I; 0]``, ``c = 0``: the stream ``[z; 0]`` at the start of a stage."""
        return cls(np.eye(stream, d_in), np.zeros(stream))

    def written(self, rows: np.ndarray, w: np.ndarray, b: np.ndarray) -> StreamMap:
        """The map after a branch set rows ``rows`` to ``w z + b``: ``T_R ← w``, ``c_R ← b``."""
        t, c = self.t.copy(), self.c.copy()
        t[rows], c[rows] = w, b
        return StreamMap(t, c)

    def factor(self, rank: int) -> tuple[np.ndarray, np.ndarray, float]:
        """``(P, Q, cond)`` with ``T = P Q``: ``P = T`` and ``Q = I`` at full column rank, else ``Q`` the top
        ``rank`` right singular vectors of ``T`` (orthonormal rows) and ``P = T Qᵀ``; ``cond`` is
        ``σ_1 / σ_rank`` of ``T`` (inf if ``T`` has fewer than ``rank`` non-zero singular values)."""
        _, sigma, vt = np.linalg.svd(self.t, full_matrices=False)
        cond = float(sigma[0] / sigma[rank - 1]) if sigma[rank - 1] > 0 else float("inf")
        if rank == self.t.shape[1]:
            return self.t, np.eye(rank), cond
        q = vt[:rank]
        return self.t @ q.T, q, cond


@dataclass(frozen=True)
class BranchBlock(Block):
    """A branch's Case-1 block (docs/design.md §8): ``A`` = rows ``R`` of ``A_j``, ``B`` = ``B_j P``, ``W`` the
    wanted change ``(W_R − T_R) Qᵀ``, ``bias`` = ``b_R − c_R``, and the odd layer's input ``B_j T z + B_j c + c_j``,
    whose range is taken over the box of the stage input ``z`` (``stream_weight`` = ``B_j T``). ``stream_change``
    is the wanted change ``W_R − T_R`` in the coordinates of ``z`` itself (the approximate construction's
    objective is weighted by the radii of ``z``, docs/design.md §11)."""

    stream_weight: np.ndarray = None  # type: ignore[assignment]
    stream_change: np.ndarray = None  # type: ignore[assignment]

    def odd_range(self, region: Domain, arithmetic: Arithmetic = FLOAT) -> AffineRange:
        """Per-neuron range of ``B_j T z + B_j c + c_j`` for ``z`` in ``region`` (an affine image of a box: exact)."""
        return self.channels.reduce_range(arithmetic.affine_range(region, self.stream_weight, self.c_odd))


@dataclass(frozen=True)
class BranchSystem:
    """Everything a branch is solved from, decided by the target alone (no solve).

    Attributes
    ----------
    stage, branch : int
        1-based stage ``k`` and branch ``j``.
    index : int
        0-based position of the branch in the network (its layers are ``2·index`` and ``2·index + 1``).
    rows : ndarray
        ``R_j``: the stream rows it writes.
    block : BranchBlock
        Its Case-1 block (``block.k == 1``: the branch is a two-layer network).
    rank : int
        Rank of ``T`` when it runs (the ``r`` of its ``|R|·r`` equations).
    stream_condition : float
        ``σ_1 / σ_r`` of ``T`` when it runs.
    network : FrozenNetwork
        The branch ``D → n_j → D``.
    basis : ndarray (D, r)
        ``P``: the block's ``B`` is ``B_j P`` (``P = T`` at full rank).
    """

    stage: int
    branch: int
    index: int
    rows: np.ndarray
    block: BranchBlock
    rank: int
    stream_condition: float
    network: FrozenNetwork
    basis: np.ndarray

    @property
    def selects(self) -> bool:
        """Whether ``B_j P`` only selects columns of ``B_j`` (``P`` a 0/1 matrix with one 1 per column, in distinct
        rows): then its entries are independent like ``B_j``'s and matching decides the branch exactly (§4)."""
        p = self.basis
        ones = p == 1
        return bool(np.all(ones | (p == 0)) and np.all(ones.sum(axis=0) == 1) and np.all(ones.sum(axis=1) <= 1))


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
    if isinstance(width, str):
        if width not in ("paper", "minimal"):
            raise ValueError(f"width must be 'paper', 'minimal', an int, a float or nested lists, got {width!r}")
        return [branch_needs(a, b, branches, width, stage=k) for k, (a, b) in enumerate(stages, start=1)]
    if isinstance(width, bool):
        raise ValueError(f"width must be 'paper', 'minimal', an int, a float or nested lists, got {width!r}")
    if isinstance(width, (int, np.integer)):
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        return [[int(width)] * branches for _ in stages]
    if isinstance(width, (float, np.floating)):
        if not np.isfinite(width) or width <= 0:
            raise ValueError(f"width as a multiple of the paper width must be positive and finite, got {width}")
        return [
            [max(1, int(np.ceil(width * n - 1e-9))) for n in branch_needs(a, b, branches, "paper", stage=k)]
            for k, (a, b) in enumerate(stages, start=1)
        ]
    rows = as_sequence(width, "width", len(stages))
    out = []
    for k, row in enumerate(rows):
        items = as_sequence(row, f"width[{k}]", branches)
        if any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 for w in items):
            raise ValueError(f"width[{k}] must hold one integer >= 1 per branch, got {items!r}")
        out.append([int(w) for w in items])
    return out


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
            _check_row_space(change, q, cond, stage=k, branch=j)
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


def _check_row_space(change: np.ndarray, q: np.ndarray, cond: float, *, stage: int, branch: int) -> None:
    """InfeasibleError unless the wanted change ``W_R − T_R`` lies in the row space of ``T`` (``change Qᵀ Q``
    reproduces it to ``max(shape) · eps · cond(T)`` of its size): else no branch can compute it from the stream."""
    if q.shape[0] == q.shape[1]:
        return
    lost = float(np.abs(change - (change @ q.T) @ q).max(initial=0.0))
    size = float(np.abs(change).max(initial=0.0))
    if lost > max(change.shape) * EPS * cond * size:
        raise InfeasibleError(
            f"stage {stage}, branch {branch}: the rows it must write depend on a direction of the stage input that "
            f"the stream no longer holds (lost {lost:.3g} of {size:.3g}); a generic target never does this",
        )
