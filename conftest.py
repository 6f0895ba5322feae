"""Load the Hypothesis settings profile named by VERIFY_HYPOTHESIS_PROFILE (default: fast)."""

import os

import pytest
from hypothesis import settings

import properties  # noqa: F401  (registers the profiles)

settings.load_profile(os.environ.get("VERIFY_HYPOTHESIS_PROFILE", "fast"))


def pytest_configure(config: pytest.Config) -> None:
    """Keep ``filterwarnings = ["error"]`` from turning a Hypothesis failure report into an INTERNALERROR.

    When a property fails, Hypothesis's pytest plugin imports ``hypothesis.extra._patching`` (if
    libcst is installed) to suggest an ``@example`` patch; old libcst versions define a
    ``mypy_extensions.TypedDict``, which warns on import. Ignore that one warning only.
    """
    config.addinivalue_line("filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")
