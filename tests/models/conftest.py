"""Shared helpers for the notification model tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from apnskit import ApnsError, InvalidNotificationError

Checker = Callable[..., InvalidNotificationError]


def _expect_invalid(
    field: str, func: Callable[..., Any], /, *args: Any, match: str | None = None, **kwargs: Any
) -> InvalidNotificationError:
    """Call ``func`` and assert it raises InvalidNotificationError naming ``field``."""
    with pytest.raises(InvalidNotificationError) as info:
        func(*args, **kwargs)
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err, ApnsError)
    assert err.field == field
    assert str(err).startswith(f"{field}: ")
    if match is not None:
        assert re.search(match, str(err)), str(err)
    return err


@pytest.fixture
def expect_invalid() -> Checker:
    """Return the checker: ``expect_invalid(field, func, *args, match=regex, **kwargs)``."""
    return _expect_invalid
