"""Developer sessions: ``nox -s tests lint typecheck docs``.

CI (``.ci/run``) runs the same commands the README gives; these sessions are the long form.
"""

from __future__ import annotations

import sys

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs", "unasync"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite under coverage; the sans-I/O core must keep >= 95% branch coverage."""
    session.install("-e", ".[tests]")
    # coverage run, not pytest --cov: the apnskit pytest plugin (an entry point) imports the
    # package before pytest-cov would start measuring.
    session.run("coverage", "run", "--branch", "--source=apnskit", "-m", "pytest", *session.posargs)
    session.run("coverage", "report", "--skip-covered", "--show-missing")
    session.run(
        "coverage", "report", "--include=src/apnskit/_core/*", "--fail-under=95", silent=True
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(".[lint]")
    session.run("ruff", "check", "src", "tests", "examples", "bench", "noxfile.py", "conftest.py")
    session.run(
        "ruff",
        "format",
        "--check",
        "src",
        "tests",
        "examples",
        "bench",
        "noxfile.py",
        "conftest.py",
    )


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install("-e", ".[typecheck]")
    session.run("mypy", "--strict", "src/apnskit")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the MkDocs site with warnings as errors."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "-f", "docs/mkdocs.yml", "--site-dir", "site")


@nox.session(venv_backend="none")
def unasync(session: nox.Session) -> None:
    """Check that PushClient's public layer is what .ci/unasync.py generates from the async one."""
    # The script needs only the standard library: nox's own interpreter runs it.
    session.run(sys.executable, ".ci/unasync.py", "--check")
