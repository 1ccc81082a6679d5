"""Throughput of PushClient and AsyncPushClient against an HTTP/2 server on loopback.

Sends N notifications through each client over ONE connection and prints notifications per
second (wall clock) and the client's CPU microseconds per notification (process CPU time of
this process only: the server always runs in another process), medians of several runs.

Servers:
  --server mock    the built-in MockApnsServer (default), run in a child process
  --server nginx   Debian's nginx (``apt-get install nginx-light``) with HTTP/2 over TLS,
                   answering POST /3/device/... with 200 and an apns-id header, so the figure
                   is not capped by a Python server
  --host/--port/--ca-file  any other HTTP/2 server that answers like APNs

    python bench/throughput.py [--server mock|nginx] [--count 50000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import apnskit

TOPIC = "com.example.bench"

_MOCK_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from apnskit.testing import MockApnsServer
    with MockApnsServer() as server:
        key = server.new_token_key()
        print(json.dumps({"host": server.host, "port": server.port, "ca_file": str(server.ca_file),
                          "key": key.private_key_pem.decode(), "key_id": key.key_id,
                          "team_id": key.team_id}), flush=True)
        sys.stdin.read()
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "server.pem"
    key_path = directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class Server:
    """A server in a child process; ``stop()`` ends it."""

    host = "127.0.0.1"
    port = 0
    ca_file = ""
    credentials: apnskit.TokenCredentials

    def stop(self) -> None:
        raise NotImplementedError


class MockServer(Server):
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MOCK_CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.host, self.port, self.ca_file = info["host"], info["port"], info["ca_file"]
        self.credentials = apnskit.TokenCredentials(
            info["key"], key_id=info["key_id"], team_id=info["team_id"]
        )

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


class NginxServer(Server):
    def __init__(self) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            sys.exit("nginx not found: apt-get install nginx-light (see bench/README.md)")
        self.dir = Path(tempfile.mkdtemp(prefix="apnskit-nginx-"))
        cert, key = _self_signed(self.dir)
        self.port = _free_port()
        self.ca_file = str(cert)
        (self.dir / "nginx.conf").write_text(
            textwrap.dedent(
                f"""
                worker_processes 1;
                daemon off;
                master_process off;
                pid {self.dir}/nginx.pid;
                error_log {self.dir}/error.log warn;
                events {{ worker_connections 1024; }}
                http {{
                    access_log off;
                    client_body_temp_path {self.dir}/body;
                    proxy_temp_path {self.dir}/proxy;
                    fastcgi_temp_path {self.dir}/fastcgi;
                    uwsgi_temp_path {self.dir}/uwsgi;
                    scgi_temp_path {self.dir}/scgi;
                    server {{
                        listen 127.0.0.1:{self.port} ssl http2;
                        ssl_certificate {cert};
                        ssl_certificate_key {key};
                        ssl_protocols TLSv1.2 TLSv1.3;
                        http2_max_concurrent_streams 1000;
                        keepalive_requests 100000000;
                        http2_max_requests 100000000;
                        location /3/device/ {{
                            add_header apns-id $request_id always;
                            return 200;
                        }}
                    }}
                }}
                """
            )
        )
        self.proc = subprocess.Popen(
            [nginx, "-c", str(self.dir / "nginx.conf"), "-e", str(self.dir / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit("nginx did not start: " + (self.dir / "error.log").read_text())
        key_obj = ec.generate_private_key(ec.SECP256R1())
        pem = key_obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.credentials = apnskit.TokenCredentials(pem, key_id="BENCHKEY01", team_id="BENCHTEAM1")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class ExternalServer(Server):
    def __init__(self, host: str, port: int, ca_file: str) -> None:
        self.host, self.port, self.ca_file = host, port, ca_file
        key_obj = ec.generate_private_key(ec.SECP256R1())
        pem = key_obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.credentials = apnskit.TokenCredentials(pem, key_id="BENCHKEY01", team_id="BENCHTEAM1")

    def stop(self) -> None:
        pass


def notifications(count: int):  # type: ignore[no-untyped-def]
    payload = {"aps": {"alert": {"title": "Hello", "body": "A new message is waiting"}}}
    token = "a1" * 32
    for _ in range(count):
        yield apnskit.Notification(token, payload, topic=TOPIC)


def client_kwargs(server: Server) -> dict[str, object]:
    return {
        "host": server.host,
        "port": server.port,
        "ca_file": server.ca_file,
        "environment": "sandbox",
        "limits": apnskit.Limits(max_connections=1, max_in_flight=2000),
        "timeout": apnskit.Timeout(deadline=120),
    }


def run_sync(server: Server, count: int) -> tuple[float, float, int]:
    with apnskit.PushClient(server.credentials, **client_kwargs(server)) as client:  # type: ignore[arg-type]
        client.send(next(notifications(1)))  # connect, and lift the one-stream hold
        wall0, cpu0 = time.perf_counter(), time.process_time()
        accepted = sum(r.accepted for r in client.send_many(notifications(count)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return count / wall, cpu / count * 1e6, accepted


def run_async(server: Server, count: int, backend: str) -> tuple[float, float, int]:
    async def main() -> tuple[float, float, int]:
        async with apnskit.AsyncPushClient(server.credentials, **client_kwargs(server)) as client:  # type: ignore[arg-type]
            await client.send(next(notifications(1)))
            wall0, cpu0 = time.perf_counter(), time.process_time()
            accepted = 0
            async for result in client.send_many(notifications(count)):
                accepted += result.accepted
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        return count / wall, cpu / count * 1e6, accepted

    return anyio.run(main, backend=backend)


def main() -> None:
    parser = argparse.ArgumentParser(description="apnskit client throughput on loopback")
    parser.add_argument("--server", choices=["mock", "nginx"], default="mock")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--ca-file")
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--clients", default="sync,asyncio", help="comma list of sync, asyncio, trio"
    )
    args = parser.parse_args()
    if args.host:
        server: Server = ExternalServer(args.host, args.port or 443, args.ca_file)
        label = f"{args.host}:{args.port}"
    elif args.server == "nginx":
        server = NginxServer()
        label = "nginx (HTTP/2 over TLS, 1 worker)"
    else:
        server = MockServer()
        label = "apnskit MockApnsServer (child process)"
    print(f"server: {label}; {args.count} notifications x {args.runs} runs, one connection")
    try:
        for name in args.clients.split(","):
            rates, cpus = [], []
            for _ in range(args.runs):
                if name == "sync":
                    rate, cpu, accepted = run_sync(server, args.count)
                else:
                    rate, cpu, accepted = run_async(server, args.count, name)
                if accepted != args.count:
                    print(f"  warning: {name}: {args.count - accepted} not accepted")
                rates.append(rate)
                cpus.append(cpu)
            label = "PushClient" if name == "sync" else f"AsyncPushClient ({name})"
            print(
                f"  {label:28s} median {statistics.median(rates):8.0f} notifications/s, "
                f"{statistics.median(cpus):6.1f} us CPU/notification   "
                f"(runs: {', '.join(f'{r:.0f}' for r in rates)})"
            )
    finally:
        server.stop()
    if os.environ.get("APNSKIT_BENCH_TARGETS"):
        print("targets: >= 15,000 notifications/s on one connection, <= 50 us CPU/notification")


if __name__ == "__main__":
    main()
