"""Fixtures for the mock APNs server tests (shared with tests/broadcast)."""

from support.mock_fixtures import client, connect, server

__all__ = ["client", "connect", "server"]
