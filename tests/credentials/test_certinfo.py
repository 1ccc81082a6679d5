from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography import x509

from apnskit import CertificateInfo, CertificateTopic, CredentialsError, Environment
from apnskit._credentials.certinfo import (
    TOPICS_OID,
    decode_topics_extension,
    encode_topics_extension,
    read_certificate_info,
)

# The DER of [("a.b", ["app"]), ("a.b.voip", ["voip"])], written out by hand so the encoder and
# the decoder are both checked against something neither produced.
HAND_MADE = bytes.fromhex(
    "301e"  # SEQUENCE, 30 bytes
    "0c03"
    + b"a.b".hex()
    + "3005"
    + "0c03"
    + b"app".hex()
    # topic "a.b", SEQUENCE { "app" }
    + "0c08"
    + b"a.b.voip".hex()
    + "3006"
    + "0c04"
    + b"voip".hex()
)


def test_encoder_matches_hand_made_der() -> None:
    assert encode_topics_extension([("a.b", ["app"]), ("a.b.voip", ["voip"])]) == HAND_MADE


def test_decoder_reads_hand_made_der() -> None:
    assert decode_topics_extension(HAND_MADE) == (
        CertificateTopic("a.b", ("app",)),
        CertificateTopic("a.b.voip", ("voip",)),
    )


def test_long_form_lengths_round_trip() -> None:
    topics = [(f"com.example.app{i}", ["app", "voip", "complication"]) for i in range(40)]
    data = encode_topics_extension(topics)
    assert data[:2] == b"\x30\x82", "a body over 255 bytes needs a two-byte long-form length"
    decoded = decode_topics_extension(data)
    assert [(t.name, list(t.kinds)) for t in decoded] == topics


def test_last_topic_without_kinds_is_kept() -> None:
    assert decode_topics_extension(bytes.fromhex("30060c01780c0179")) == (
        CertificateTopic("x", ()),
        CertificateTopic("y", ()),
    )


def test_unknown_kinds_and_topic_without_kinds_are_kept() -> None:
    # topic "x" with no kinds SEQUENCE, then "y" with an unknown kind
    data = bytes.fromhex("30100c01780c017930080c06") + b"future"
    assert decode_topics_extension(data) == (
        CertificateTopic("x", ()),
        CertificateTopic("y", ("future",)),
    )


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "truncated"),
        (bytes.fromhex("0c03616263"), "not one SEQUENCE"),
        (bytes.fromhex("3005") + bytes.fromhex("0c03"), "past the end"),
        (bytes.fromhex("3002") + bytes.fromhex("3000"), "does not follow a topic"),
        (bytes.fromhex("3003") + bytes.fromhex("020101"), "expected a string"),
        (bytes.fromhex("3080") + bytes.fromhex("0000"), "bad length"),
        (bytes.fromhex("3003") + bytes.fromhex("0c01ff"), "UTF-8"),
        (HAND_MADE + b"\x00", "not one SEQUENCE"),
        (bytes.fromhex("3003") + bytes.fromhex("1f0100"), "multi-byte tags"),
    ],
)
def test_malformed_topics_extension(data: bytes, problem: str) -> None:
    with pytest.raises(CredentialsError, match=problem) as info:
        decode_topics_extension(data)
    assert TOPICS_OID.dotted_string in str(info.value)


@pytest.mark.parametrize(
    ("environments", "expected"),
    [
        (("development",), {Environment.SANDBOX}),
        (("production",), {Environment.PRODUCTION}),
        (("development", "production"), {Environment.SANDBOX, Environment.PRODUCTION}),
        ((), set()),
    ],
)
def test_environments_from_oids(
    environments: tuple[str, ...], expected: set[Environment], cert_factory: Any
) -> None:
    info = read_certificate_info(cert_factory(environments=environments).certificate)
    assert info.environments == frozenset(expected)


def test_reads_uid_topics_and_validity(cert_factory: Any) -> None:
    not_before = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    not_after = not_before + timedelta(days=395)
    issued = cert_factory(
        topics=[("com.example.app", ["app"]), ("com.example.app.voip", ["voip"])],
        not_before=not_before,
        not_after=not_after,
    )
    info = read_certificate_info(issued.certificate)
    assert info.subject_uid == "com.example.app"
    assert info.topics == (
        CertificateTopic("com.example.app", ("app",)),
        CertificateTopic("com.example.app.voip", ("voip",)),
    )
    assert info.not_valid_before == not_before
    assert info.not_valid_after == not_after
    assert info.not_valid_after.tzinfo is not None


def test_certificate_without_uid_or_topics(cert_factory: Any) -> None:
    info = read_certificate_info(cert_factory(uid=None, environments=()).certificate)
    assert info.subject_uid is None
    assert info.topics == ()


def test_topics_extension_is_read_through_cryptography(cert_factory: Any) -> None:
    issued = cert_factory(topics=[("a.b", ["app"])])
    ext = issued.certificate.extensions.get_extension_for_oid(TOPICS_OID)
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    assert ext.value.value == encode_topics_extension([("a.b", ["app"])])


def _info(uid: str | None, topics: list[tuple[str, tuple[str, ...]]]) -> CertificateInfo:
    now = datetime.now(timezone.utc)
    return CertificateInfo(
        subject_uid=uid,
        environments=frozenset(),
        topics=tuple(CertificateTopic(n, k) for n, k in topics),
        not_valid_before=now,
        not_valid_after=now,
    )


def test_allows_topic_rules() -> None:
    info = _info(
        "com.example.app",
        [
            ("com.example.app", ("app", "voip", "fileprovider", "liveactivity")),
            ("com.example.app.watchkitapp", ("complication",)),
            ("com.example.other", ("app",)),
        ],
    )
    allowed = [
        "com.example.app",
        "com.example.app.voip",
        "com.example.app.pushkit.fileprovider",
        "com.example.app.push-type.liveactivity",
        "com.example.app.watchkitapp",
        "com.example.app.watchkitapp.complication",
        "com.example.other",
    ]
    refused = [
        "com.example.app.complication",  # the base topic lacks that kind
        "com.example.other.voip",
        "com.example.app.push-type.widgets",
        "com.example.ap",
        "com.example.appx",
        "org.elsewhere",
    ]
    assert [t for t in allowed if not info.allows_topic(t)] == []
    assert [t for t in refused if info.allows_topic(t)] == []


def test_allows_topic_uid_only() -> None:
    info = _info("com.example.app", [])
    assert info.allows_topic("com.example.app")
    assert not info.allows_topic("com.example.app.voip")
    assert not info.allows_topic("com.example.other")


def test_allows_any_topic_without_topic_information() -> None:
    info = _info(None, [])
    assert info.allows_topic("anything.at.all")
