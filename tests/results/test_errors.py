"""The exception tree: as drawn (module docstring, reference page) and as it behaves."""

from __future__ import annotations

import builtins
import copy
import importlib
import pickle
import re
from dataclasses import replace
from pathlib import Path

import pytest

import apnskit
from apnskit import (
    ApnsTimeoutError,
    ChannelError,
    ConnectError,
    ConnectionLostError,
    ConnectTimeoutError,
    DeadlineExceededError,
    PushRejectedError,
    PushResult,
    TransportError,
)
from apnskit._model.broadcast import get_channel_request
from apnskit._model.results import parse_reason

ERRORS_DOC = importlib.import_module("apnskit._errors").__doc__ or ""
REFERENCE_PAGE = Path(__file__).parents[2] / "docs" / "content" / "reference" / "errors.md"
# " +-- Name (also Other)   comment": the column of "+--" gives the depth.
_NODE = re.compile(r"^(?P<rails>[ |]*)\+-- (?P<name>\w+)(?: \(also (?P<also>\w+)\))?")

PUBLIC_EXCEPTIONS = {
    name
    for name in apnskit.__all__
    if isinstance(getattr(apnskit, name), type) and issubclass(getattr(apnskit, name), Exception)
}


def _first_tree(text: str) -> list[str]:
    # The first fenced block that starts with the root.
    match = re.search(r"```[a-z]*\n(ApnsError\n.*?)```", text, re.DOTALL)
    assert match is not None, "no exception tree drawn"
    return match.group(1).splitlines()


def _parse_tree(lines: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """name -> (drawn parent, the "also" base) for every node of a drawn tree."""
    assert lines[0] == "ApnsError"
    nodes: dict[str, tuple[str | None, str | None]] = {"ApnsError": (None, None)}
    stack = ["ApnsError"]  # stack[depth] is the latest node drawn at that depth
    for line in lines[1:]:
        if not line.replace("|", "").strip():
            continue
        match = _NODE.match(line)
        assert match is not None, f"cannot read tree line {line!r}"
        depth = len(match["rails"]) // 5 + 1  # each level indents by 5 columns
        assert 1 <= depth <= len(stack), f"{line!r} skips a level"
        del stack[depth:]
        name = match["name"]
        assert name not in nodes, f"{name} drawn twice"
        nodes[name] = (stack[-1], match["also"])
        stack.append(name)
    return nodes


def _resolve(name: str) -> type:
    found = getattr(apnskit, name, None) or getattr(builtins, name)
    assert isinstance(found, type)
    return found


def _mismatches(nodes: dict[str, tuple[str | None, str | None]]) -> list[str]:
    """Where a drawn tree and the real classes disagree (empty when they agree)."""
    problems = [f"{name} is public but not drawn" for name in PUBLIC_EXCEPTIONS - set(nodes)]
    problems += [f"{name} is drawn but not public" for name in set(nodes) - PUBLIC_EXCEPTIONS]
    for name, (parent, also) in nodes.items():
        cls = getattr(apnskit, name, None)
        if cls is None:
            continue
        drawn_bases = {_resolve(n) for n in (parent, also) if n is not None} or {Exception}
        if set(cls.__bases__) != drawn_bases:
            real = ", ".join(base.__name__ for base in cls.__bases__)
            problems.append(f"{name} is drawn under {parent} (also {also}); its bases: {real}")
        # Conversely, each public subclass is drawn beneath it.
        for sub in cls.__subclasses__():
            if sub.__name__ in nodes and name not in nodes[sub.__name__]:
                problems.append(f"{sub.__name__} is not drawn under {name}")
    return problems


@pytest.mark.parametrize(
    "text", [ERRORS_DOC, REFERENCE_PAGE.read_text()], ids=["docstring", "reference"]
)
def test_the_drawn_tree_is_the_class_hierarchy(text: str) -> None:
    assert _mismatches(_parse_tree(_first_tree(text))) == []


def test_docstring_and_reference_page_draw_the_same_tree() -> None:
    assert _parse_tree(_first_tree(ERRORS_DOC)) == _parse_tree(
        _first_tree(REFERENCE_PAGE.read_text())
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # A node moved up a level.
        (
            " |    +-- ConnectionLostError",
            " +-- ConnectionLostError",
            "ConnectionLostError is drawn under ApnsError",
        ),
        # A second base left out.
        (
            "InvalidNotificationError (also ValueError)",
            "InvalidNotificationError",
            "InvalidNotificationError is drawn under ApnsError (also None)",
        ),
        # A public exception missing.
        (" |    +-- ChannelError", None, "ChannelError is public but not drawn"),
    ],
    ids=["moved", "base-left-out", "missing"],
)
def test_the_tree_check_notices_a_wrong_drawing(old: str, new: str | None, expected: str) -> None:
    lines = _first_tree(ERRORS_DOC)
    # The line holding `old`: `old` replaced by `new`, or the line left out when `new` is None.
    wrong = [
        line if old not in line else line.replace(old, new)
        for line in lines
        if new is not None or old not in line
    ]
    assert wrong != lines
    problems = _mismatches(_parse_tree(wrong))
    assert any(problem.startswith(expected) for problem in problems), problems


