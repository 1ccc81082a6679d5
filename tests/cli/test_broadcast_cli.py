"""apnskit channels create|list|get|delete and apnskit broadcast, against the mock server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Run, TokenServer, closed_port

from apnskit.testing import MockApnsServer

REQUEST_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
STATE = '{"score": "2 - 1"}'


@pytest.fixture
def bundle() -> str:
    # The server is shared by the module: a bundle of its own keeps each test's channels apart.
    return f"com.example.app{uuid.uuid4().hex[:8]}"


def channels(apns: TokenServer, action: str, bundle: str, *extra: str) -> list[str]:
    return ["channels", action, *apns.args, "--bundle-id", bundle, *extra]


def broadcast(apns: TokenServer, bundle: str, channel: str, *extra: str) -> list[str]:
    return ["broadcast", *apns.args, "--bundle-id", bundle, "--channel", channel, *extra]


def management_requests(server: MockApnsServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.received if r.path.startswith("/1/apps/")]


# -------------------------------------------------------------------------------- channels


def test_create_list_get_delete(apns: TokenServer, bundle: str, cli) -> None:
    run: Run = cli(*channels(apns, "create", bundle, "--policy", "most-recent"))
    assert run.code == 0, run.err
    channel_id = run.out.strip()  # the id alone, for CHANNEL=$(apnskit channels create ...)
    stored = apns.server.channels(bundle)
    assert [c.channel_id for c in stored] == [channel_id]
    assert stored[0].message_storage_policy == 1

    second = cli(*channels(apns, "create", bundle)).out.strip()  # default: no storage
    assert apns.server.channels(bundle)[1].message_storage_policy == 0

    run = cli(*channels(apns, "list", bundle))
    assert run.code == 0, run.err
    assert run.out.splitlines() == [channel_id, second]

    run = cli(*channels(apns, "get", bundle, "--channel", channel_id))
    assert run.code == 0, run.err
    assert run.out.strip() == (
        f"channel {channel_id}  policy most-recent (1)  push-type LiveActivity"
    )

    run = cli(*channels(apns, "delete", bundle, "--channel", channel_id))
    assert (run.code, run.out.strip()) == (0, f"deleted {channel_id}")
    assert [c.channel_id for c in apns.server.channels(bundle)] == [second]
    assert management_requests(apns.server) == [
        f"POST /1/apps/{bundle}/channels",
        f"POST /1/apps/{bundle}/channels",
        f"GET /1/apps/{bundle}/all-channels",
        f"GET /1/apps/{bundle}/channels",
        f"DELETE /1/apps/{bundle}/channels",
    ]


@pytest.mark.parametrize(
    ("policy", "stored"), [("no-storage", 0), ("0", 0), ("most-recent", 1), ("1", 1)]
)
def test_create_policy_spellings(
    apns: TokenServer, bundle: str, cli, policy: str, stored: int
) -> None:
    run = cli(*channels(apns, "create", bundle, "--policy", policy))
    assert run.code == 0, run.err
    assert apns.server.channels(bundle)[0].message_storage_policy == stored
    assert json.loads(apns.server.received[0].body)["message-storage-policy"] == stored


def test_json_output_and_request_id(apns: TokenServer, bundle: str, cli) -> None:
    run = cli(*channels(apns, "create", bundle, "--json", "--request-id", REQUEST_ID))
    assert run.code == 0, run.err
    record = json.loads(run.out)
    channel_id = apns.server.channels(bundle)[0].channel_id
    assert record == {
        "action": "create",
        "outcome": "accepted",
        "channel_id": channel_id,
        "bundle_id": bundle,
        "message_storage_policy": 0,
        "push_type": "LiveActivity",
        "request_id": REQUEST_ID,
    }
    assert apns.server.received[0].headers["apns-request-id"] == REQUEST_ID

    record = json.loads(cli(*channels(apns, "get", bundle, "--channel", channel_id, "--json")).out)
    assert (record["action"], record["channel_id"], record["message_storage_policy"]) == (
        "get",
        channel_id,
        0,
    )
    assert len(record["request_id"]) == 36  # made by APNs when not given

    record = json.loads(cli(*channels(apns, "list", bundle, "--json")).out)
    assert record == {
        "action": "list",
        "outcome": "accepted",
        "bundle_id": bundle,
        "channels": [channel_id],
    }
    run = cli(*channels(apns, "delete", bundle, "--channel", channel_id, "--json"))
    assert json.loads(run.out) == {
        "action": "delete",
        "outcome": "accepted",
        "channel_id": channel_id,
    }
    assert json.loads(cli(*channels(apns, "list", bundle, "--json")).out)["channels"] == []


def test_unknown_channel_exits_1(apns: TokenServer, bundle: str, cli) -> None:
    missing = "dHN0LXNyY2gtY2hubA=="
    run = cli(*channels(apns, "get", bundle, "--channel", missing))
    assert run.code == 1
    assert run.out == ""
    assert "ChannelNotRegistered" in run.err
    assert run.err.startswith("apnskit channels get: ")

    run = cli(*channels(apns, "delete", bundle, "--channel", missing, "--json"))
    assert run.code == 1
    record = json.loads(run.out)
    assert (record["outcome"], record["status"], record["reason"]) == (
        "rejected",
        400,
        "ChannelNotRegistered",
    )
    assert len(record["request_id"]) == 36


def test_channel_limit_exits_1(apns: TokenServer, bundle: str, cli) -> None:
    apns.server.max_channels = 1
    try:
        assert cli(*channels(apns, "create", bundle)).code == 0
        run = cli(*channels(apns, "create", bundle))
    finally:
        apns.server.max_channels = 10_000
    assert run.code == 1
    assert "CannotCreateChannelConfig" in run.err
    assert len(apns.server.channels(bundle)) == 1


def test_feature_not_enabled_exits_1(apns: TokenServer, bundle: str, cli) -> None:
    apns.server.set_broadcast_enabled(bundle, False)
    run = cli(*channels(apns, "list", bundle))
    assert run.code == 1
    assert "403 FeatureNotEnabled" in run.err


def test_create_is_sent_once_after_500(apns: TokenServer, bundle: str, cli) -> None:
    # A 500 may have made the channel: create is not resent after it.
    apns.server.faults.fail_next(1, status=500, reason="InternalServerError")
    run = cli(*channels(apns, "create", bundle))
    assert run.code == 1
    assert "InternalServerError" in run.err
    assert management_requests(apns.server) == [f"POST /1/apps/{bundle}/channels"]
    assert apns.server.channels(bundle) == []
    # A read is retried.
    apns.server.faults.fail_next(1, status=503)
    assert cli(*channels(apns, "list", bundle)).code == 0


def test_create_is_resent_after_503(apns: TokenServer, bundle: str, cli) -> None:
    # 503 says APNs did nothing, so resending the create cannot make two channels.
    apns.server.faults.fail_next(1, status=503, reason="ServiceUnavailable")
    run = cli(*channels(apns, "create", bundle))
    assert run.code == 0
    assert len(apns.server.channels(bundle)) == 1
    assert management_requests(apns.server) == [f"POST /1/apps/{bundle}/channels"] * 2


def test_no_server_exits_3(apns: TokenServer, bundle: str, cli) -> None:
    run = cli(*channels(apns, "list", bundle, "--port", str(closed_port()), "--attempts", "1"))
    assert run.code == 3
    assert "ConnectError" in run.err


def test_management_host_and_port(apns: TokenServer, bundle: str, cli) -> None:
    # Channel requests follow --management-host/--management-port, not --host/--port.
    port = str(closed_port())
    args = ["--management-host", "127.0.0.1", "--management-port", port, "--attempts", "1"]
    run = cli(*channels(apns, "list", bundle, *args))
    assert run.code == 3
    assert port in run.err
    assert apns.server.received == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--policy", "2"], "invalid choice"),
        (["--request-id", "nope"], "apns_request_id"),
        (["--bundle-id", "com.example.app.push-type.liveactivity"], "bundle_id"),
    ],
)
def test_create_usage_errors_exit_2(
    apns: TokenServer, bundle: str, cli, extra: list[str], message: str
) -> None:
    run = cli(*channels(apns, "create", bundle, *extra))
    assert run.code == 2
    assert message in run.err
    assert apns.server.received == []


def test_usage_errors_exit_2(apns: TokenServer, cli) -> None:
    run = cli("channels", "list", *apns.args)
    assert (run.code, "--bundle-id: required" in run.err) == (2, True)
    run = cli("channels", "get", *apns.args, "--bundle-id", "com.example.app")
    assert run.code == 2
    assert "--channel" in run.err
    run = cli("channels", "get", *apns.args, "--bundle-id", "com.example.app", "--channel", "!")
    assert run.code == 2
    assert "channel_id" in run.err
    run = cli("channels", "list", *apns.auth, "--bundle-id", "com.example.app")  # no --sandbox
    assert run.code == 2
    assert "--sandbox or --production" in run.err
    run = cli("channels", "list", "--bundle-id", "com.example.app", *apns.connection)
    assert run.code == 2
    assert "credentials" in run.err
    assert cli("channels").code == 2
    assert apns.server.received == []


# -------------------------------------------------------------------------------- broadcast


@pytest.fixture
def channel(apns: TokenServer, bundle: str) -> str:
    return apns.server.create_channel(bundle, 1)


def test_broadcast_update_built_from_options(
    apns: TokenServer, bundle: str, channel: str, cli
) -> None:
    before = int(time.time())
    run = cli(
        *broadcast(apns, bundle, channel, "--content-state", STATE, "--title", "Goal!"),
        "--body",
        "2 - 1",
        "--stale-date",
        "1900000000",
        "--request-id",
        REQUEST_ID,
    )
    assert run.code == 0, run.err
    assert run.out.split() == [
        "accepted",
        "200",
        "channel",
        channel,
        "apns-request-id",
        REQUEST_ID,
    ]
    (received,) = apns.server.received
    assert received.is_broadcast
    assert received.path == f"/4/broadcasts/apps/{bundle}"
    assert received.channel_id == channel
    assert received.headers["apns-push-type"] == "liveactivity"
    assert received.headers["apns-request-id"] == REQUEST_ID
    assert "apns-priority" not in received.headers
    aps = received.payload["aps"]
    assert before <= aps.pop("timestamp") <= int(time.time())  # default: now
    assert aps == {
        "event": "update",
        "content-state": {"score": "2 - 1"},
        "alert": {"title": "Goal!", "body": "2 - 1"},
        "stale-date": 1900000000,
    }


def test_broadcast_end_with_headers(apns: TokenServer, bundle: str, channel: str, cli) -> None:
    run = cli(
        *broadcast(apns, bundle, channel, "--event", "end", "--content-state", STATE),
        "--timestamp",
        "1700000000",
        "--dismissal-date",
        "1700003600",
        "--alert",
        "Full time",
        "--priority",
        "5",
        "--expiration",
        "1900000000",
        "--json",
    )
    assert run.code == 0, run.err
    record = json.loads(run.out)
    assert record["outcome"] == "accepted"
    assert record["channel_id"] == channel
    assert (record["status"], record["reason"], record["error"]) == (200, None, None)
    assert len(record["request_id"]) == 36
    received = apns.server.received[0]
    assert received.headers["apns-priority"] == "5"
    assert received.headers["apns-expiration"] == "1900000000"
    assert received.payload == {
        "aps": {
            "event": "end",
            "timestamp": 1700000000,
            "content-state": {"score": "2 - 1"},
            "alert": "Full time",
            "dismissal-date": 1700003600,
        }
    }


def test_broadcast_payload_file_and_stdin(
    apns: TokenServer, bundle: str, channel: str, cli, tmp_path: Path
) -> None:
    payload = {"aps": {"event": "update", "timestamp": 1700000000, "content-state": {"s": 1}}}
    path = tmp_path / "update.json"
    path.write_text(json.dumps(payload))
    assert cli(*broadcast(apns, bundle, channel, "--payload", str(path))).code == 0
    run = cli(*broadcast(apns, bundle, channel, "--payload", "-"), stdin=json.dumps(payload))
    assert run.code == 0, run.err
    assert [r.payload for r in apns.server.received] == [payload, payload]


def test_broadcast_rejections_exit_1(apns: TokenServer, bundle: str, channel: str, cli) -> None:
    no_storage = apns.server.create_channel(bundle, 0)
    run = cli(*broadcast(apns, bundle, no_storage, "--content-state", STATE, "--expiration", "9"))
    assert run.code == 1
    assert run.out.startswith("rejected")
    assert "BadExpirationDate" in run.out
    run = cli(*broadcast(apns, bundle, no_storage, "--content-state", STATE, "--expiration", "0"))
    assert run.code == 0, run.err

    unknown = "dHN0LXNyY2gtY2hubA=="
    run = cli(*broadcast(apns, bundle, unknown, "--content-state", STATE, "--json"))
    assert run.code == 1
    record = json.loads(run.out)
    assert (record["outcome"], record["status"], record["reason"]) == (
        "rejected",
        400,
        "ChannelNotRegistered",
    )

    apns.server.set_broadcast_enabled(bundle, False)
    run = cli(*broadcast(apns, bundle, channel, "--content-state", STATE))
    assert run.code == 1
    assert "FeatureNotEnabled" in run.out


def test_broadcast_without_server_exits_3(apns: TokenServer, bundle: str, cli) -> None:
    args = ["--port", str(closed_port()), "--attempts", "1", "--content-state", STATE]
    run = cli(*broadcast(apns, bundle, "dHN0LXNyY2gtY2hubA==", *args))
    assert run.code == 3
    assert run.out.startswith("failed")
    assert "ConnectError" in run.out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--content-state: required"),
        (["--content-state", "{nope"], "--content-state: not valid JSON"),
        (["--content-state", "[1]"], "not an object"),
        (["--content-state", STATE, "--alert", "a", "--title", "t"], "--alert"),
        (["--content-state", STATE, "--payload", "x.json"], "--payload"),
        (["--content-state", STATE, "--priority", "7"], "invalid choice"),
        (["--content-state", STATE, "--event", "start"], "invalid choice"),
        (["--content-state", STATE, "--request-id", "abc"], "apns_request_id"),
        (["--content-state", STATE, "--timestamp", "1700000000000"], "timestamp"),
    ],
)
def test_broadcast_usage_errors_exit_2(
    apns: TokenServer, bundle: str, cli, extra: list[str], message: str
) -> None:
    run = cli(*broadcast(apns, bundle, "dHN0LXNyY2gtY2hubA==", *extra))
    assert run.code == 2
    assert message in run.err
    assert apns.server.received == []


def test_broadcast_payload_file_must_be_a_live_activity_update(
    apns: TokenServer, bundle: str, cli, tmp_path: Path
) -> None:
    path = tmp_path / "alert.json"
    path.write_text('{"aps": {"alert": "hi"}}')
    run = cli(*broadcast(apns, bundle, "dHN0LXNyY2gtY2hubA==", "--payload", str(path)))
    assert run.code == 2
    assert "payload.event" in run.err
    assert cli(*broadcast(apns, bundle, "not base64!", "--content-state", STATE)).code == 2
    assert apns.server.received == []


# -------------------------------------------------------------------------------- certificates


@pytest.fixture(scope="module")
def cert_server() -> Iterator[tuple[MockApnsServer, str, str]]:
    with MockApnsServer(auth="certificate") as server:
        cert, key = server.issue_client_certificate(["com.example.certapp"])
        yield server, cert, key


def test_certificate_auth_takes_the_bundle_id_from_the_certificate(
    cert_server: tuple[MockApnsServer, str, str], cli
) -> None:
    server, cert, key = cert_server
    connection = ["--host", server.host, "--port", str(server.port), "--ca-file", server.ca_file]
    auth = ["--cert", cert, "--cert-key", key, *connection]
    run = cli("channels", "create", *auth)
    assert run.code == 0, run.err
    channel_id = run.out.strip()
    assert [c.channel_id for c in server.channels("com.example.certapp")] == [channel_id]
    run = cli("broadcast", *auth, "--channel", channel_id, "--content-state", STATE)
    assert run.code == 0, run.err
    assert server.received[-1].path == "/4/broadcasts/apps/com.example.certapp"
