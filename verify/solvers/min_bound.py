"""Among the solutions of ``K γ = vec(W)``, the one whose certified error bound is smallest (docs/design.md §5).

Wider than the paper width (``n > d_out·d_in``) the scale equation has a null space, and every ``γ`` of it
reproduces the block exactly in exact arithmetic; they differ in what they cost in floating point. The
bound of `verify.core.error_bound` grows with the odd layer's magnitudes: measured on the README's MLP,
its largest terms are the even layer's rounding ``γ_{n+10} |s'| (|A| |û| + …)`` and the odd layer's
rounding carried through ``|s'| |A|``, both proportional to ``|A| m`` with ``m`` the odd layer's output
magnitude per neuron,

    m_i = |γ_i| (size_i + 2|μ_i|) + τ_i(γ_i),    τ_i = max(|γ_i| R_i − γ_i mid_i, 0),  R_i = rad_i + SLACK·size_i

(``h_i = (B z + c)_i`` ranges over ``[mid_i − rad_i, mid_i + rad_i]`` with ``|h_i| <= size_i``, ``μ_i`` the
running mean, ``τ_i`` the bias shift of `verify.core.bias_shift`); the scale-equation residual's rounding
``|A| |γ| |B| |ẑ|`` and the even shift's ``|A| τ`` are bounded by the same ``|A| m``. The objective

    Φ(γ) = Σ_a Σ_i |A_ai| m_i = Σ_i v_i m_i(γ_i),    v_i = ‖A_{:, i}‖₁

(the sum over the block's output rows of the magnitudes every dominant term is proportional to) is
therefore a faithful proxy of the block's bound: each dominant term is a non-negative combination of the
``m_i``, and only the mix over rows (a maximum in the bound, a sum here) differs. It is convex and
piecewise linear in ``γ``:

* ``min_bound``: minimize ``Φ`` exactly subject to ``K γ = vec(W)``, a linear program solved with cvxpy
  (`verify.solvers.convex`, polished on its support as ``min_shift`` is);
* ``weighted`` (the fast proxy, ``auto``'s choice above the paper width): the minimum weighted norm
  ``min ‖D γ‖₂`` subject to ``K γ = vec(W)``, with ``D_i`` the per-unit cost
  ``v_i (size_i + 2|μ_i| + R_i + |mid_i|)``, an upper bound of ``m_i / |γ_i|`` whatever ``γ_i``'s sign.
  It is the ordinary minimum-norm solve of ``K D⁻¹ y = vec(W)``, ``γ = D⁻¹ y``: ``K D⁻¹`` is the
  Khatri–Rao matrix of ``A`` and ``D⁻¹ B`` (row ``i`` of ``B`` divided by ``D_i``), so ``lstsq`` or
  ``iterative`` (`verify.solvers.registry.choose`, by size) solves it at the cost of the unweighted
  solve. ``D`` is rounded to powers of two, so ``D⁻¹ B`` and ``γ = D⁻¹ y`` are exact and the
  residual ``K γ − vec(W)`` is the inner solver's, term for term.

At the paper width (or below) ``K γ = vec(W)`` has one solution and there is nothing to choose.

**Minimal mode.** Its null space ``diag(ρ) W = A diag(γ) B`` has more than one direction above the minimal
width, and the block computes ``s' ⊙ (A diag(γ) B)`` with ``s' = 1/ρ``: each row's terms carry ``|s'_a|``, so
the proxy is ``Φ = Σ_a |s'_a| Σ_i |A_ai| m_i(γ_i)`` (`minimal_objective`), invariant under the scale symmetry
``(ρ, γ) ~ (cρ, cγ)``. It is not convex (``1/ρ`` times ``|γ|``), but on an orthant ``σ_a ρ_a >= 1`` it is at
most ``Σ_a Σ_i |A_ai| m_i``, which is convex: that linear program in the null coordinates is solved for the sign
pattern of the scale-ratio choice (`verify.solvers.minimal`), for all-positive ``ρ`` and, on blocks of at most
`FLIP_ROWS` rows, for single sign flips of the best (`smallest_minimal_bound`), and the vector of smallest
``Φ`` among them and the scale-ratio choice is kept (one whose scale ratio exceeds the refusal limit is not a
candidate). ``Φ`` is then never above the scale-ratio choice's; the certified bound usually is lower too, but
not always (README, *Which solution*).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from verify.core.bias_shift import SLACK, bias_shift
from verify.core.domains import AffineRange
from verify.core.interop import is_tensor, to_host
from verify.core.scale_equation import ScaleEquation, ScaleSolution

__all__ = [
    "FLIP_ROWS",
    "FLOOR",
    "ITERATIVE_REWEIGHTS",
    "REWEIGHTS",
    "SPREAD",
    "bound_objective",
    "minimal_objective",
    "neuron_costs",
    "neuron_weights",
    "smallest_minimal_bound",
    "solve_weighted",
    "solve_weighted_norm",
    "unit_costs",
]

REWEIGHTS = 1
"""Reweighted passes of ``weighted`` after the first (each one more minimum-norm solve of the same size):
measured on the README's MLP at 1.5× and 2× the paper width (12 targets, float64 and float32), the
bound's median ratio to the plain minimum norm's was 0.91, 0.87, 0.86, 0.86 after 0, 1, 2, 4 passes, and
its largest ratio 1.06 with none, 0.96 with one; one pass doubles the solve's time, a second gains 0.01.
The registry runs it where the inner solve is a direct one (``lstsq``); an ``iterative`` one takes
`ITERATIVE_REWEIGHTS`."""
ITERATIVE_REWEIGHTS = 0
"""Reweighted passes when the inner minimum-norm solve is ``iterative`` (LSMR, the large pairs): measured on
LeNet-5 at 2× paper width (`benchmarks/bench.py lenet`, float64, one core), one pass took the fit from 150 s
to 314 s (the ``fc1`` pair, 48,000 equations, 127 s to 283 s) for a bound 0.90 times as large (0.0621
against 0.0691): twice the time of the largest solves to lower the bound by a tenth."""
SPREAD = 2.0**30
"""Largest ratio between two weights ``D_i`` (smaller ones are raised to ``max D / SPREAD``): a neuron whose
input or output is (nearly) zero on the region would otherwise get a weight near 0 and a scaled row of ``B``
near overflow."""
FLIP_ROWS = 8
"""Minimal mode tries the single sign flips of the best orthant only for blocks of at most this many live
rows (one program per row): measured on ``[4, 6, 6, 3]`` and ``[3, 5, 4]`` targets (20 each, halfway
between the minimal and paper widths, and at the paper width) the flips took the bound's median ratio to
the scale-ratio choice's from 0.84–0.97 to 0.80–0.93, at 3× its solve time instead of 1.7×; on
``[32, 32, 32]`` (32 rows, null dimension 16) they cost 11× (36 s against 3.1 s) for 0.75 against 0.89."""
FLOOR = 1e-3
"""``|γ_i|`` is floored at this fraction of ``max |γ|`` in the reweighting, so a neuron the last pass
switched (nearly) off keeps a finite weight and the scaled system stays well conditioned."""


def neuron_weights(equation: ScaleEquation) -> np.ndarray:
    """``v_i = ‖A_{:, i}‖₁``: how much neuron ``i``'s output magnitude enters the block's rows (module notes)."""
    return np.abs(np.asarray(to_host(equation.a), dtype=np.float64)).sum(axis=0)


def neuron_costs(image: AffineRange, mean: np.ndarray | None = None) -> np.ndarray:
    """``size_i + 2|μ_i|``: the odd layer's output magnitude per unit ``|γ_i|`` before the shift (module notes)."""
    mean = np.zeros_like(image.size) if mean is None else np.abs(np.asarray(mean, dtype=np.float64))
    return np.asarray(image.size, dtype=np.float64) + 2.0 * mean


