"""pytest fixtures for testing code that sends push notifications with apnskit.

Installed with apnskit and registered through the ``pytest11`` entry point, so the fixtures
are available in any test suite without configuration:

``apns_server``
    A started :class:`apnskit.testing.MockApnsServer` (token authentication, sandbox),
    serving from a background thread, so it works in sync tests and in async tests alike
    (asyncio or trio). Stopped after the test. Point a client at it with::

        PushClient(apns_credentials, host=apns_server.host, port=apns_server.port,
                   ca_file=apns_server.ca_file)

    Then assert on ``apns_server.received`` and script failures with
    ``apns_server.faults`` (``fail_next``, ``goaway_after``, ``refuse_next``...).

``apns_credentials``
    Fresh :class:`apnskit.TokenCredentials` with a new P-256 key that ``apns_server`` trusts.
    They follow the server's clock, so ``apns_server.advance_clock(...)`` ages them too.

Example::

    def test_sends_welcome(apns_server, apns_credentials):
        with PushClient(apns_credentials, host=apns_server.host, port=apns_server.port,
                        ca_file=apns_server.ca_file) as client:
            send_welcome(client, device_token="ab" * 32)
        assert apns_server.received[0].payload["aps"]["alert"] == "Welcome!"
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

# Nothing heavy at import: pytest loads this plugin (entry point pytest11) in every project
# where apnskit is installed, so h2, the mock server and its hpack logging filter are
# imported only when a test asks for a fixture.
if TYPE_CHECKING:
    from apnskit._credentials.token import TokenCredentials
    from apnskit.testing._mock_server import MockApnsServer

__all__ = ["apns_credentials", "apns_server"]


@pytest.fixture
def apns_server() -> Iterator[MockApnsServer]:
    """A started mock APNs server (token auth, sandbox) for the duration of one test."""
    from apnskit.testing._mock_server import MockApnsServer

    with MockApnsServer() as server:
        yield server


@pytest.fixture
def apns_credentials(apns_server: MockApnsServer) -> TokenCredentials:
    """Fresh token credentials whose key ``apns_server`` trusts."""
    return apns_server.apns_token_credentials()
