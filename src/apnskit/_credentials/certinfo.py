"""What an Apple push certificate says about itself: base topic, environments, topics, expiry.

Apple's "Establishing a certificate-based connection to APNs"
(https://developer.apple.com/documentation/usernotifications/establishing-a-certificate-based-connection-to-apns)
issues client certificates whose subject UID is the base topic (the bundle ID) and which carry
private extensions:

- ``1.2.840.113635.100.6.3.1``: the certificate is valid for the development (sandbox)
  environment;
- ``1.2.840.113635.100.6.3.2``: it is valid for production (a "universal" certificate has both);
- ``1.2.840.113635.100.6.3.6``: the topics it may push to, as an ASN.1 ``SEQUENCE`` in which each
  topic (``UTF8String``) is followed by a ``SEQUENCE OF UTF8String`` naming its kinds (``app``,
  ``voip``, ``complication``...).

``cryptography`` hands these over as raw DER (:class:`x509.UnrecognizedExtension`), so a tiny
DER reader below decodes the topics, and :func:`encode_topics_extension` builds the same
structure for tests and for the mock server's Apple-like certificates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from apnskit._config import Environment
from apnskit._errors import CredentialsError

__all__ = [
    "DEVELOPMENT_OID",
    "PRODUCTION_OID",
    "TOPICS_OID",
    "CertificateInfo",
    "CertificateTopic",
    "encode_topics_extension",
    "read_certificate_info",
]

#: Marks a certificate valid for the development (sandbox) environment.
DEVELOPMENT_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.3.1")
#: Marks a certificate valid for the production environment.
PRODUCTION_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.3.2")
#: Lists the topics a certificate may push to, each with its kinds.
TOPICS_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.3.6")

# DER tags (X.690 section 8): universal, primitive strings and the constructed SEQUENCE.
_TAG_SEQUENCE = 0x30
_TAG_UTF8STRING = 0x0C
# Apple writes UTF8String; these are accepted too so a differently encoded string still reads.
_STRING_TAGS = frozenset({_TAG_UTF8STRING, 0x13, 0x16})  # UTF8String, PrintableString, IA5String


@dataclass(frozen=True)
class CertificateTopic:
    """One entry of a certificate's topics extension."""

    name: str
    """The topic, e.g. ``"com.example.app"`` or ``"com.example.app.voip"``."""
    kinds: tuple[str, ...]
    """What the topic may be used for: ``"app"``, ``"voip"``, ``"complication"``... Kinds this
    library does not know are kept as Apple wrote them."""


@dataclass(frozen=True)
class CertificateInfo:
    """The APNs-relevant facts of a client certificate.

    Build one with :func:`read_certificate_info`.
    """

    subject_uid: str | None
    """The subject's UID (the base topic, usually the bundle ID); ``None`` when absent."""
    environments: frozenset[Environment]
    """The environments the certificate is marked for; empty for a certificate without Apple's
    environment extensions (e.g. a self-made test certificate)."""
    topics: tuple[CertificateTopic, ...]
    """The topics extension, in certificate order; empty when the certificate has none."""
    not_valid_before: datetime
    """Start of validity (aware, UTC)."""
    not_valid_after: datetime
    """End of validity (aware, UTC)."""

    def kinds_of(self, topic: str) -> tuple[str, ...] | None:
        """The kinds the topics extension gives ``topic``, or ``None`` when it is not listed."""
        for entry in self.topics:
            if entry.name == topic:
                return entry.kinds
        return None

    def allows_topic(self, topic: str) -> bool:
        """Whether the certificate may push to ``topic``.

        Allowed are: the base topic (subject UID); every topic of the topics extension; and a
        base topic plus a push-type suffix (``"<uid>.voip"``, ``"<uid>.complication"``,
        ``"<uid>.pushkit.fileprovider"``, ``"<uid>.push-type.<kind>"``) when the topics extension
        gives the base topic that kind. A certificate carrying no topic information at all
        (no UID and no topics extension) cannot be judged, so every topic is allowed and the
        server decides.

        Args:
            topic: The ``apns-topic`` a notification would be sent with.
        """
        if self.subject_uid is None and not self.topics:
            return True
        if topic == self.subject_uid or self.kinds_of(topic) is not None:
            return True
        bases = [entry.name for entry in self.topics]
        if self.subject_uid is not None:
            bases.append(self.subject_uid)
        for base in bases:
            if not topic.startswith(base + "."):
                continue
            kind = _suffix_kind(topic[len(base) + 1 :])
            kinds = self.kinds_of(base)
            if kinds is not None and kind in kinds:
                return True
        return False


def _suffix_kind(suffix: str) -> str:
    # Apple's topic suffixes per push type ("Sending notification requests to APNs",
    # apns-topic): ".voip", ".complication", ".pushkit.fileprovider", ".push-type.<type>".
    for prefix in ("pushkit.", "push-type."):
        if suffix.startswith(prefix):
            return suffix[len(prefix) :]
    return suffix


