"""The stream bookkeeping of a frozen residual network (docs/design.md §8, Case 2 of the theorem).

A `verify.core.residual.ResidualFrozenNetwork` carries a stream of width ``D``; stage ``k`` has ``m``
residual branches, each a two-layer network ``D → n_j → D`` added to the stream.

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

from dataclasses import dataclass

import numpy as np

from verify.core.arithmetic import FLOAT, Arithmetic
from verify.core.blocks import Block
from verify.core.domains import AffineRange, Domain
from verify.core.errors import InfeasibleError
from verify.core.networks import FrozenNetwork
from verify.core.tolerances import EPS
from verify.core.widths import minimal_width, paper_width

__all__ = ["BranchBlock", "BranchSystem", "StreamMap", "branch_needs", "check_row_space", "stage_rows"]


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


def check_row_space(change: np.ndarray, q: np.ndarray, cond: float, *, stage: int, branch: int) -> None:
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