def unit_costs(equation: ScaleEquation, image: AffineRange, mean: np.ndarray | None = None) -> np.ndarray:
    """``D_i = v_i (size_i + 2|μ_i| + R_i + |mid_i|)``, the weighted proxy's column weights (module notes): an
    upper bound of neuron ``i``'s share of `bound_objective` per unit ``|γ_i|``, whatever its sign."""
    reach = image.rad + SLACK * image.size + np.abs(image.mid)
    return neuron_weights(equation) * (neuron_costs(image, mean) + reach)


def bound_objective(
    equation: ScaleEquation, gamma: np.ndarray, image: AffineRange, mean: np.ndarray | None = None
) -> float:
    """``Φ(γ) = Σ_i v_i (|γ_i| (size_i + 2|μ_i|) + τ_i(γ_i))``: the proxy of the block's bound (module notes)."""
    gamma = np.asarray(gamma, dtype=np.float64)
    magnitude = np.abs(gamma) * neuron_costs(image, mean) + bias_shift(gamma, image)
    return float(neuron_weights(equation) @ magnitude)


def _powers_of_two(values: np.ndarray) -> np.ndarray:
    """Each value rounded to the nearest power of two, within `SPREAD` of the largest (1 where none is positive
    and finite): the weights' spread is bounded, so ``D⁻¹ B`` stays far from overflow and underflow."""
    usable = np.isfinite(values) & (values > 0)
    if not np.any(usable):
        return np.ones_like(values, dtype=np.float64)
    largest = float(np.max(values[usable]))
    # Relative to the largest (only ratios change the minimizer): in [1/SPREAD, 1] whatever the magnitude, so a
    # subnormal or huge largest cost cannot round a weight to 0 or inf.
    ratio = np.clip(np.where(usable, values, largest) / largest, 1.0 / SPREAD, 1.0)
    return np.ldexp(1.0, np.round(np.log2(ratio)).astype(int))


