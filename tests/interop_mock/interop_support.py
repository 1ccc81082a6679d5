"""What the foreign-client tests share: the target server, the request, and an h2load runner.

Each client authenticates as a user's provider would: with a token signed by the key the
server hands out (:meth:`MockApnsServer.new_token_key`, the key ``apnskit mock-server``
prints).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from apnskit.testing import MockApnsServer, TokenKey
from support.h2client import make_jwt

TOPIC = "com.example.app"
BODY = b'{"aps":{"alert":"hello from a foreign client"}}'
RUN_TIMEOUT = 120.0
_REQUESTS = re.compile(
    r"requests: (?P<total>\d+) total, \d+ started, (?P<done>\d+) done, "
    r"(?P<succeeded>\d+) succeeded, (?P<failed>\d+) failed, (?P<errored>\d+) errored"
)
_STATUS_CODES = re.compile(r"status codes: (?P<ok>\d+) 2xx")


@dataclass
class Target:
    """A running mock server and what a foreign client needs to reach it."""

    server: MockApnsServer
    key: TokenKey
    body_file: Path

    @property
    def url(self) -> str:
        return f"https://{self.server.host}:{self.server.port}"

    def bearer(self) -> str:
        """``bearer <JWT>``, signed with the server's key."""
        return "bearer " + sign_token(self.key.private_key_pem, self.key.key_id, self.key.team_id)


def sign_token(private_key_pem: bytes, key_id: str, team_id: str) -> str:
    """A provider token (ES256 JWT) made from a ``.p8`` key's text, as a user's script would."""
    key = serialization.load_pem_private_key(private_key_pem, None)
    return make_jwt(key, key_id, team_id)  # type: ignore[arg-type]


def device_path(index: int = 0) -> str:
    """``/3/device/<64 hex digits>``, distinct per index below 9000."""
    return f"/3/device/{'ab' * 30}{1000 + index}"


def expected_h2load(total: int) -> dict[str, int]:
    """What :func:`h2load` returns when every request succeeded with a 2xx."""
    return {
        "total": total,
        "done": total,
        "succeeded": total,
        "failed": 0,
        "errored": 0,
        "ok": total,
    }


def h2load(url: str, bearer: str, body_file: Path, *options: str) -> dict[str, int]:
    """Run h2load once; return its request counts (total, done, succeeded, failed, errored, ok)."""
    command = [
        "h2load",
        *options,
        "-H",
        f"authorization: {bearer}",
        "-H",
        f"apns-topic: {TOPIC}",
        "-H",
        "apns-push-type: alert",
        "-d",
        str(body_file),
        url + device_path(),
    ]
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    requests = _REQUESTS.search(run.stdout)
    codes = _STATUS_CODES.search(run.stdout)
    assert requests is not None, run.stdout + run.stderr
    assert codes is not None, run.stdout
    counts = {name: int(value) for name, value in requests.groupdict().items()}
    counts["ok"] = int(codes["ok"])
    return counts
