"""Issue 12: both clients name the cause of a failure the way a user thinks of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from client_support import Client, notification

import apnskit
from apnskit._clients.common import CERTIFICATE_REFUSED
from apnskit.testing import MockApnsServer

pytestmark = pytest.mark.anyio

TOPIC = "com.example.app"


@pytest.fixture(scope="module")
def refusing_server() -> Iterator[tuple[MockApnsServer, apnskit.CertificateCredentials]]:
    """A certificate-auth server, and credentials from a CA it does not trust."""
    with MockApnsServer(auth="certificate") as server, MockApnsServer(auth="certificate") as other:
        cert, key = other.issue_client_certificate([TOPIC])
        yield server, apnskit.CertificateCredentials.from_file(cert, key_file=key)


async def test_refused_client_certificate_is_named(
    make_client: Callable[..., Client],
    refusing_server: tuple[MockApnsServer, apnskit.CertificateCredentials],
) -> None:
    # Before: "ConnectionLostError: APNs closed the TCP connection", with no hint.
    server, credentials = refusing_server
    client = make_client(
        credentials=credentials,
        host=server.host,
        port=server.port,
        ca_file=server.ca_file,
        retry=apnskit.RetryPolicy(max_attempts=1),
    )
    result = await client.send(notification(topic=TOPIC))
    assert result.failed
    assert isinstance(result.error, apnskit.ConnectionLostError)
    assert str(result.error) == CERTIFICATE_REFUSED
    assert "apnskit check --cert FILE --connect" in CERTIFICATE_REFUSED


async def test_token_auth_close_keeps_the_plain_message(make_client: Callable[..., Client]) -> None:
    # Only certificate auth before SETTINGS means a refused certificate: a server that closes
    # a token-auth connection is reported as it was.
    with MockApnsServer() as server:
        server.faults.drop_after(0)
        client = make_client(
            credentials=server.apns_token_credentials(),
            host=server.host,
            port=server.port,
            ca_file=server.ca_file,
            retry=apnskit.RetryPolicy(max_attempts=1),
        )
        result = await client.send(notification(topic=TOPIC))
    assert result.failed
    assert CERTIFICATE_REFUSED not in str(result.error)
