"""Hypothesis strategies and property tests for `verify` (docs/design.md §1–2, §6).

The strategies are public, for reuse in other test suites::

    from properties import domains, frozen_networks, instances, targets

Importing this package also registers two Hypothesis settings profiles and, when the environment
variable ``VERIFY_HYPOTHESIS_PROFILE`` names one, loads it, so that the variable works in your own
test suite too (unset, your own Hypothesis settings stay as they are; this repository's
``conftest.py`` then loads ``fast``):

* ``fast`` (CI, ``nox -s tests``): few examples per property, the whole suite in well under a
  minute on two cores.
* ``budget`` (``python -m verify``, ``nox -s verify``): 100 examples per property, sized so that the
  default verification job finishes within five minutes on two cores, the job running the suite as two
  pytest processes side by side on files split by their measured time (at 150 in one process the suite,
  then 104 tests and 61 properties, took 409 s and the job 8 min 52 s; at 100 in two balanced processes,
  105 tests and 62 properties, 148 s and the job 4 min 19 s).
* ``thorough`` (``python -m verify --full``): 1000 examples per property, over ten minutes.

All three disable the per-example deadline (timings vary on shared CI machines) and print the blob
that reproduces a failure with ``@reproduce_failure``.
"""

import os

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
    "PROFILES",
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
    "budget", max_examples=100, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)

PROFILES = ("fast", "budget", "thorough")
"""The settings profiles registered above; ``VERIFY_HYPOTHESIS_PROFILE`` may name any of them."""

_profile = os.environ.get("VERIFY_HYPOTHESIS_PROFILE")
if _profile:
    if _profile not in PROFILES:
        raise ValueError(f"VERIFY_HYPOTHESIS_PROFILE must be one of {PROFILES}, got {_profile!r}")
    settings.load_profile(_profile)
