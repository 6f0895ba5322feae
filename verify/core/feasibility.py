"""Exact feasibility from the sparsity pattern alone (docs/design.md §4).

For frozen weights with a continuous density on a fixed pattern of non-zeros, the rank of a
block's Khatri–Rao matrix ``K`` (column ``i`` = ``vec(a_i b_iᵀ)``) is, with probability 1, the size
of a maximum matching in the bipartite graph

    target entries (a, b)  <->  odd-layer neurons i,   edge iff A[a, i] != 0 and B[i, b] != 0.

(Each permutation of a matched square block gives a distinct monomial ``Π A[a_i, i] B[i, b_i]``,
since the monomial names every neuron's entry, so the determinant is a non-zero polynomial; and
rank never exceeds the term rank.) Hopcroft–Karp (`scipy.sparse.csgraph.maximum_bipartite_matching`)
decides it on the sparse incidence matrix; the dense ``K`` is never formed.

* ``"paper"``: feasible iff the matching covers all ``d_out·d_in`` entries. A smaller matching
  proves infeasibility for *every* value of the frozen weights (rank <= term rank).
* ``"minimal"``: the unknowns are the row scales ``ρ_a`` (one per non-zero row of ``W``, joined to
  the entries ``(a, b)`` with ``W[a, b] != 0``) and the neurons. A generic solution with every
  ``ρ_a != 0`` exists iff the generic null space is non-trivial and no ``ρ_a`` lies in every
  maximum matching (then ``ρ_a`` is not forced to zero; a generic combination is non-zero on all
  of them). This is exact for generic ``W`` with its zero pattern; for special ``W`` the numeric
  solve in `reconstruct` decides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import scipy.sparse
from scipy.sparse.csgraph import maximum_bipartite_matching

from verify.core.blocks import blocks, check_architecture
from verify.core.conv_blocks import check_conv_architecture, conv_blocks
from verify.core.conv_networks import is_convolutional
from verify.core.networks import FrozenNetwork, TargetNetwork
from verify.core.residual import BranchSystem, ResidualFrozenNetwork, branch_systems, check_residual_architecture
from verify.core.scale_equation import ScaleEquation, incidence, khatri_rao
from verify.core.tolerances import VANISHING, numerical_rank

__all__ = [
    "BlockFeasibility",
    "FeasibilityReport",
    "block_feasibility",
    "equation_feasibility",
    "feasibility",
    "incidence",
]


@dataclass(frozen=True)
class BlockFeasibility:
    """The generic decision for one block.

    Attributes
    ----------
    block : int
        ``k``, 1-based.
    mode : str
        ``"paper"`` or ``"minimal"``.
    width : int
        Odd-layer width ``n``.
    rank : int
        Generic rank of the block's system: the maximum matching size.
    needed : int
        ``d_out·d_in`` (paper); for minimal, ``r + n - 1`` (one null direction).
    ok : bool
        Whether a generic frozen network with this pattern can carry the block.
    unreachable : int
        Target entries ``(a, b)`` that no neuron reaches (no ``i`` with ``A[a,i] B[i,b] != 0``).
    forced_rows : tuple of int
        Minimal mode: target rows whose scale is zero on every generic solution.
    """

    block: int
    mode: str
    width: int
    rank: int
    needed: int
    ok: bool
    unreachable: int
    forced_rows: tuple[int, ...] = ()


@dataclass(frozen=True)
class FeasibilityReport:
    """Per-block generic feasibility of a (target, frozen) pair; ``ok`` iff every block is."""

    mode: str
    blocks: tuple[BlockFeasibility, ...]

    @property
    def ok(self) -> bool:
        """Every block is feasible."""
        return all(b.ok for b in self.blocks)

    def to_dict(self) -> dict:
        """A JSON-ready dictionary."""
        return {"mode": self.mode, "ok": self.ok, "blocks": [asdict(b) for b in self.blocks]}


def _matching_size(graph: scipy.sparse.csr_array) -> tuple[int, np.ndarray]:
    """Size of a maximum matching and, for each row of ``graph``, its matched column (-1: exposed)."""
    if graph.nnz == 0:
        return 0, np.full(graph.shape[0], -1)
    match = maximum_bipartite_matching(graph, perm_type="column")
    return int(np.count_nonzero(match >= 0)), match


def _avoidable_rows(graph: scipy.sparse.csr_array, row_match: np.ndarray) -> np.ndarray:
    """Rows that some maximum matching leaves exposed: reached from exposed rows by even alternating paths."""
    column_match = np.full(graph.shape[1], -1)
    matched = np.flatnonzero(row_match >= 0)
    column_match[row_match[matched]] = matched
    reached = row_match < 0
    frontier = np.flatnonzero(reached)
    while frontier.size:
        columns = np.concatenate([graph.indices[graph.indptr[u] : graph.indptr[u + 1]] for u in frontier])
        following = np.unique(column_match[columns])
        following = following[following >= 0]
        following = following[~reached[following]]
        reached[following] = True
        frontier = following
    return reached


def block_feasibility(a: np.ndarray, b: np.ndarray, w: np.ndarray, mode: str, *, block: int) -> BlockFeasibility:
    """Decide one block from the zero patterns of ``A`` (d_out, n), ``B`` (n, d_in) and ``W`` (d_out, d_in)."""
    return equation_feasibility(ScaleEquation(a, b, w), mode, block=block)


def equation_feasibility(equation: ScaleEquation, mode: str, *, block: int) -> BlockFeasibility:
    """Decide one block's `ScaleEquation` from the zero pattern of its system alone (module notes)."""
    n, needed = equation.n, equation.needed
    if mode == "paper":
        if equation.full_pattern:  # the graph is complete bipartite
            rank = min(n, needed)
            return BlockFeasibility(block, mode, n, rank, needed, rank == needed, 0)
        graph = equation.incidence()
        rank = _matching_size(graph)[0]
        unreachable = int(np.count_nonzero(~_reached(graph)))
        return BlockFeasibility(block, mode, n, rank, needed, rank == needed, unreachable)

    w = equation.w
    rows = np.flatnonzero(np.any(w != 0, axis=1))
    r = rows.size
    if r == 0:
        return BlockFeasibility(block, mode, n, 0, 0, True, 0)
    neurons = equation.rows(rows).incidence()
    unreachable = int(np.count_nonzero(~_reached(neurons) & (w[rows] != 0).reshape(-1)))
    d_in = equation.d_in
    row_of, col_of = np.nonzero(w[rows] != 0)
    scales = scipy.sparse.csr_array(
        (np.ones(row_of.size, dtype=np.int8), (row_of, row_of * d_in + col_of)), shape=(r, r * d_in)
    )
    graph = scipy.sparse.vstack([scales, neurons], format="csr")  # rows: unknowns (ρ_a, then neurons)
    rank, row_match = _matching_size(graph)
    avoidable = _avoidable_rows(graph, row_match)
    forced = tuple(int(rows[i]) for i in np.flatnonzero(~avoidable[:r]))
    needed = r + n - 1
    ok = rank <= needed and not forced
    return BlockFeasibility(block, mode, n, rank, needed, ok, unreachable, forced)


