"""Real proxy servers for the proxy tests, started on 127.0.0.1 and stopped afterwards.

- tinyproxy (Debian): HTTP CONNECT, optionally with Basic authentication.
- dante (Debian's danted): SOCKS5 without authentication (its username method checks system
  accounts, which a test must not create), with a rule that blocks one port.
- pproxy (PyPI): SOCKS5 with username/password authentication (RFC 1929).

Nobody on this project wrote them; the tests only write their configuration files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

USER = "alice"
# A test proxy's password: tinyproxy's configuration takes letters, digits, "-" and ".".
PASSWORD = "s3cret-Pass.42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ProxyServer:
    scheme: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = ""
        if user is not None:
            auth = quote(user, safe="")
            if password is not None:
                auth += ":" + quote(password, safe="")
            auth += "@"
        return f"{self.scheme}://{auth}127.0.0.1:{self.port}"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"proxy exited with {process.returncode}: {_tail(log)}"
                f"{_tail(log.with_suffix('.log'))}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"proxy did not listen on {port}: {_tail(log)}")


def _tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        return log.read_text(errors="replace")[-2000:]
    return ""


@contextlib.contextmanager
def _running(
    argv: list[str], scheme: str, port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[ProxyServer]:
    out = open(log.with_suffix(".out"), "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
    )
    try:
        _wait_listening(process, port, log.with_suffix(".out"))
        yield ProxyServer(scheme, port, process, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        out.close()


def _binary(name: str) -> str:
    for folder in (None, "/usr/sbin", "/usr/bin"):
        found = shutil.which(name, path=folder)
        if found:
            return found
    raise RuntimeError(f"{name} is not installed: run bash .ci/system-packages.sh")


@contextlib.contextmanager
def tinyproxy(
    workdir: Path, connect_ports: list[int], auth: tuple[str, str] | None = None
) -> Iterator[ProxyServer]:
    """tinyproxy in the foreground; CONNECT only to ``connect_ports`` (its default is 443)."""
    port = free_port()
    log = workdir / f"tinyproxy-{port}.log"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 60",
        "MaxClients 100",
        "LogLevel Connect",
        f'LogFile "{log}"',
        f'PidFile "{workdir / f"tinyproxy-{port}.pid"}"',
        "Allow 127.0.0.1",
        "DisableViaHeader Yes",
        *(f"ConnectPort {p}" for p in connect_ports),
    ]
    if auth is not None:
        # tinyproxy reads the password as one word: no spaces in it.
        lines.append(f"BasicAuth {auth[0]} {auth[1]}")
    conf = workdir / f"tinyproxy-{port}.conf"
    conf.write_text("\n".join(lines) + "\n")
    with _running([_binary("tinyproxy"), "-d", "-c", str(conf)], "http", port, log) as server:
        yield server


@contextlib.contextmanager
def danted(workdir: Path, blocked_port: int) -> Iterator[ProxyServer]:
    """dante's SOCKS5 server without authentication; connections to ``blocked_port`` are
    refused by a rule (reply 2, "connection not allowed by ruleset")."""
    port = free_port()
    log = workdir / f"danted-{port}.log"
    conf = workdir / f"danted-{port}.conf"
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    conf.write_text(
        f"""\
logoutput: {log}
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
socksmethod: none
clientmethod: none
user.privileged: {user}
user.unprivileged: {"nobody" if os.geteuid() == 0 else user}
client pass {{ from: 127.0.0.1/32 to: 0.0.0.0/0 }}
socks block {{
    from: 0.0.0.0/0 to: 0.0.0.0/0 port = {blocked_port}
    command: connect
    log: connect
}}
socks pass {{
    from: 127.0.0.1/32 to: 127.0.0.1/32
    command: connect
    log: connect
}}
"""
    )
    pid = workdir / f"danted-{port}.pid"
    argv = [_binary("danted"), "-f", str(conf), "-p", str(pid), "-N", "1"]
    with _running(argv, "socks5", port, log) as server:
        yield server


@contextlib.contextmanager
def pproxy(workdir: Path, scheme: str, auth: tuple[str, str] | None) -> Iterator[ProxyServer]:
    """pproxy serving ``scheme`` (``socks5`` or ``http``), with a user and password or not."""
    port = free_port()
    log = workdir / f"pproxy-{port}.log"
    listen = f"{scheme}://127.0.0.1:{port}"
    if auth is not None:
        listen += f"#{auth[0]}:{auth[1]}"
    # --auth 0: check the password on every connection (pproxy otherwise trusts an address
    # that authenticated once, for 30 days).
    argv = [sys.executable, "-m", "pproxy", "-l", listen, "--auth", "0", "-v"]
    # -v logs each tunnel's destination as the client named it; unbuffered, to read it live.
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}
    with _running(argv, scheme, port, log.with_suffix(".out"), env) as server:
        yield server
