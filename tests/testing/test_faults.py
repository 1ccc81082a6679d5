"""Fault injection and connection behaviour, over real TLS + HTTP/2."""

from __future__ import annotations

import json
import re
import time

import pytest

from apnskit.testing import MockApnsServer
from support.h2client import KEY_ID, SIGNING_KEY, TEAM_ID, H2TestClient, bearer


def _request(client: H2TestClient) -> tuple[list[tuple[str, str]], bytes]:
    return client.headers_for(), b'{"aps":{"alert":"hi"}}'


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (503, None, "ServiceUnavailable"),
        (500, None, "InternalServerError"),
        (429, None, "TooManyRequests"),
        (503, "Shutdown", "Shutdown"),
    ],
)
def test_fail_next(server: MockApnsServer, client: H2TestClient, status, reason, expected) -> None:
    server.faults.fail_next(2, status=status, reason=reason)
    first, second, third = (client.push() for _ in range(3))
    assert (first.status, first.reason) == (status, expected)
    assert (second.status, second.reason) == (status, expected)
    assert third.status == 200
    assert [r.status for r in server.received] == [status, status, 200]
    assert server.received[0].payload == {"aps": {"alert": "hi"}}
    assert not server.faults.pending


def test_fail_next_applies_even_to_invalid_requests(
    server: MockApnsServer, client: H2TestClient
) -> None:
    server.faults.fail_next(1)
    assert client.push(token="zz").status == 503
    assert client.push(token="zz").reason == "BadDeviceToken"


def test_fail_next_rejects_other_statuses(server: MockApnsServer) -> None:
    with pytest.raises(ValueError, match="429, 500 or 503"):
        server.faults.fail_next(1, status=404)
    with pytest.raises(ValueError, match="n"):
        server.faults.fail_next(-1)
    with pytest.raises(ValueError, match="seconds"):
        server.faults.delay_next(1, -0.5)
    with pytest.raises(ValueError, match="max_concurrent_streams"):
        server.faults.set_max_concurrent_streams(0)


def test_expire_token_next_and_renewal(server: MockApnsServer, client: H2TestClient) -> None:
    assert client.push().status == 200
    server.faults.expire_token_next(1)
    response = client.push()
    assert (response.status, response.reason) == (403, "ExpiredProviderToken")
    # The client renews its token at once: not counted as too many updates.
    assert client.push(authorization=bearer(int(server.now()))).status == 200


def test_refuse_next_resets_with_refused_stream(
    server: MockApnsServer, client: H2TestClient
) -> None:
    server.faults.refuse_next(1)
    refused = client.push()
    assert refused.reset_code == 7
    assert refused.status is None
    assert client.push().status == 200
    assert server.received[0].outcome == "reset"
    assert server.received[0].status is None


def test_goaway_after_n(server: MockApnsServer, client: H2TestClient) -> None:
    assert client.push().status == 200  # lifts the stream limit
    client.read_until(lambda: client.max_streams > 1, 2)
    server.faults.goaway_after(2)
    responses = client.send_many([_request(client)] * 5)
    statuses = [r.status for r in responses]
    assert statuses[:2] == [200, 200]
    assert client.goaway is not None
    assert client.goaway.error_code == 0
    # The stream that met the GOAWAY and later ones were not processed: safe to retry.
    assert client.goaway.last_stream_id == responses[1].stream_id
    assert json.loads(client.goaway.additional_data) == {"reason": "Shutdown"}
    assert all(r.status is None for r in responses[2:])
    client.read_until(lambda: False, 3)  # the server closes after its linger time
    assert client.closed
    assert [r.outcome for r in server.received] == ["reply", "reply", "reply", "goaway"]


def test_goaway_with_chosen_fields(server: MockApnsServer, client: H2TestClient) -> None:
    server.faults.goaway_after(0, last_stream_id=0, error_code=2, reason="InternalServerError")
    response = client.push()
    assert response.status is None
    assert client.goaway is not None
    assert (client.goaway.last_stream_id, client.goaway.error_code) == (0, 2)
    assert json.loads(client.goaway.additional_data) == {"reason": "InternalServerError"}


def test_goaway_only_affects_its_connection(server: MockApnsServer, connect) -> None:
    first = connect()
    server.faults.goaway_after(0)
    first.push()
    assert first.goaway is not None
    second = connect()
    assert second.push().status == 200