# -- timeouts are TimeoutErrors, so OSErrors (the documented trade-off) -------------------


@pytest.mark.parametrize("cls", [ApnsTimeoutError, ConnectTimeoutError, DeadlineExceededError])
def test_timeouts_are_caught_as_builtin_timeout_error(cls: type[ApnsTimeoutError]) -> None:
    with pytest.raises(TimeoutError) as info:
        raise cls("took too long")
    error = info.value
    assert isinstance(error, TransportError)
    assert isinstance(error, OSError)
    # An OSError made from one message: no errno, and str() is the message alone.
    assert error.errno is None
    assert error.strerror is None
    assert str(error) == "took too long"
    assert repr(error) == f"{cls.__name__}('took too long')"
    copied = pickle.loads(pickle.dumps(error))
    assert type(copied) is cls
    assert str(copied) == "took too long"


def test_only_the_timeouts_are_os_errors() -> None:
    # Why the docs say `except TransportError`, not `except OSError`, for network failures.
    assert not issubclass(ConnectError, OSError)
    assert not issubclass(ConnectionLostError, OSError)
    assert not issubclass(apnskit.ProxyError, OSError)
    assert issubclass(ConnectTimeoutError, ConnectError)
    assert issubclass(ConnectTimeoutError, OSError)


# -- PushRejectedError and ChannelError: initialised by the base, pickled whole ----------

CHANNEL = "dGhpcyBpcyBhIGNoYW5uZWw="


def _channel_rejection(error: Exception | None = None) -> ChannelError:
    request = get_channel_request("com.example.app", CHANNEL)
    if error is not None:
        result = PushResult(notification=request, status=None, error=error)
    else:
        result = PushResult(
            notification=request,
            status=400,
            reason=parse_reason("ChannelNotRegistered"),
            headers={"apns-request-id": "5e0b2e1c-8b0a-4cbe-9d3b-0c2a1a8e2f11"},
        )
    return ChannelError(result, request)


def test_channel_error_goes_through_push_rejected_error_init() -> None:
    error = _channel_rejection()
    expected = (
        f"channel get request for 'com.example.app' (channel {CHANNEL}) rejected by APNs: "
        "400 ChannelNotRegistered [apns-request-id 5e0b2e1c-8b0a-4cbe-9d3b-0c2a1a8e2f11]"
    )
    assert str(error) == expected
    assert error.args == (expected,)
    assert repr(error) == f"ChannelError({expected!r})"
    assert isinstance(error, PushRejectedError)
    assert error.result.reason is apnskit.Reason.CHANNEL_NOT_REGISTERED
    assert error.request is not None
    assert error.request.channel_id == CHANNEL


def test_channel_error_without_answer_has_the_cause() -> None:
    lost = ConnectionLostError("gone")
    error = _channel_rejection(lost)
    assert "failed without an answer from APNs (ConnectionLostError: gone)" in str(error)
    assert error.__cause__ is lost


@pytest.mark.parametrize("copier", [pickle, copy], ids=["pickle", "copy"])
@pytest.mark.parametrize("lost", [False, True], ids=["rejected", "failed"])
def test_rejections_pickle_and_copy_whole(copier: object, lost: bool) -> None:
    notification = apnskit.Notification("ab" * 32, {"aps": {"alert": "Hi"}}, topic="com.example")
    cause = ConnectionLostError("gone") if lost else None
    result = (
        PushResult(notification=notification, status=None, error=cause)
        if lost
        else PushResult(notification=notification, status=410, reason=parse_reason("Unregistered"))
    )
    originals = [PushRejectedError(result), _channel_rejection(cause)]
    for original in originals:
        restored = pickle.loads(pickle.dumps(original)) if copier is pickle else copy.copy(original)
        assert type(restored) is type(original)
        assert str(restored) == str(original)
        assert restored.args == original.args
        # The result's own error is a copy too (exceptions compare by identity).
        assert replace(restored.result, error=None) == replace(original.result, error=None)
        assert vars(restored).keys() == vars(original).keys()
        if lost:
            assert isinstance(restored.__cause__, ConnectionLostError)
            assert str(restored.__cause__) == "gone"
    channel = pickle.loads(pickle.dumps(originals[1]))
    assert isinstance(channel, ChannelError)
    assert channel.request == originals[1].request
