"""Nothing passed in is modified, and the same inputs give the same output bit for bit (docs/design.md §6)."""

import numpy as np
from hypothesis import given

import verify
from properties._support import network_arrays, solve
from properties.strategies import Instance, instances, seeds


def assert_bit_identical(actual: np.ndarray, expected: np.ndarray, name: str) -> None:
    """Same dtype, shape, values (``np.array_equal``) and bytes (so ``-0.0`` differs from ``0.0``)."""
    assert actual.dtype == expected.dtype, name
    assert actual.shape == expected.shape, name
    assert np.array_equal(actual, expected), name
    assert actual.tobytes() == expected.tobytes(), name


def caller_copy(instance: Instance) -> tuple[Instance, dict[str, np.ndarray]]:
    """The instance rebuilt from fresh, writeable, caller-owned arrays, and those arrays by name."""
    target, frozen, domain, mode = instance
    owned = {f"target.{name}": a.copy() for name, a in network_arrays(target).items()}
    owned |= {f"frozen.{name}": a.copy() for name, a in network_arrays(frozen).items()}
    depth = target.depth

    def layers(prefix: str, name: str, count: int) -> list[np.ndarray]:
        return [owned[f"{prefix}.{name}[{j}]"] for j in range(count)]

    new_target = verify.TargetNetwork(layers("target", "weights", depth), layers("target", "biases", depth))
    new_frozen = verify.FrozenNetwork(
        layers("frozen", "weights", 2 * depth),
        layers("frozen", "biases", 2 * depth),
        layers("frozen", "running_mean", 2 * depth),
        layers("frozen", "running_var", 2 * depth),
        eps=frozen.eps,
    )
    if isinstance(domain, verify.Box):
        owned["domain.lo"], owned["domain.hi"] = domain.lo.copy(), domain.hi.copy()
        new_domain = verify.Box(owned["domain.lo"], owned["domain.hi"])
    elif domain.center is not None:
        owned["domain.center"] = domain.center.copy()
        new_domain = verify.Ball(domain.radius, owned["domain.center"])
    else:
        new_domain = verify.Ball(domain.radius)
    return Instance(new_target, new_frozen, new_domain, mode), owned


def held_arrays(instance: Instance) -> dict[str, np.ndarray]:
    """Every array the networks and the domain of ``instance`` hold, by name."""
    target, frozen, domain, _ = instance
    held = {f"target.{name}": a for name, a in network_arrays(target).items()}
    held |= {f"frozen.{name}": a for name, a in network_arrays(frozen).items()}
    if isinstance(domain, verify.Box):
        held |= {"domain.lo": domain.lo, "domain.hi": domain.hi}
    elif domain.center is not None:
        held["domain.center"] = domain.center
    return held


@given(instance=instances(), seed=seeds())
def test_reconstruct_leaves_networks_domain_and_caller_arrays_bit_identical(instance, seed):
    """docs/design.md §6 and `verify.reconstruct`'s Notes ("nothing passed in is modified"); the constructors copy.

    The networks and the domain are built from caller-owned numpy arrays. Then:

    * the objects hold read-only arrays sharing no memory with the caller's, and leave the
      caller's arrays writeable and unchanged;
    * after `verify.reconstruct`, every array of the target, the frozen network and the domain,
      and every caller array, is bit-identical to a copy taken before (``np.array_equal`` and
      equal bytes);
    * writing into the caller's arrays afterwards changes nothing the objects hold.
    """
    instance, owned = caller_copy(instance)
    pristine = {name: a.copy() for name, a in owned.items()}
    held = held_arrays(instance)
    before = {name: a.copy() for name, a in held.items()}
    for name, array in held.items():
        assert not array.flags.writeable, name
        assert not any(np.shares_memory(array, mine) for mine in owned.values()), name
    for name, mine in owned.items():
        assert mine.flags.writeable, name
        assert_bit_identical(mine, pristine[name], name)

    result = solve(instance, samples=32, seed=seed)
    assert result.target is instance.target
    assert result.frozen is instance.frozen
    for name, array in held_arrays(instance).items():
        assert_bit_identical(array, before[name], name)
    for name, mine in owned.items():
        assert_bit_identical(mine, pristine[name], name)

    for mine in owned.values():
        mine += 1.0
    for name, array in held_arrays(instance).items():
        assert_bit_identical(array, before[name], name)


@given(instance=instances(), seed=seeds())
def test_same_inputs_give_bit_identical_results(instance, seed):
    """docs/design.md §6 (a result is reproducible): `verify.reconstruct` is deterministic.

    Solving the same instance twice, and once more from networks and a domain rebuilt from copies
    of its arrays, gives bit-identical ``gamma``, ``beta``, ``scales`` and ``shifts`` and equal
    certificates (``Certificate.to_dict``).
    """
    first = solve(instance, samples=32, seed=seed)
    again = solve(instance, samples=32, seed=seed)
    rebuilt = solve(caller_copy(instance)[0], samples=32, seed=seed)
    for other in (again, rebuilt):
        for field in ("gamma", "beta", "scales", "shifts"):
            for j, (mine, theirs) in enumerate(zip(getattr(first, field), getattr(other, field), strict=True)):
                assert_bit_identical(theirs, mine, f"{field}[{j}]")
        assert other.certificate.to_dict() == first.certificate.to_dict()
