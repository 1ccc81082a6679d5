"""Every rejection reason, in Apple's order, over real TLS + HTTP/2."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from apnskit.testing import MockApnsServer
from support.h2client import KEY_ID, TEAM_ID, TOKEN, TOPIC, H2TestClient, bearer


def test_valid_notification_is_accepted_and_recorded(
    server: MockApnsServer, client: H2TestClient
) -> None:
    apns_id = "123e4567-e89b-12d3-a456-426614174000"
    response = client.push(extra=[("apns-push-type", "alert"), ("apns-id", apns_id)])
    assert response.status == 200
    assert response.headers["apns-id"] == apns_id
    assert response.body == b""
    [record] = server.received
    assert record.status == 200
    assert record.outcome == "reply"
    assert record.device_token == TOKEN
    assert record.topic == TOPIC
    assert record.push_type == "alert"
    assert record.payload == {"aps": {"alert": "hi"}}
    assert record.apns_id == apns_id


def test_generated_apns_id_is_lowercase_uuid4_and_unique_id_in_sandbox(
    client: H2TestClient,
) -> None:
    first = client.push()
    second = client.push()
    for response in (first, second):
        apns_id = response.headers["apns-id"]
        assert apns_id == apns_id.lower()
        assert len(apns_id) == 36
        assert apns_id[14] == "4"  # a version 4 UUID
        assert len(response.headers["apns-unique-id"]) == 36
    assert first.headers["apns-id"] != second.headers["apns-id"]


def test_production_has_no_unique_id(connect) -> None:
    with MockApnsServer(environment="production") as prod:
        prod.trust_key(KEY_ID, TEAM_ID, _public())
        response = connect(prod).push()
    assert response.status == 200
    assert "apns-unique-id" not in response.headers


def _public() -> ec.EllipticCurvePublicKey:
    from support.h2client import SIGNING_KEY

    return SIGNING_KEY.public_key()


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"method": "GET"}, 405, "MethodNotAllowed"),
        ({"method": "PUT"}, 405, "MethodNotAllowed"),
        ({"path": "/3/devices/abcd"}, 404, "BadPath"),
        ({"path": "/2/device/abcd"}, 404, "BadPath"),
        ({"path": "/3/device/ab/cd"}, 404, "BadPath"),
        ({"path": "/3/device/"}, 400, "MissingDeviceToken"),
        ({"token": "xyz1"}, 400, "BadDeviceToken"),
        ({"token": "abc"}, 400, "BadDeviceToken"),
        ({"topic": None}, 400, "MissingTopic"),
        ({"topic": "com example"}, 400, "BadTopic"),
        ({"topic": ""}, 400, "BadTopic"),
        ({"extra": [("apns-push-type", "telepathy")]}, 400, "InvalidPushType"),
        ({"extra": [("apns-push-type", "voip")]}, 400, "InvalidPushType"),
        (
            {"topic": TOPIC + ".voip", "extra": [("apns-push-type", "alert")]},
            400,
            "InvalidPushType",
        ),
        (
            {"topic": TOPIC + ".voip", "extra": [("apns-push-type", "liveactivity")]},
            400,
            "InvalidPushType",
        ),
        ({"extra": [("apns-priority", "7")]}, 400, "BadPriority"),
        ({"extra": [("apns-priority", "high")]}, 400, "BadPriority"),
        (
            {"extra": [("apns-push-type", "background"), ("apns-priority", "10")]},
            400,
            "BadPriority",
        ),
        ({"extra": [("apns-expiration", "-1")]}, 400, "BadExpirationDate"),
        ({"extra": [("apns-expiration", "tomorrow")]}, 400, "BadExpirationDate"),
        ({"extra": [("apns-collapse-id", "x" * 65)]}, 400, "BadCollapseId"),
        ({"extra": [("apns-collapse-id", "é" * 33)]}, 400, "BadCollapseId"),
        ({"extra": [("apns-id", "not-a-uuid")]}, 400, "BadMessageId"),
        ({"extra": [("apns-id", "123e4567e89b12d3a456426614174000")]}, 400, "BadMessageId"),
        ({"body": b""}, 400, "PayloadEmpty"),
        ({"body": b"{" + b" " * 4094 + b"}!"}, 413, "PayloadTooLarge"),
        ({"body": b"not json"}, 400, "BadPayload"),
        ({"body": b"[1, 2]"}, 400, "BadPayload"),
        ({"body": b"\xff\xfe"}, 400, "BadPayload"),
    ],
)
def test_rejections(client: H2TestClient, server: MockApnsServer, kwargs, status, reason) -> None:
    response = client.push(**kwargs)
    assert (response.status, response.reason) == (status, reason)
    assert "timestamp" not in response.json
    assert response.headers["apns-id"]
    assert server.received[-1].status == status
    assert server.received[-1].reason == reason


@pytest.mark.parametrize(
    ("kwargs"),
    [
        {
            "extra": [("apns-push-type", "background"), ("apns-priority", "5")],
            "body": b'{"aps":{"content-available":1}}',
        },
        {"extra": [("apns-priority", "1"), ("apns-expiration", "0")]},
        {"extra": [("apns-collapse-id", "x" * 64)]},
        {"extra": [("apns-id", "123E4567-E89B-12D3-A456-426614174000")]},
        {"topic": TOPIC + ".voip", "extra": [("apns-push-type", "voip")]},
        {"topic": TOPIC + ".complication", "extra": [("apns-push-type", "complication")]},
        {"topic": TOPIC + ".pushkit.fileprovider", "extra": [("apns-push-type", "fileprovider")]},
        {"topic": TOPIC + ".location-query", "extra": [("apns-push-type", "location")]},
        {"topic": TOPIC + ".push-type.liveactivity", "extra": [("apns-push-type", "liveactivity")]},
        {"topic": TOPIC + ".voip-ptt", "extra": [("apns-push-type", "pushtotalk")]},
        {"topic": TOPIC + ".push-type.widgets", "extra": [("apns-push-type", "widgets")]},
        {"topic": TOPIC + ".push-type.controls", "extra": [("apns-push-type", "controls")]},
        {"topic": "com.example.mdm-topic", "extra": [("apns-push-type", "mdm")]},
        {"body": b"{" + b" " * 4094 + b"}"},
    ],
)
def test_valid_variants_are_accepted(client: H2TestClient, kwargs) -> None:
    response = client.push(**kwargs)
    assert (response.status, response.reason) == (200, None)


def test_voip_payload_limit_is_5120(client: H2TestClient) -> None:
    voip = {"topic": TOPIC + ".voip", "extra": [("apns-push-type", "voip")]}
    assert client.push(body=b"{" + b" " * 5118 + b"}", **voip).status == 200
    too_big = client.push(body=b"{" + b" " * 5119 + b"}", **voip)
    assert (too_big.status, too_big.reason) == (413, "PayloadTooLarge")
    # Without a push type, the .voip topic still means VoIP.
    assert client.push(body=b"{" + b" " * 5118 + b"}", topic=TOPIC + ".voip").status == 200


def test_duplicate_headers(client: H2TestClient) -> None:
    headers = client.headers_for(extra=[("apns-priority", "10"), ("apns-priority", "5")])
    [response] = client.wait([client.send(headers)])
    assert (response.status, response.reason) == (400, "DuplicateHeaders")


def test_checks_run_in_apples_order(client: H2TestClient) -> None:
    everything_wrong = {
        "token": "zz",
        "topic": None,
        "extra": [("apns-priority", "7"), ("apns-expiration", "x"), ("apns-id", "x")],
        "body": b"",
    }
    assert client.push(method="GET", **everything_wrong).reason == "MethodNotAllowed"
    assert client.push(**everything_wrong).reason == "BadDeviceToken"
    everything_wrong["token"] = TOKEN
    assert client.push(**everything_wrong).reason == "MissingTopic"
    everything_wrong["topic"] = TOPIC
    assert client.push(**everything_wrong).reason == "BadPriority"
    everything_wrong["extra"] = everything_wrong["extra"][1:]
    assert client.push(**everything_wrong).reason == "BadExpirationDate"
    everything_wrong["extra"] = everything_wrong["extra"][1:]
    assert client.push(**everything_wrong).reason == "BadMessageId"
    everything_wrong["extra"] = []
    assert client.push(**everything_wrong).reason == "PayloadEmpty"


def test_authentication_comes_before_the_device_token(client: H2TestClient) -> None:
    response = client.push(token="zz", authorization="bearer nonsense")
    assert (response.status, response.reason) == (403, "InvalidProviderToken")


# -- registry ---------------------------------------------------------------------------------


def test_unregistered_token_answers_410_with_timestamp(
    server: MockApnsServer, client: H2TestClient
) -> None:
    since = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    server.unregister(TOKEN, since=since)
    response = client.push()
    assert (response.status, response.reason) == (410, "Unregistered")
    assert response.json == {"reason": "Unregistered", "timestamp": int(since.timestamp() * 1000)}
    server.register(TOKEN, TOPIC)
    assert client.push().status == 200


def test_unregister_defaults_to_now(server: MockApnsServer, client: H2TestClient) -> None:
    before = time.time() * 1000
    server.unregister(TOKEN.upper())
    response = client.push()
    assert response.status == 410
    assert before - 1 <= response.json["timestamp"] <= time.time() * 1000 + 1


def test_token_registered_for_another_topic(server: MockApnsServer, client: H2TestClient) -> None:
    server.register(TOKEN, "com.example.other")
    response = client.push()
    assert (response.status, response.reason) == (400, "DeviceTokenNotForTopic")
    # The suffix is not part of the bundle ID.
    server.register(TOKEN, TOPIC + ".voip")
    assert client.push().status == 200


def test_strict_mode_rejects_unknown_tokens(server: MockApnsServer, client: H2TestClient) -> None:
    server.strict = True
    assert server.strict
    assert client.push().reason == "BadDeviceToken"
    server.register(TOKEN, TOPIC)
    assert client.push().status == 200
    server.unregister("cd" * 32)
    assert client.push("cd" * 32).reason == "Unregistered"


@pytest.mark.parametrize("bad", ["", "abc", "xyz0", "ab cd"])
def test_registry_rejects_malformed_tokens(server: MockApnsServer, bad: str) -> None:
    with pytest.raises(ValueError, match="device_token"):
        server.register(bad, TOPIC)
    with pytest.raises(ValueError, match="device_token"):
        server.unregister(bad)


def test_unregister_needs_aware_datetime(server: MockApnsServer) -> None:
    with pytest.raises(ValueError, match="since"):
        server.unregister(TOKEN, since=datetime(2024, 1, 1))


# -- provider tokens --------------------------------------------------------------------------


def test_missing_provider_token(connect) -> None:
    response = connect(authorization="").push()
    assert (response.status, response.reason) == (403, "MissingProviderToken")


@pytest.mark.parametrize(
    "authorization",
    [
        "bearer",
        "basic abc",
        "bearer a.b",
        "bearer !!!.!!!.!!!",
        "bearer " + "e30.e30." + "A" * 86,
    ],
)
def test_malformed_provider_tokens(connect, authorization: str) -> None:
    response = connect(authorization=authorization).push()
    assert (response.status, response.reason) == (403, "InvalidProviderToken")


def test_token_signed_by_an_untrusted_key(connect) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    response = connect(authorization=bearer(key=other)).push()
    assert (response.status, response.reason) == (403, "InvalidProviderToken")


def test_token_with_unknown_key_id_or_team(connect) -> None:
    from support.h2client import SIGNING_KEY, make_jwt

    assert connect(authorization=bearer(kid="UNKNOWN123")).push().reason == "InvalidProviderToken"
    wrong_team = "bearer " + make_jwt(SIGNING_KEY, KEY_ID, "OTHERTEAM1")
    assert connect(authorization=wrong_team).push().reason == "InvalidProviderToken"
    wrong_alg = "bearer " + make_jwt(SIGNING_KEY, KEY_ID, TEAM_ID, alg="ES384")
    assert connect(authorization=wrong_alg).push().reason == "InvalidProviderToken"


def test_token_with_non_integer_iat(connect) -> None:
    from support.h2client import SIGNING_KEY, b64url

    good = bearer().split(" ")[1].split(".")
    claims = b64url(json.dumps({"iss": TEAM_ID, "iat": "now"}).encode())
    # The signature no longer matches either; what matters is that it is refused.
    token = f"bearer {good[0]}.{claims}.{good[2]}"
    assert SIGNING_KEY is not None
    assert connect(authorization=token).push().reason == "InvalidProviderToken"


def test_token_older_than_an_hour_is_expired(connect, server: MockApnsServer) -> None:
    response = connect(authorization=bearer(int(time.time()) - 3601)).push()
    assert (response.status, response.reason) == (403, "ExpiredProviderToken")
    assert connect(authorization=bearer(int(time.time()) - 3500)).push().status == 200


def test_advancing_the_clock_expires_tokens(server: MockApnsServer, client: H2TestClient) -> None:
    assert client.push().status == 200
    server.advance_clock(3601)
    assert client.push().reason == "ExpiredProviderToken"
    # A renewal after the rejection is not "too many updates".
    fresh = client.push(authorization=bearer(int(server.now())))
    assert fresh.status == 200


def test_new_token_within_20_minutes_is_too_many_updates(
    server: MockApnsServer, client: H2TestClient
) -> None:
    assert client.push().status == 200
    second = bearer(int(server.now()) - 5)
    response = client.push(authorization=second)
    assert (response.status, response.reason) == (429, "TooManyProviderTokenUpdates")
    # The first token stays valid on the connection.
    assert client.push().status == 200
    server.advance_clock(20 * 60 + 1)
    assert client.push(authorization=second).status == 200


def test_token_updates_are_counted_per_connection(connect, server: MockApnsServer) -> None:
    first, second = connect(), connect(authorization=bearer(int(server.now()) - 7))
    assert first.push().status == 200
    assert second.push().status == 200


def test_topic_specific_key(server: MockApnsServer, connect) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    server.trust_key("TOPICKEY01", TEAM_ID, key.public_key(), topics=["com.example.other"])
    authorization = bearer(key=key, kid="TOPICKEY01")
    assert connect(authorization=authorization).push().reason == "TopicDisallowed"
    assert connect(authorization=authorization).push(topic="com.example.other.voip").status == 200


def test_environment_scoped_key(server: MockApnsServer, connect) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    server.trust_key("PRODKEY001", TEAM_ID, key.public_key(), environments=["production"])
    response = connect(authorization=bearer(key=key, kid="PRODKEY001")).push()
    assert (response.status, response.reason) == (403, "InvalidProviderToken")


def test_trust_key_accepts_pem_and_rejects_other_curves(server: MockApnsServer, connect) -> None:
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    server.trust_key("PEMKEY0001", TEAM_ID, pem.decode())
    assert connect(authorization=bearer(key=key, kid="PEMKEY0001")).push().status == 200
    with pytest.raises(ValueError, match="P-256"):
        server.trust_key(
            "P384KEY001", TEAM_ID, ec.generate_private_key(ec.SECP384R1()).public_key()
        )


def test_echoed_id_is_the_requests_canonical_uuid_or_a_new_one() -> None:
    # Shared by the validators and the scripted replies of the mock's application.
    from apnskit.testing._validation import echoed_id

    given = "123E4567-E89B-12D3-A456-426614174000"
    assert echoed_id(given) == given  # echoed as sent
    made = {echoed_id(None), echoed_id("123e4567"), echoed_id(given.replace("-", ""))}
    assert len(made) == 3
    for value in made:
        assert str(uuid.UUID(value)) == value


def test_header_rules_answer_in_order(client: H2TestClient) -> None:
    extra = [
        ("apns-push-type", "voip"),  # the topic has no .voip suffix
        ("apns-priority", "7"),
        ("apns-expiration", "soon"),
        ("apns-collapse-id", "c" * 65),
        ("apns-id", "not-a-uuid"),
    ]
    reasons = ["InvalidPushType", "BadPriority", "BadExpirationDate", "BadCollapseId"]
    for index, reason in enumerate([*reasons, "BadMessageId"]):
        response = client.push(extra=extra[index:])
        assert (response.status, response.reason) == (400, reason)
