"""Domains given as users write them: scalar box bounds, a ball without a centre, and their reprs."""

from __future__ import annotations

import numpy as np
import pytest

import verify


def test_a_box_of_two_numbers_resolves_to_the_cube() -> None:
    # Regression: Box(-1, 1) was refused ("lo must have shape (n,)") while the CLI accepted box:-1,1.
    box = verify.Box(-1, 1)
    assert box.dim is None and repr(box) == "Box(lo=-1.0, hi=1.0)"
    cube = box.resolve(3)
    assert cube.dim == 3 and cube.lo.tolist() == [-1.0] * 3 and cube.hi.tolist() == [1.0] * 3
    target = verify.TargetNetwork.random([3, 4, 2], seed=0)
    frozen = verify.FrozenNetwork.for_target(target, width="paper", seed=1)
    result = verify.reconstruct(target, frozen, box)
    assert result.certificate.holds
    assert result.certificate.domain == {"kind": "box", "lo": [-1.0] * 3, "hi": [1.0] * 3}


def test_a_number_beside_an_array_is_broadcast() -> None:
    assert verify.Box(0, [1.0, 2.0]).lo.tolist() == [0.0, 0.0]
    assert verify.Box([-1.0, -2.0], 3).hi.tolist() == [3.0, 3.0]


def test_an_unresolved_box_says_to_resolve_it() -> None:
    with pytest.raises(ValueError, match=r"no dimension yet .* resolve\(d_0\)"):
        verify.Box(0, 1).sample(4, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("lo", "hi", "message"),
    [
        (2, 1, r"lo must be <= hi in every coordinate, but lo = 2.0 > hi = 1.0"),
        ([0, 2], [1, 1], r"lo\[1\] = 2.0 > hi\[1\] = 1.0"),
        ([0, 0], [1, 1, 1], r"hi must have shape \(2,\)"),
        (0, float("nan"), "hi must be finite"),
        ([], [], "at least one coordinate"),
    ],
)
def test_bad_box_bounds_are_refused_by_name(lo: object, hi: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        verify.Box(lo, hi)


def test_a_box_of_numbers_in_another_dimension_is_still_refused_once_resolved() -> None:
    with pytest.raises(ValueError, match="dimension 2 but the target's input has d_0 = 3"):
        verify.Box([0, 0], [1, 1]).resolve(3)


def test_ball_repr_shows_only_what_was_given() -> None:
    # Regression: repr(Ball(1.0)) showed center=0 although the centre was unset.
    assert repr(verify.Ball(1.0)) == "Ball(radius=1.0)"
    assert repr(verify.Ball(2.0, [1.0, 0.0])) == "Ball(radius=2.0, center=[1.0, 0.0])"