def test_drop_after_n_closes_with_requests_in_flight(
    server: MockApnsServer, client: H2TestClient
) -> None:
    assert client.push().status == 200
    client.read_until(lambda: client.max_streams > 1, 2)
    server.faults.drop_after(1)
    responses = client.send_many([_request(client)] * 4)
    assert responses[0].status == 200
    assert all(r.status is None for r in responses[1:])
    assert client.closed
    assert client.goaway is None
    assert server.received[2].outcome == "drop"


def test_delay_next(server: MockApnsServer, client: H2TestClient) -> None:
    assert client.push().status == 200
    client.read_until(lambda: client.max_streams > 1, 2)
    server.faults.delay_next(1, 0.3)
    start = time.monotonic()
    slow = client.send(*_request(client))
    fast = client.send(*_request(client))
    [fast_response] = client.wait([fast])
    assert fast_response.status == 200
    assert not client.responses[slow].done
    [slow_response] = client.wait([slow])
    assert slow_response.status == 200
    assert time.monotonic() - start >= 0.3
    assert server.received[1].outcome == "delayed"


def test_delay_applies_to_rejections_too(server: MockApnsServer, client: H2TestClient) -> None:
    server.faults.delay_next(1, 0.1)
    server.faults.fail_next(1, status=500)
    start = time.monotonic()
    response = client.push()
    assert response.status == 500
    assert time.monotonic() - start >= 0.1


def test_never_reply_next(server: MockApnsServer, client: H2TestClient) -> None:
    assert client.push().status == 200
    client.read_until(lambda: client.max_streams > 1, 2)
    server.faults.never_reply_next(1)
    silent = client.send(*_request(client))
    answered = client.send(*_request(client))
    assert client.wait([answered])[0].status == 200
    with pytest.raises(TimeoutError):
        client.wait([silent], timeout=0.3)
    assert server.received[1].outcome == "no_reply"
    assert server.received[1].payload == {"aps": {"alert": "hi"}}


def test_faults_are_taken_in_documented_order(server: MockApnsServer, client: H2TestClient) -> None:
    server.faults.fail_next(1, status=500)
    server.faults.refuse_next(1)
    server.faults.expire_token_next(1)
    assert server.faults.pending
    assert client.push().reset_code == 7
    assert client.push().status == 500
    assert client.push().reason == "ExpiredProviderToken"
    assert not server.faults.pending


def test_clear_cancels_pending_faults(server: MockApnsServer, client: H2TestClient) -> None:
    server.faults.fail_next(3)
    server.faults.drop_after(0)
    server.faults.clear()
    assert not server.faults.pending
    assert client.push().status == 200
    # Faults scripted after a clear still reach the server.
    server.faults.fail_next(1)
    assert client.push().status == 503
    assert client.push().status == 200


# -- stream limit -----------------------------------------------------------------------------


def test_token_connection_holds_one_stream_until_success(
    server: MockApnsServer, client: H2TestClient
) -> None:
    assert client.max_streams == 1
    assert client.push(authorization="bearer bad.token.here").status == 403
    assert client.max_streams == 1
    assert client.push().status == 200
    client.read_until(lambda: client.max_streams > 1, 2)
    assert client.max_streams == 1000


def test_certificate_connection_starts_with_full_limit(connect) -> None:
    with MockApnsServer(auth="certificate", max_concurrent_streams=50) as srv:
        cert = srv.issue_client_certificate(["com.example.app"])
        client = connect(srv, cert=cert)
        assert client.max_streams == 50


def test_set_max_concurrent_streams_on_live_connections(server: MockApnsServer, connect) -> None:
    client = connect()
    assert client.push().status == 200
    client.read_until(lambda: client.max_streams > 1, 2)
    held = connect()  # still held at one stream: the new limit waits for its first success
    server.faults.set_max_concurrent_streams(5)
    assert server.max_concurrent_streams == 5
    client.read_until(lambda: client.max_streams == 5, 2)
    assert client.max_streams == 5
    responses = client.send_many([_request(client)] * 12)
    assert [r.status for r in responses] == [200] * 12
    assert held.max_streams == 1
    assert held.push().status == 200
    held.read_until(lambda: held.max_streams > 1, 2)
    assert held.max_streams == 5


