"""Issue 16 item 5 (review leftovers): what the engine says about retries and closed connections.

``RetryScheduled`` carries its cause as data (``cause``, ``status``, ``apns_reason``) so hooks
never parse its text; and where a server gives no reason, the engine's words use the core's
``detail`` (the server's own body or GOAWAY debug data, printable and truncated).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import apnskit
from apnskit.testing import FakeTransport, Fault, ReceivedRequest, Reply

_KEY_PEM = ec.generate_private_key(ec.SECP256R1()).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
FAST = apnskit.RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_max=0.01)
Handler = Callable[[ReceivedRequest], "Reply | Fault"]


def _send(
    handler: Handler, retry: apnskit.RetryPolicy = FAST
) -> tuple[apnskit.PushResult, list[apnskit.ClientEvent]]:
    events: list[apnskit.ClientEvent] = []
    credentials = apnskit.TokenCredentials(_KEY_PEM, key_id="ABCDE12345", team_id="TEAM123456")
    with apnskit.PushClient(
        credentials,
        environment="sandbox",
        transport=FakeTransport(handler),
        retry=retry,
        event_hook=events.append,
    ) as client:
        note = apnskit.Notification("ab" * 32, {"aps": {"alert": "hi"}}, topic="com.example.app")
        result = client.send(note)
    return result, events


def _then_ok(*first: Reply | Fault) -> Handler:
    answers = itertools.chain(first, itertools.repeat(Reply(200)))
    return lambda request: next(answers)


def _retries(events: list[apnskit.ClientEvent]) -> list[apnskit.RetryScheduled]:
    return [e for e in events if isinstance(e, apnskit.RetryScheduled)]


def test_retry_of_an_answer_carries_cause_status_and_reason() -> None:
    result, events = _send(
        _then_ok(Reply(503, reason="ServiceUnavailable"), Reply(429, reason="TooManyRequests"))
    )
    assert result.accepted
    first, second = _retries(events)
    assert first.cause is apnskit.RetryCause.UNAVAILABLE
    assert (first.status, first.apns_reason) == (503, apnskit.Reason.SERVICE_UNAVAILABLE)
    assert first.reason == "503 ServiceUnavailable"
    assert second.cause is apnskit.RetryCause.THROTTLED
    assert (second.status, second.apns_reason) == (429, apnskit.Reason.TOO_MANY_REQUESTS)


def test_retry_of_a_500_and_an_unknown_reason() -> None:
    result, events = _send(_then_ok(Reply(500, reason="SomethingNew")))
    assert result.accepted
    (retry,) = _retries(events)
    assert retry.cause is apnskit.RetryCause.SERVER_ERROR
    # A reason Apple may add later is kept as its string, like PushResult.reason.
    assert (retry.status, retry.apns_reason) == (500, "SomethingNew")


def test_retry_without_an_answer_has_no_status() -> None:
    result, events = _send(_then_ok(Fault.reset(), Fault.goaway(last_stream_id=0), Fault.drop()))
    assert result.accepted
    causes = [(r.cause, r.status, r.apns_reason) for r in _retries(events)]
    assert causes == [
        (apnskit.RetryCause.STREAM_REFUSED, None, None),
        (apnskit.RetryCause.GOAWAY, None, None),
        (apnskit.RetryCause.CONNECTION_LOST, None, None),
    ]


def test_retry_text_names_the_body_when_there_is_no_reason() -> None:
    # A proxy or a load balancer in front of APNs answers 503 with HTML, not Apple's JSON.
    result, events = _send(_then_ok(Reply(503, body=b"<html>upstream down</html>")))
    assert result.accepted
    (retry,) = _retries(events)
    assert retry.reason == "503 <html>upstream down</html>"
    assert (retry.cause, retry.status, retry.apns_reason) == (
        apnskit.RetryCause.UNAVAILABLE,
        503,
        None,
    )


def test_goaway_without_a_reason_is_named_by_its_debug_data() -> None:
    # Plain-text debug data (as some servers send, e.g. nginx's or Go's "too_many_pings")
    # is what the closed connection and the lost notification's error report.
    def handler(request: ReceivedRequest) -> Fault:
        return Fault.goaway(last_stream_id=0, debug_data=b"too_many_pings", error_code=0xB)

    no_retry = apnskit.RetryPolicy(max_attempts=1, backoff_base=0.001, backoff_max=0.01)
    result, events = _send(handler, retry=no_retry)
    closed = [e.reason for e in events if isinstance(e, apnskit.ConnectionClosed)]
    assert closed
    assert all(reason == "GOAWAY too_many_pings" for reason in closed), closed
    assert isinstance(result.error, apnskit.ConnectionLostError)
    assert "GOAWAY too_many_pings" in str(result.error)


def test_goaway_without_reason_or_debug_data_names_its_error_code() -> None:
    def handler(request: ReceivedRequest) -> Fault:
        return Fault.goaway(last_stream_id=0, reason=None, error_code=0xB)

    no_retry = apnskit.RetryPolicy(max_attempts=1, backoff_base=0.001, backoff_max=0.01)
    result, events = _send(handler, retry=no_retry)
    closed = [e.reason for e in events if isinstance(e, apnskit.ConnectionClosed)]
    assert closed
    assert all(reason == "GOAWAY error code 0xb" for reason in closed), closed
    assert "GOAWAY error code 0xb" in str(result.error)