def _reached(graph: scipy.sparse.csr_array) -> np.ndarray:
    """Which columns (target entries) of an incidence some row (neuron) reaches."""
    return np.bincount(graph.indices, minlength=graph.shape[1]) > 0


def feasibility(
    target: TargetNetwork, frozen: FrozenNetwork | ResidualFrozenNetwork, mode: str = "paper"
) -> FeasibilityReport:
    """Decide from widths and zero patterns alone, with no solve, whether ``frozen`` can carry ``target``.

    Parameters
    ----------
    target : TargetNetwork or ConvTargetNetwork
    frozen : FrozenNetwork or ConvFrozenNetwork
        Dense or sparse (exact zeros); the decision is for generic values on its zero pattern (a
        convolution's on its flattened kernels, docs/design.md §9).
    mode : "paper" or "minimal"

    Returns
    -------
    FeasibilityReport
        ``ok`` and one `BlockFeasibility` per block (matching size, needed rank, unreachable entries).

    Notes
    -----
    For ``"paper"`` a block is feasible iff a maximum matching between target entries and odd
    neurons covers every entry (docs/design.md §4); for ``"minimal"`` see the module notes. `reconstruct`
    succeeds on a generic network exactly when this says ``ok``.

    For a `ResidualFrozenNetwork` (docs/design.md §8) every branch is decided on its own system
    ``A_R diag(γ) (B_j T)``: one `BlockFeasibility` per branch, ``block`` its 1-based position in the network
    (`_branch_feasibility`).
    """
    if mode not in ("paper", "minimal"):
        raise ValueError(f"mode must be 'paper' or 'minimal', got {mode!r}")
    if isinstance(frozen, ResidualFrozenNetwork):
        check_residual_architecture(target, frozen)
        return FeasibilityReport(
            mode,
            tuple(_branch_feasibility(system, mode) for system in branch_systems(target, frozen)),
        )
    convolutional = is_convolutional(target) or is_convolutional(frozen)  # flattened kernels, docs/design.md §9
    (check_conv_architecture if convolutional else check_architecture)(target, frozen)
    pairs = conv_blocks(target, frozen) if convolutional else blocks(target, frozen)
    return FeasibilityReport(mode, tuple(equation_feasibility(blk.equation, mode, block=blk.k) for blk in pairs))


