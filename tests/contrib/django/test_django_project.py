"""Runs the tiny Django project under project/ with Django's own tools, in subprocesses:
its test suite with ``manage.py test`` (pushsite/tests.py) and ``manage.py check``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apnskit.testing import MockApnsServer

PROJECT = Path(__file__).resolve().parent / "project"


def manage(*args: str, config: Any = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.pop("APNSKIT_TEST_CONFIG", None)
    if config is not None:
        env["APNSKIT_TEST_CONFIG"] = json.dumps(config)
    return subprocess.run(
        # -W error: the project's rule (pyproject's filterwarnings) holds in there too.
        [sys.executable, "-W", "error", "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_django_test_runner() -> None:
    done = manage("test", "pushsite", "-v", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    ran = re.search(r"^Ran (\d+) tests? in", done.stderr, re.MULTILINE)
    assert ran is not None, done.stderr
    assert int(ran.group(1)) >= 20  # the whole suite ran, not an empty discovery
    assert re.search(r"^OK$", done.stderr, re.MULTILINE)
    assert "ResourceWarning" not in done.stderr


@pytest.fixture(scope="module")
def certificates() -> Iterator[MockApnsServer]:
    with MockApnsServer() as server:  # only its CA, to issue client certificates
        yield server


def test_check_command_passes_good_settings() -> None:
    done = manage("check")
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_check_command_reports_missing_key_file(tmp_path: Path) -> None:
    missing = tmp_path / "AuthKey_ABCDE12345.p8"
    done = manage(
        "check",
        config={"KEY_FILE": str(missing), "TEAM_ID": "TEAM123456", "ENVIRONMENT": "sandbox"},
    )
    assert done.returncode == 1
    assert "apnskit.E004" in done.stderr
    assert f"{missing} does not exist" in done.stderr


def test_check_command_reports_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "AuthKey_ABCDE12345.p8"
    bad.write_text("this is not a key\n")
    done = manage(
        "check", config={"KEY_FILE": str(bad), "TEAM_ID": "TEAM123456", "ENVIRONMENT": "sandbox"}
    )
    assert done.returncode == 1
    assert "apnskit.E005" in done.stderr
    assert "this is not a key" not in done.stderr  # file contents are never echoed


def test_check_command_warns_of_certificate_expiry(certificates: MockApnsServer) -> None:
    cert, key = certificates.issue_client_certificate(days=10)
    done = manage("check", config={"CERT_FILE": cert, "CERT_KEY_FILE": key})
    assert done.returncode == 0, done.stderr  # a warning, not an error
    assert "apnskit.W001" in done.stderr
    assert re.search(r"expires on \d{4}-\d\d-\d\d \d\d:\d\d UTC, in (9|10) days", done.stderr)
    # --fail-level WARNING makes it fail a deploy pipeline.
    strict = manage(
        "check", "--fail-level", "WARNING", config={"CERT_FILE": cert, "CERT_KEY_FILE": key}
    )
    assert strict.returncode == 1
    assert "apnskit.W001" in strict.stderr