def solve_weighted_norm(
    equation: ScaleEquation,
    costs: np.ndarray,
    inner: Callable[[ScaleEquation], ScaleSolution],
    *,
    name: str,
) -> ScaleSolution:
    """``min ‖D γ‖₂`` subject to ``K γ = vec(W)``, ``D`` = ``costs`` rounded to powers of two (module notes).

    ``inner`` solves the column-scaled equation ``(A, D⁻¹ B, W)`` for its minimum-norm ``y`` (``lstsq`` or
    ``iterative``, named ``name``); ``γ = D⁻¹ y``. Both scalings are exact, so the residual and its terms
    are those of the inner solve. Numpy or torch equations (``B`` is scaled on its own device).
    """
    scale = _powers_of_two(np.asarray(costs, dtype=np.float64))
    divisor: Any = scale[:, None]
    if is_tensor(equation.b):
        import torch

        divisor = torch.as_tensor(divisor, dtype=equation.b.dtype, device=equation.b.device)
    scaled = ScaleEquation(equation.a, equation.b / divisor, equation.w)
    solution = inner(scaled)
    spread = float(scale.max() / scale.min()) if scale.size else 1.0
    return replace(
        solution,
        scale=np.asarray(solution.scale, dtype=np.float64) / scale,
        diagnostics=solution.diagnostics | {"weight_spread": spread},
    )


def solve_weighted(
    equation: ScaleEquation,
    image: AffineRange,
    inner: Callable[[ScaleEquation], ScaleSolution],
    *,
    name: str,
    mean: np.ndarray | None = None,
    reweights: int = REWEIGHTS,
) -> ScaleSolution:
    """``weighted``: the minimum weighted norm with the costs `unit_costs`, then ``reweights`` reweighted
    passes toward the minimum of `bound_objective` (module notes); the pass of smallest ``Φ`` is returned.

    ``inner`` is the minimum-norm solver run on every pass (named ``name``). The diagnostics hold ``Φ`` of
    every pass (``objectives``), the pass kept, and the weights' spread.
    """
    base = neuron_costs(image, mean)
    weights = neuron_weights(equation)
    best = solve_weighted_norm(equation, unit_costs(equation, image, mean), inner, name=name)
    objectives = [bound_objective(equation, best.scale, image, mean)]
    kept = 0
    last = best.scale
    for step in range(1, reweights + 1):
        # The cost of neuron i per unit |γ_i| with the sign γ_i has now (the shift depends on it), divided by
        # |γ_i| (floored at FLOOR of the largest): min Σ c_i γ_i² / |γ_i| is Σ c_i |γ_i| at a fixed point.
        sign = np.sign(last)
        cost = weights * (base + np.maximum(image.rad + SLACK * image.size - sign * image.mid, 0.0))
        magnitude = np.abs(last) + FLOOR * float(np.max(np.abs(last), initial=0.0))
        reweighted = np.sqrt(cost / np.where(magnitude > 0, magnitude, 1.0))
        candidate = solve_weighted_norm(equation, reweighted, inner, name=name)
        last = candidate.scale
        objectives.append(bound_objective(equation, last, image, mean))
        if objectives[-1] < objectives[kept]:
            best, kept = candidate, step
    return replace(
        best,
        method=f"weighted: {best.method} on K D⁻¹ (min ‖Dγ‖₂, {reweights} reweighted)",
        diagnostics=best.diagnostics | {"weighted_by": name, "objectives": objectives, "kept_pass": kept},
    )


