"""Issue 12: the package looks finished: license, URLs, changelog, extras, honest dependencies,
and a light footprint in other projects (the CLI and the auto-loaded pytest plugin)."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "apnskit"


def requirement_names(extra: str | None = None) -> set[str]:
    """Distribution names apnskit requires (``extra=None``: at run time)."""
    names = set()
    for requirement in importlib.metadata.requires("apnskit") or []:
        name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()
        marker = requirement.partition(";")[2]
        if extra is None:
            if "extra" not in marker:
                names.add(name)
        elif re.search(rf"""extra\s*==\s*['"]{re.escape(extra)}['"]""", marker):
            names.add(name)
    return names


def third_party_imports(exclude: tuple[str, ...] = ()) -> set[str]:
    found = set()
    for path in SRC.rglob("*.py"):
        # apnskit.contrib: optional integrations behind their own extras, imported when used.
        if path.name in exclude or "contrib" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top != "apnskit":
                    found.add(top)
    return found


def test_runtime_dependencies_are_exactly_what_the_runtime_imports() -> None:
    # The pytest plugin imports pytest, which is there whenever pytest loads it; socksio is
    # imported only for a socks5:// proxy, behind the `socks` extra.
    imports = third_party_imports(exclude=("pytest_plugin.py",))
    assert requirement_names() <= imports
    assert imports - requirement_names() <= requirement_names("socks")
    assert requirement_names() == {"h2", "hpack", "anyio", "cryptography"}
    assert "hyperframe" not in requirement_names()


def test_license_file_is_mit_and_in_the_metadata() -> None:
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    metadata = importlib.metadata.metadata("apnskit")
    assert "MIT" in (metadata.get("License-Expression") or metadata.get("License") or "")
    assert "LICENSE" in (metadata.get_all("License-File") or [])


def test_project_urls() -> None:
    urls = dict(
        entry.split(", ", 1)
        for entry in importlib.metadata.metadata("apnskit").get_all("Project-URL")
    )
    assert {"Homepage", "Repository", "Documentation", "Issues", "Changelog"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())


def test_extras() -> None:
    assert requirement_names("trio") == {"trio"}
    assert "nox" in requirement_names("dev")
    assert "pytest-markdown-docs" in requirement_names("tests")
    # mkdocstrings formats signatures with ruff (or black): without one it logs an INFO line.
    assert "ruff" in requirement_names("docs")


def test_changelog_keeps_a_changelog_and_is_shown_in_the_docs() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "Keep a Changelog" in changelog
    assert "## [Unreleased]" in changelog
    version = importlib.metadata.version("apnskit")
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d\d-\d\d$", changelog, re.M)
    assert (ROOT / "docs" / "content" / "changelog.md").read_text().strip() == (
        '--8<-- "CHANGELOG.md"'
    )
    mkdocs = (ROOT / "docs" / "mkdocs.yml").read_text()
    assert "changelog.md" in mkdocs
    assert "pymdownx.snippets" in mkdocs
    assert "guide/troubleshooting.md" in mkdocs


def _modules_after(code: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    ).stdout
    return set(out.split())


def test_importing_the_cli_does_not_import_the_mock_server() -> None:
    modules = _modules_after("import apnskit.cli")
    assert "apnskit.cli" in modules
    assert "apnskit.testing._mock_server" not in modules
    assert "h2" not in modules


def test_pytest_plugin_imports_nothing_heavy() -> None:
    code = textwrap.dedent(
        """
        import logging
        import apnskit.testing.pytest_plugin
        assert not logging.getLogger("hpack.hpack").filters, "a logging filter was installed"
        """
    )
    modules = _modules_after(code)
    assert "apnskit.testing.pytest_plugin" in modules
    assert not {m for m in modules if m == "h2" or m.startswith("h2.")}
    assert "apnskit.testing._mock_server" not in modules
    assert "apnskit.testing._server_connection" not in modules


def test_another_projects_pytest_run_is_not_changed(tmp_path: Path) -> None:
    # A project that has apnskit installed but does not use it: the plugin is auto-loaded
    # (pytest11 entry point), and must import no h2 and install no logging filter. A second
    # test uses the fixture, which then brings the mock server in.
    (tmp_path / "test_other.py").write_text(
        textwrap.dedent(
            """
            import logging
            import sys

            def test_untouched():
                assert "h2" not in sys.modules
                assert "apnskit.testing._mock_server" not in sys.modules
                assert not logging.getLogger("hpack.hpack").filters

            def test_fixture_still_works(apns_server):
                assert apns_server.port > 0
                assert "h2" in sys.modules
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONWARNINGS", "PYTEST_ADDOPTS"}}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_other.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