def read_certificate_info(cert: x509.Certificate) -> CertificateInfo:
    """Read the subject UID, environments, topics and validity of a client certificate.

    Args:
        cert: The client (leaf) certificate.

    Returns:
        The facts; unknown or missing extensions simply leave their field empty.

    Raises:
        CredentialsError: The topics extension is present but is not the DER structure Apple
            uses.
    """
    uids = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    subject_uid: str | None = None
    if uids:
        value = uids[0].value
        subject_uid = value if isinstance(value, str) else value.decode("utf-8", "replace")

    environments: set[Environment] = set()
    topics: tuple[CertificateTopic, ...] = ()
    for extension in cert.extensions:
        if extension.oid == DEVELOPMENT_OID:
            environments.add(Environment.SANDBOX)
        elif extension.oid == PRODUCTION_OID:
            environments.add(Environment.PRODUCTION)
        elif extension.oid == TOPICS_OID and isinstance(
            extension.value, x509.UnrecognizedExtension
        ):
            topics = decode_topics_extension(extension.value.value)

    return CertificateInfo(
        subject_uid=subject_uid,
        environments=frozenset(environments),
        topics=topics,
        not_valid_before=cert.not_valid_before_utc,
        not_valid_after=cert.not_valid_after_utc,
    )


# -- a tiny DER reader and writer (X.690), only as much as the topics extension needs ----------


class _DerError(ValueError):
    pass


def _read_tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """Read one tag-length-value at ``offset``; return (tag, value, offset after it)."""
    if offset + 2 > len(data):
        raise _DerError("truncated header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise _DerError("multi-byte tags are not used by this structure")
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        # DER forbids the indefinite form (0x80) and non-minimal lengths (X.690 section 10.1).
        if count == 0 or count > 4 or offset + count > len(data):
            raise _DerError("bad length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise _DerError("value runs past the end")
    return tag, data[offset:end], end


def _iter_tlv(data: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset < len(data):
        tag, value, offset = _read_tlv(data, offset)
        yield tag, value


def _decode_string(tag: int, value: bytes) -> str:
    if tag not in _STRING_TAGS:
        raise _DerError(f"expected a string, found tag 0x{tag:02x}")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise _DerError("a string is not valid UTF-8") from None


def decode_topics_extension(data: bytes) -> tuple[CertificateTopic, ...]:
    """Decode the value of the topics extension (``1.2.840.113635.100.6.3.6``).

    Args:
        data: The extension's DER value.

    Raises:
        CredentialsError: ``data`` is not a SEQUENCE of topic strings each optionally followed
            by a SEQUENCE of kind strings.
    """
    try:
        tag, body, end = _read_tlv(data, 0)
        if tag != _TAG_SEQUENCE or end != len(data):
            raise _DerError("the value is not one SEQUENCE")
        topics: list[CertificateTopic] = []
        name: str | None = None
        for tag, value in _iter_tlv(body):
            if tag == _TAG_SEQUENCE:
                if name is None:
                    raise _DerError("a kinds SEQUENCE does not follow a topic")
                kinds = tuple(_decode_string(t, v) for t, v in _iter_tlv(value))
                topics.append(CertificateTopic(name, kinds))
                name = None
            else:
                if name is not None:
                    # A topic without a kinds SEQUENCE: keep it, with no kinds.
                    topics.append(CertificateTopic(name, ()))
                name = _decode_string(tag, value)
        if name is not None:
            topics.append(CertificateTopic(name, ()))
    except _DerError as exc:
        raise CredentialsError(
            f"certificate: the APNs topics extension ({TOPICS_OID.dotted_string}) is malformed: "
            f"{exc}"
        ) from None
    return tuple(topics)


def _encode_tlv(tag: int, value: bytes) -> bytes:
    length = len(value)
    if length < 0x80:
        return bytes((tag, length)) + value
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big") + value


def encode_topics_extension(topics: Sequence[tuple[str, Sequence[str]]]) -> bytes:
    """Build the DER value of an Apple topics extension (``1.2.840.113635.100.6.3.6``).

    Used by the tests and by the mock server to issue Apple-like client certificates::

        value = encode_topics_extension([("com.example.app", ["app"]),
                                         ("com.example.app.voip", ["voip"])])
        builder.add_extension(x509.UnrecognizedExtension(TOPICS_OID, value), critical=False)

    Args:
        topics: ``(topic, kinds)`` pairs in the order they should appear.
    """
    body = b"".join(
        _encode_tlv(_TAG_UTF8STRING, name.encode("utf-8"))
        + _encode_tlv(
            _TAG_SEQUENCE,
            b"".join(_encode_tlv(_TAG_UTF8STRING, kind.encode("utf-8")) for kind in kinds),
        )
        for name, kinds in topics
    )
    return _encode_tlv(_TAG_SEQUENCE, body)
