"""Shared helpers for the broadcast tests: an HTTP/2 client over TLS, tokens, payloads.

The client is tests/support/h2client.py's, with ``send()`` taking an apnskit request object.
"""

from __future__ import annotations

from support.h2client import KEY_ID, SIGNING_KEY, TEAM_ID, H2Client, Response, bearer

__all__ = [
    "BUNDLE",
    "CHANNEL",
    "KEY_ID",
    "REQUEST_ID",
    "SIGNING_KEY",
    "TEAM_ID",
    "UPDATE",
    "H2Client",
    "Response",
    "bearer",
]

BUNDLE = "com.example.app"
CHANNEL = "dHN0LXNyY2gtY2hubA=="
REQUEST_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
UPDATE = {"aps": {"event": "update", "timestamp": 1_700_000_000, "content-state": {"score": 1}}}
