"""Run the fenced ``python`` blocks of README.md and docs/content/**/*.md as tests.

pytest-markdown-docs does the work (parsing, ``notest`` and ``continuation`` fences, fixtures);
its ``--markdown-docs`` switch would also import every test module to read docstrings, under
other import rules than pytest's, so only Markdown files are handed to it here. The conventions
for writers are in docs/content/contributing.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_markdown_docs.plugin import MarkdownTextFile


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect a Markdown file's python blocks (testpaths lists README.md and docs/content)."""
    if file_path.suffix == ".md" and not parent.config.option.markdowndocs:
        collector: pytest.Collector = MarkdownTextFile.from_parent(parent, path=file_path)
        return collector
    return None
