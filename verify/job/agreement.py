"""How far a reconstruction is from its target on given points: the two error figures of the job.

``max |g − f| / (|g| + |f|)`` (termwise magnitudes, ``0/0`` read as 0) is what the derived rounding
tolerance `verify.evaluation_tolerance` bounds (docs/design.md §6); ``max |g − f| / max |f|`` is the
human figure of the report, bounded by the certificate's ``rtol``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from verify.core.numerics import residual_ratio

__all__ = ["fresh_errors"]


def fresh_errors(result: Any, target: Any, x: np.ndarray) -> tuple[float, float]:
    """``max |g−f| / (|g|+|f|)`` and ``max |g−f| / max |f|`` of ``result`` (a `verify.Reconstruction`) on ``x``."""
    f = target(x)
    difference = np.abs(result.network(x) - f)
    scale = result.frozen.magnitude(x, result.gamma, result.beta) + target.magnitude(x)
    return residual_ratio(difference, scale), float(
        difference.max() / max(float(np.abs(f).max()), np.finfo(float).tiny)
    )
