"""Running the verification job: every selected claim of a `Config`, in report order.

Importing this module registers every claim (`verify.job.claims`); each runs its cases through a
`verify.job.progress.Sweep` (this process, a local process pool or a Dask cluster:
`verify.job.sweeps.Runner`). Failing cases never raise: they make their claim fail, with reasons
and reproducers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import verify.job.claims  # noqa: F401  (registers every claim)
from verify.construction.progress import silenced
from verify.job import registry
from verify.job.claim import Claim
from verify.job.config import Config
from verify.job.progress import Sweep

__all__ = ["run_claim", "run_claims"]


def run_claim(config: Config, name: str, sweep: Any) -> Claim:
    """Check the one claim ``name`` of ``config``, its cases through ``sweep`` (anything with ``map``).

    Raises `ValueError` when no registered claim family has that name.
    """
    spec = registry.spec_of(name)
    if spec is None:
        raise ValueError(f"claim name must be one of {config.claim_names()}, got {name!r}")
    return spec.run(config, name, sweep)


def run_claims(
    config: Config, progress: Callable[[str], None] | None = None, sweep: Sweep | None = None
) -> list[Claim]:
    """Check every selected claim of ``config`` and return them in report order.

    Parameters
    ----------
    config : Config
        The grid and the selection (``config.only``, ``config.properties``).
    progress : callable, optional
        Called with each claim's name before it runs (for a status line).
    sweep : verify.job.progress.Sweep, optional
        Where the claims' cases run and how their progress is drawn; the default runs them one
        after another in this process, silently. Results do not depend on it (every case is seeded).

    Returns
    -------
    list of Claim
        In the order of `Config.claim_names`. Failing cases never raise: they make their claim fail,
        with reasons and reproducers.

    Raises
    ------
    ValueError
        If ``config.sizes`` overrides a family that is not registered (a typo would otherwise be ignored).
    """
    families = {spec.key for spec in registry.specs()}
    unknown = sorted(set(config.sizes) - families)
    if unknown:
        raise ValueError(f"config.sizes names no claim family: {unknown}; the families are {sorted(families)}")
    sweep = sweep if sweep is not None else Sweep()
    claims = []
    with silenced():  # the sweep draws the job's bars; a fit's own bars would garble them
        for name in config.claim_names():
            if not config.selected(name):
                continue
            if progress is not None:
                progress(name)
            sweep.start(name)
            claims.append(run_claim(config, name, sweep))
            sweep.finish()
    return claims
