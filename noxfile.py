"""Sessions: ``tests`` (CI), ``verify`` (the main job), ``lint``, ``bench``.

Each session installs the project into its own virtualenv from ``pyproject.toml``; nothing needs to
be installed by hand but nox itself.
"""

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

RUFF = "ruff==0.17.6"


@nox.session
def tests(session: nox.Session) -> None:
    """Example tests and Hypothesis properties under the fast profile."""
    session.install("-e", ".[test]")
    session.env["VERIFY_HYPOTHESIS_PROFILE"] = "fast"
    session.run("pytest", *session.posargs)


@nox.session
def verify(session: nox.Session) -> None:
    """Check every claim of the theorem numerically (``python -m verify``).

    By default the quick grid and the property suite under the ``budget`` Hypothesis profile (within
    five minutes on two cores); ``nox -s verify -- --full`` runs the bigger grid and the ``thorough``
    profile.
    """
    session.install("-e", ".[test]")
    session.run("python", "-m", "verify", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: absolute times, peak memory and ratios against baselines measured in the same run.

    The torch extra is installed too: the training benchmark trains BatchNorm parameters in torch.
    """
    session.install("-e", ".[torch]")
    session.run("python", "benchmarks/bench.py", *session.posargs)
