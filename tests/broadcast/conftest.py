"""Fixtures for the broadcast tests (shared with tests/testing)."""

from support.mock_fixtures import client, connect, server

__all__ = ["client", "connect", "server"]
