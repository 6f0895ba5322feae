"""The environment a verification report records (its ``meta.versions``): versions and platform."""

from __future__ import annotations

import platform

import numpy as np
import scipy

import verify

__all__ = ["environment"]


def environment() -> dict[str, str]:
    """Versions of Python, NumPy, SciPy and verify, and the platform: recorded in the report."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "verify": verify.__version__,
        "platform": platform.platform(),
    }
