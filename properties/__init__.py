"""Hypothesis strategies and property tests for `verify` (docs/design.md §1–2, §6).

The strategies are public, for reuse in other test suites::

    from properties import domains, frozen_networks, instances, targets

Importing this package also registers two Hypothesis settings profiles; the root ``conftest.py``
loads the one named by the environment variable ``VERIFY_HYPOTHESIS_PROFILE`` (default ``fast``):

* ``fast`` (CI, ``nox -s tests``): few examples per property, the whole suite in well under a
  minute on two cores.
* ``thorough`` (``nox -s verify``): many examples per property, a few minutes.

Both disable the per-example deadline (timings vary on shared CI machines) and print the blob
that reproduces a failure with ``@reproduce_failure``.
"""

from hypothesis import HealthCheck, settings

from properties.strategies import (
    DISTRIBUTIONS,
    DOMAIN_KINDS,
    WIDTH_RULES,
    Instance,
    domains,
    frozen_networks,
    instances,
    mirrored,
    paired_instances,
    seeds,
    target_widths,
    targets,
)

__all__ = [
    "DISTRIBUTIONS",
    "DOMAIN_KINDS",
    "WIDTH_RULES",
    "Instance",
    "domains",
    "frozen_networks",
    "instances",
    "mirrored",
    "paired_instances",
    "seeds",
    "target_widths",
    "targets",
]

settings.register_profile(
    "fast", max_examples=50, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