def test_stream_beyond_the_limit_is_refused(server: MockApnsServer, connect) -> None:
    # RFC 9113 section 5.1.2: REFUSED_STREAM; the client retries, the connection goes on.
    # A limit of one even after the first success, which would otherwise raise it at once.
    server.faults.set_max_concurrent_streams(1)
    client = connect()
    first, second = client.send_past_the_limit(2)
    client.wait([first, second])
    assert client.responses[first].status == 200
    assert client.responses[second].reset_code == 7  # REFUSED_STREAM
    assert client.goaway is None
    assert client.push().status == 200  # retried: the connection still serves
    [error] = server.errors
    assert error.startswith("connection 1: TooManyStreams: stream 3 exceeds")
    assert "refused with RST_STREAM REFUSED_STREAM" in error


def test_strict_stream_limit_is_a_protocol_error(connect) -> None:
    with MockApnsServer(strict_stream_limit=True, max_concurrent_streams=1) as srv:
        srv.trust_key(KEY_ID, TEAM_ID, SIGNING_KEY.public_key())
        client = connect(srv)
        client.send_past_the_limit(2)
        client.read_until(lambda: client.goaway is not None, 5)
        assert client.goaway is not None
        assert client.goaway.error_code == 1  # PROTOCOL_ERROR
        assert client.goaway.last_stream_id == 1
        assert client.responses[1].status == 200
        [error] = srv.errors
        assert "stream 3 exceeds SETTINGS_MAX_CONCURRENT_STREAMS 1" in error
        assert "GOAWAY PROTOCOL_ERROR" in error


def test_pipelined_throughput_smoke(server: MockApnsServer, client: H2TestClient) -> None:
    assert client.push().status == 200
    client.read_until(lambda: client.max_streams > 1, 2)
    responses = client.send_many([_request(client)] * 300)
    assert {r.status for r in responses} == {200}
    assert len(server.received) == 301


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_GIVEN_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


@pytest.mark.parametrize("script", ["fail_next", "expire_token_next"])
def test_forced_replies_carry_ids_like_validated_ones(
    server: MockApnsServer, client: H2TestClient, script: str
) -> None:
    getattr(server.faults, script)(2)
    echoed = client.push(extra=[("apns-id", _GIVEN_ID)])
    made = client.push()
    expected = {"fail_next": 503, "expire_token_next": 403}[script]
    assert echoed.status == expected
    assert made.status == expected
    # Apple: apns-id is the request's or one APNs made; sandbox adds apns-unique-id.
    assert echoed.headers["apns-id"] == _GIVEN_ID
    assert _UUID.fullmatch(made.headers["apns-id"])
    for response in (echoed, made):
        assert _UUID.fullmatch(response.headers["apns-unique-id"])
    assert echoed.headers["apns-unique-id"] != made.headers["apns-unique-id"]
    assert [r.apns_id for r in server.received] == [_GIVEN_ID, made.headers["apns-id"]]


def test_forced_reply_in_production_has_no_unique_id(connect) -> None:
    with MockApnsServer(environment="production") as production:
        production.trust_key(KEY_ID, TEAM_ID, SIGNING_KEY.public_key())
        production.faults.fail_next(1, status=429)
        response = connect(production).push()
    assert response.status == 429
    assert _UUID.fullmatch(response.headers["apns-id"])
    assert "apns-unique-id" not in response.headers


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/4/broadcasts/apps/com.example.app", b'{"aps":{"event":"update"}}'),
        ("GET", "/1/apps/com.example.app/all-channels", b""),
    ],
)
def test_forced_replies_to_broadcast_requests_echo_the_request_id(
    server: MockApnsServer, client: H2TestClient, method: str, path: str, body: bytes
) -> None:
    server.faults.fail_next(2, status=500)
    given, made = (
        client.wait(
            [
                client.send(
                    client.headers_for(method=method, path=path, topic=None, extra=extra),
                    body,
                )
            ]
        )[0]
        for extra in ([("apns-request-id", _GIVEN_ID)], [])
    )
    assert given.status == made.status == 500
    assert given.headers["apns-request-id"] == _GIVEN_ID
    assert _UUID.fullmatch(made.headers["apns-request-id"])


def test_received_counts_requests_answered_by_goaway_and_says_so(
    server: MockApnsServer, client: H2TestClient
) -> None:
    # Issue 12: `received` holds requests that got no HTTP answer; its docs now say so.
    assert client.push().status == 200
    server.faults.goaway_after(0)
    client.send_many([_request(client)])
    goaway = [r for r in server.received if r.outcome == "goaway"]
    assert len(goaway) == 1
    assert goaway[0].status is None
    doc = MockApnsServer.received.__doc__ or ""
    assert "GOAWAY" in doc
    assert 'outcome == "goaway"' in doc
    assert "status" in doc