def minimal_objective(
    a: np.ndarray, gamma: np.ndarray, rho: np.ndarray, image: AffineRange, mean: np.ndarray | None = None
) -> float:
    """Minimal mode's proxy ``Φ = Σ_a |s'_a| Σ_i |A_ai| m_i(γ_i)`` with ``s' = 1/ρ`` (module notes, *Minimal
    mode*): invariant under the scale symmetry ``(ρ, γ) ~ (cρ, cγ)``; ``inf`` if some ``ρ_a`` is 0."""
    gamma = np.asarray(gamma, dtype=np.float64)
    magnitude = np.abs(gamma) * neuron_costs(image, mean) + bias_shift(gamma, image)
    rho = np.abs(np.asarray(rho, dtype=np.float64))
    if not np.all(rho > 0):
        return float("inf")
    return float(np.sum((np.abs(a) @ magnitude) / rho))


def _orthant_bound_program(
    rho_of_c: np.ndarray, gamma_of_c: np.ndarray, sign: np.ndarray, a: np.ndarray, image: AffineRange, mean: Any
) -> np.ndarray | None:
    """``min Σ_i v_i (costs_i u_i + τ_i)`` over the null coordinates ``c`` with ``u_i >= |γ_i(c)|``,
    ``τ_i >= R_i u_i − mid_i γ_i(c)``, ``τ_i >= 0`` and ``sign_a ρ_a(c) >= 1`` (HiGHS); ``c`` or None."""
    import scipy.optimize
    import scipy.sparse

    (r, q), n = rho_of_c.shape, gamma_of_c.shape[0]
    weights = np.abs(a).sum(axis=0)
    reach = image.rad + SLACK * image.size
    eye, zero = scipy.sparse.identity(n, format="csr"), None
    blocks = [
        [scipy.sparse.csr_array(gamma_of_c), -eye, zero],
        [scipy.sparse.csr_array(-gamma_of_c), -eye, zero],
        [scipy.sparse.csr_array(-image.mid[:, None] * gamma_of_c), scipy.sparse.diags(reach), -eye],
        [scipy.sparse.csr_array(-sign[:, None] * rho_of_c), scipy.sparse.csr_array((r, n)), None],
    ]
    matrix = scipy.sparse.bmat(blocks, format="csr")
    limits = np.concatenate([np.zeros(3 * n), -np.ones(r)])
    objective = np.concatenate([np.zeros(q), weights * neuron_costs(image, mean), weights])
    bounds = [(None, None)] * q + [(0, None)] * (2 * n)
    program = scipy.optimize.linprog(objective, A_ub=matrix, b_ub=limits, bounds=bounds, method="highs")
    return program.x[:q] if program.status == 0 else None


def smallest_minimal_bound(
    rho_of_c: np.ndarray,
    gamma_of_c: np.ndarray,
    a: np.ndarray,
    image: AffineRange,
    start: np.ndarray,
    *,
    mean: np.ndarray | None = None,
    accept: Callable[[np.ndarray], bool] = lambda c: True,
) -> tuple[np.ndarray, dict]:
    """Minimal mode's null vector of smallest `minimal_objective` among ``start`` and the optima of the
    orthant programs (module notes, *Minimal mode*); ``accept(c)`` vetoes a candidate (the scale-ratio limit).

    ``ρ = rho_of_c @ c`` and ``γ = gamma_of_c @ c`` in the block's own units. Candidates: ``start`` (the
    scale-ratio choice), the programs for its sign pattern and all-positive ``ρ``, then one sweep of single
    sign flips of the best when the block has at most `FLIP_ROWS` rows. The diagnostics give ``Φ`` of
    ``start`` and of the choice.
    """

    def phi(c: np.ndarray) -> float:
        return minimal_objective(a, gamma_of_c @ c, rho_of_c @ c, image, mean)

    r = rho_of_c.shape[0]
    best, best_phi = start, phi(start)
    tried: set[tuple[float, ...]] = set()

    def consider(sign: np.ndarray) -> None:
        nonlocal best, best_phi
        key = tuple(sign * sign[0])
        if key in tried:
            return
        tried.add(key)
        found = _orthant_bound_program(rho_of_c, gamma_of_c, sign, a, image, mean)
        if found is not None and accept(found) and phi(found) < best_phi:
            best, best_phi = found, phi(found)

    consider(np.where(rho_of_c @ start < 0, -1.0, 1.0))
    consider(np.ones(r))
    centre = np.where(rho_of_c @ best < 0, -1.0, 1.0)
    for row in range(1, r if r <= FLIP_ROWS else 1):
        flipped = centre.copy()
        flipped[row] = -flipped[row]
        consider(flipped)
    return best, {"bound_objective_ratio_choice": phi(start), "bound_objective": best_phi, "programs": len(tried)}
