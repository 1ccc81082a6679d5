"""MkDocs hook: render the Sphinx-style roles found in apnskit's docstrings.

The docstrings cross-reference with reStructuredText roles (``:class:`~apnskit.PushResult```),
which Markdown leaves as literal text such as ``:class:apnskit.PushResult``. After a page is
rendered, each role becomes an optional autorefs link: a link when the target is documented in
this site, plain code otherwise (never a warning, so ``--strict`` stays meaningful).
"""

from __future__ import annotations

import re
from typing import Any

import apnskit
import apnskit.testing

# After Markdown: :class:<code>~apnskit.PushResult</code> (the role name, then inline code).
_ROLE = re.compile(r":(?:class|meth|attr|func|mod|data|exc|obj):<code>(~?)([\w.]+)(\(\))?</code>")

# Bare names in docstrings are relative to their module; these are the public ones.
_QUALIFIED = {name: f"apnskit.{name}" for name in apnskit.__all__}
_QUALIFIED.update({name: f"apnskit.testing.{name}" for name in apnskit.testing.__all__})


def _replace(match: re.Match[str]) -> str:
    tilde, target, call = match.groups()
    shown = target.rsplit(".", 1)[-1] if tilde else target
    head, _, rest = target.partition(".")
    identifier = target
    if head in _QUALIFIED:
        identifier = _QUALIFIED[head] + (f".{rest}" if rest else "")
    return f'<autoref identifier="{identifier}" optional><code>{shown}{call or ""}</code></autoref>'


def on_page_content(html: str, **kwargs: Any) -> str:
    """Turn the leftover roles into optional cross-references (resolved by autorefs)."""
    return _ROLE.sub(_replace, html)


# "```python notest" marks a block the doc tests skip (pytest-markdown-docs); Python-Markdown's
# fences take only a language there, and would print such a block as a paragraph.
_NOTEST_FENCE = re.compile(r"^(\s*```+\s*python)\s+notest\s*$", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Render ``python notest`` blocks as ordinary Python blocks."""
    return _NOTEST_FENCE.sub(r"\1", markdown)