def _branch_feasibility(system: BranchSystem, mode: str) -> BlockFeasibility:
    """One branch of a residual network (docs/design.md §8): matching on its system ``A_R diag(γ) (B_j P)``.

    The matching size bounds the rank for every value of the weights (rank <= term rank), so a matching
    that falls short proves the branch infeasible. It equals the generic rank when ``B_j P`` only selects
    columns of ``B_j`` (every branch before any row of the stage is overwritten). Otherwise the entries of
    ``B_j P`` are not independent, and an "ok" is confirmed on the system with independent random values
    on the zero patterns of ``A_R`` and ``B_j`` (generic, with probability 1: a non-zero polynomial vanishes
    on a null set): paper mode, its rank; minimal mode, its homogeneous matrix ``[W-part | −K]`` (columns
    scaled to unit norm) must have a null space on which no row scale ``ρ_a`` of a non-zero row vanishes
    (below `verify.core.tolerances.VANISHING`), as the minimal solver needs.
    """
    equation = system.block.equation
    decision = equation_feasibility(equation, mode, block=system.index + 1)
    if not decision.ok or system.selects:
        return decision
    rng = np.random.default_rng(0)
    a = np.where(equation.a != 0, rng.standard_normal(equation.a.shape), 0.0)
    b_j = system.network.weights[0]
    k = khatri_rao(a, np.where(b_j != 0, rng.standard_normal(b_j.shape), 0.0) @ system.basis)
    if mode == "paper":
        rank = numerical_rank(np.linalg.svd(k, compute_uv=False), k.shape)
        return replace(decision, rank=rank, ok=rank == decision.needed)
    w = equation.w
    rows = np.flatnonzero(np.any(w != 0, axis=1))
    d_in = equation.d_in
    weight_part = np.zeros((k.shape[0], rows.size))
    for column, row in enumerate(rows):
        weight_part[row * d_in : (row + 1) * d_in, column] = w[row]
    system_matrix = np.hstack([weight_part, -k])
    norms = np.linalg.norm(system_matrix, axis=0)
    system_matrix = system_matrix / np.where(norms == 0, 1.0, norms)
    _, sigma, vt = np.linalg.svd(system_matrix)
    rank = numerical_rank(sigma, system_matrix.shape)
    null = vt[rank:]
    forced = tuple(int(rows[i]) for i in range(rows.size) if np.linalg.norm(null[:, i]) <= VANISHING)
    return replace(decision, rank=rank, ok=null.shape[0] > 0 and not forced, forced_rows=forced)
