"""Solver verdicts that must not depend on accidents of representation (docs/design.md §5).

* Scaling frozen layer ``j``'s weights by ``2^{k_j}`` (``|k_j| <= 60``) changes the problem only by
  exact powers of two: block ``k``'s ``K`` by ``2^{k_{2k-1} + k_{2k}}``, its solution ``γ`` by the
  inverse. Every method must give the same verdict (a certified result, or the same error class)
  on both networks: a verdict that changes reveals an absolute threshold or a scale-dependent stop.
* Two odd neurons with proportional ``(a_i, b_i)`` at the paper width make ``rank K < d_k d_{k-1}``:
  every method must refuse with `verify.InfeasibleError` naming that block, its width and a rank
  below it (not a `verify.CertificateError` after a failed solve).
"""

from __future__ import annotations

import math

from hypothesis import assume, given, note
from hypothesis import strategies as st

import verify
from properties.strategies import domains, frozen_networks, targets

PAPER_METHODS = ("auto", "direct", "lstsq", "iterative", "l1", "linf", "box", "min_shift", "exact")
"""Every paper-mode method of `verify.reconstruct`."""
BOX_BOUND = 1e3
"""``box``'s bound ``C`` on the unscaled network (scaled along with ``γ`` on the scaled one)."""


def verdict(*args: object, **kwargs: object) -> str:
    """``"holds"`` for a returned (hence certified) reconstruction, else the error's class name and block."""
    try:
        verify.reconstruct(*args, **kwargs)
    except (verify.InfeasibleError, verify.CertificateError, ValueError) as error:
        note(f"{type(error).__name__}: {error}")
        return f"{type(error).__name__} (block {getattr(error, 'block', None)})"
    return "holds"


@given(data=st.data())
def test_scaling_frozen_weights_by_powers_of_two_keeps_every_methods_verdict(data: st.DataObject) -> None:
    """docs/design.md §5: the verdict of every method (and of minimal mode) is invariant under scaling each
    frozen layer's weights by its own power of two ``2^{k_j}``, ``|k_j| <= 60`` (``box``: one power for
    the odd layers and one for the even, so that a single bound ``C · 2^{-(k_odd + k_even)}`` fits
    every block). Frozen biases are zero and statistics fresh, so the scaled problem is equivalent."""
    method = data.draw(st.sampled_from((*PAPER_METHODS, "minimal")), label="method")
    mode = "minimal" if method == "minimal" else "paper"
    target = data.draw(targets(max_depth=3, max_width=4), label="target")
    frozen = data.draw(
        frozen_networks(target, width=mode, max_extra_odd=2, biases=False, statistics=False), label="frozen"
    )
    domain = data.draw(domains(target.widths[0]), label="domain")
    layers = len(frozen.weights)
    if method == "box":
        odd, even = data.draw(st.integers(-60, 60), label="k_odd"), data.draw(st.integers(-60, 60), label="k_even")
        powers = [odd if j % 2 == 0 else even for j in range(layers)]
        bound = math.ldexp(BOX_BOUND, -(odd + even))
    else:
        powers = data.draw(st.lists(st.integers(-60, 60), min_size=layers, max_size=layers), label="powers")
        bound = None
    scaled = verify.FrozenNetwork([math.ldexp(1.0, k) * w for k, w in zip(powers, frozen.weights, strict=True)])
    solver = "auto" if mode == "minimal" else method
    before = verdict(
        target, frozen, domain, mode, method=solver, bound=BOX_BOUND if solver == "box" else None, samples=32
    )
    after = verdict(target, scaled, domain, mode, method=solver, bound=bound, samples=32)
    assert after == before


@given(data=st.data())
def test_duplicated_frozen_neurons_are_infeasible_with_every_method(data: st.DataObject) -> None:
    """docs/design.md §7 (discrete frozen weights): odd neuron ``j`` of block ``k`` made proportional to
    neuron ``i`` (``b_j = β b_i``, ``a_j = α a_i``, ``α, β != 0``) at the paper width leaves ``K`` with
    rank below ``d_k d_{k-1}``; every method raises `verify.InfeasibleError` with that block, its width
    and a rank below the width."""
    method = data.draw(st.sampled_from(PAPER_METHODS), label="method")
    target = data.draw(targets(max_depth=3, max_width=4), label="target")
    sizes = [target.widths[k] * target.widths[k - 1] for k in range(1, target.depth + 1)]
    assume(max(sizes) >= 2)
    block = data.draw(st.sampled_from([k for k, n in enumerate(sizes, start=1) if n >= 2]), label="block")
    frozen = data.draw(frozen_networks(target, width="paper"), label="frozen")
    domain = data.draw(domains(target.widths[0]), label="domain")
    n = frozen.widths[2 * block - 1]
    i, j = data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True), label="i, j")
    factor = st.tuples(st.sampled_from([-1.0, 1.0]), st.floats(math.log(1e-3), math.log(1e3))).map(
        lambda pair: pair[0] * math.exp(pair[1])
    )
    alpha, beta = data.draw(factor, label="alpha"), data.draw(factor, label="beta")
    weights = [w.copy() for w in frozen.weights]
    weights[2 * block - 2][j] = beta * weights[2 * block - 2][i]
    weights[2 * block - 1][:, j] = alpha * weights[2 * block - 1][:, i]
    duplicated = verify.FrozenNetwork(weights, frozen.biases, frozen.running_mean, frozen.running_var, frozen.eps)
    try:
        verify.reconstruct(
            target, duplicated, domain, method=method, bound=1e300 if method == "box" else None, samples=32
        )  # box: rank only
    except verify.InfeasibleError as error:
        note(str(error))
        assert (error.block, error.width) == (block, n)
        assert error.rank is not None and error.rank < n
    else:
        raise AssertionError(f"{method} reconstructed through duplicated neurons {i}, {j} of block {block}")
