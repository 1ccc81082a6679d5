"""How many notifications per second the mock APNs server answers, end to end over TLS.

Runs MockApnsServer (token auth) in its own process, then drives it from this process over
1-2 TLS connections with HTTP/2: the handshake and the first request (which lifts the stream
limit from 1) go through h2; after that the client sends pre-encoded request frames, keeping
``--in-flight`` streams open per connection, and scans the reply frames itself. The client is
kept that lean so the figure measures the server, not the client.

In the same run, against the same server, h2load (nghttp2's load generator, Debian package
nghttp2-client) sends the same requests over as many connections with as many streams in
flight each: a client nobody here wrote, in C, and a check that the mock serves it (issue 17).
Its figure includes its connection set-up and the first request each connection waits for.

    .venv/bin/python bench/mock_server.py [--notifications 20000] [--runs 5]
                                          [--connections 1] [--in-flight 500]
                                          [--h2load-runs RUNS] [--busy-loops 0]

Prints each run and the median in notifications per second, for both clients, and how many
h2load runs had every request answered with a 2xx. ``--busy-loops N`` keeps N processes
spinning during the h2load runs: on a busy machine eager clients race the server's SETTINGS,
which the mock used to answer with GOAWAY (issue 17; ``--runs 1 --h2load-runs 20
--busy-loops 2 --notifications 2000 --in-flight 100`` counts that).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events

from apnskit._core.hpack_codec import encode_integer
from apnskit._credentials.token import TokenCredentials

TOPIC = "com.example.app"
TOKEN = "0123456789abcdef" * 4
BODY = b'{"aps":{"alert":{"title":"Hello","body":"from the benchmark"},"badge":1}}'


def serve() -> None:
    from apnskit.testing import MockApnsServer

    with MockApnsServer() as server:
        key = server.new_token_key()
        print(
            json.dumps(
                {
                    "port": server.port,
                    "ca_file": server.ca_file,
                    "key": key.private_key_pem.decode(),
                    "key_id": key.key_id,
                    "team_id": key.team_id,
                }
            ),
            flush=True,
        )
        sys.stdin.read()  # serve until the parent closes our stdin


def header_block(authorization: str) -> bytes:
    """HPACK block of an APNs request: literals without indexing, no Huffman (RFC 7541 6.2.2)."""

    def indexed_name(index: int, value: str) -> bytes:
        data = value.encode()
        return encode_integer(index, 4, 0) + encode_integer(len(data), 7, 0) + data

    def new_name(name: str, value: str) -> bytes:
        n, v = name.encode(), value.encode()
        return b"\x00" + encode_integer(len(n), 7, 0) + n + encode_integer(len(v), 7, 0) + v

    return b"".join(
        [
            b"\x83",  # :method POST (static table 3)
            b"\x87",  # :scheme https (static table 7)
            indexed_name(4, f"/3/device/{TOKEN}"),  # :path
            indexed_name(1, "api.sandbox.push.apple.com"),  # :authority
            new_name("authorization", authorization),
            new_name("apns-topic", TOPIC),
            new_name("apns-push-type", "alert"),
            new_name("apns-priority", "10"),
        ]
    )


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


class Connection:
    def __init__(self, port: int, ca_file: str, authorization: str) -> None:
        context = ssl.create_default_context(cafile=ca_file)
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.block = header_block(authorization)
        self.next_stream = 1
        self.buffer = b""
        self._handshake(authorization)

    def _handshake(self, authorization: str) -> None:
        # The real h2 state machine for the preface and the first request: the server allows
        # one stream until a request with a valid token succeeded.
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        self.sock.sendall(conn.data_to_send())
        stream_id = conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "https"),
            (":path", f"/3/device/{TOKEN}"),
            (":authority", "api.sandbox.push.apple.com"),
            ("authorization", authorization),
            ("apns-topic", TOPIC),
        ]
        status = None
        raised = False
        while status is None or not raised:
            for event in conn.receive_data(self.sock.recv(65536)):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    if conn.remote_settings.max_concurrent_streams > 1:
                        raised = True
                    elif stream_id == 1 and conn.open_outbound_streams == 0:
                        conn.send_headers(stream_id, headers)
                        conn.send_data(stream_id, BODY, end_stream=True)
                elif isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
            self.sock.sendall(conn.data_to_send())
        if status != b"200":
            raise SystemExit(f"first request failed: {status!r}")
        self.next_stream = 3
        self.max_streams = conn.remote_settings.max_concurrent_streams

    def request_bytes(self, count: int) -> bytes:
        parts = []
        for _ in range(count):
            sid = self.next_stream
            self.next_stream += 2
            parts.append(frame(1, 0x4, sid, self.block))  # HEADERS, END_HEADERS
            parts.append(frame(0, 0x1, sid, BODY))  # DATA, END_STREAM
        return b"".join(parts)

    def read_answers(self) -> tuple[int, int]:
        """Read once; return (answers, answers that were not 200)."""
        data = self.sock.recv(262144)
        if not data:
            raise SystemExit("server closed the connection")
        buffer = self.buffer + data
        done = bad = 0
        offset = 0
        acks = []
        while len(buffer) - offset >= 9:
            length = int.from_bytes(buffer[offset : offset + 3], "big")
            if len(buffer) - offset - 9 < length:
                break
            kind = buffer[offset + 3]
            flags = buffer[offset + 4]
            payload = buffer[offset + 9 : offset + 9 + length]
            if kind == 1:  # HEADERS: our server sends ":status 200" as 0x88 (RFC 7541 App. A)
                if payload[:1] != b"\x88":
                    bad += 1
                if flags & 0x1:
                    done += 1
            elif kind == 0 and flags & 0x1:
                done += 1
            elif kind == 4 and not flags & 0x1:
                acks.append(frame(4, 0x1, 0, b""))  # SETTINGS: acknowledge
            elif kind == 7:
                raise SystemExit(f"GOAWAY from the server: {payload[8:]!r}")
            offset += 9 + length
        self.buffer = buffer[offset:]
        if acks:
            self.sock.sendall(b"".join(acks))
        return done, bad


def drive(conn: Connection, total: int, in_flight: int, result: list[int]) -> None:
    in_flight = min(in_flight, conn.max_streams)
    sent = answered = bad = 0
    while answered < total:
        room = min(in_flight - (sent - answered), total - sent)
        if room > 0:
            conn.sock.sendall(conn.request_bytes(room))
            sent += room
        done, wrong = conn.read_answers()
        answered += done
        bad += wrong
    result.append(bad)


_H2LOAD_RATE = re.compile(r"finished in [\d.]+m?s, (?P<rate>[\d.]+) req/s")
_H2LOAD_REQUESTS = re.compile(
    r"requests: (?P<total>\d+) total, [^\n]*? (?P<succeeded>\d+) succeeded[^\n]*"
)
_H2LOAD_2XX = re.compile(r"status codes: (?P<ok>\d+) 2xx")


def run_h2load(port: int, authorization: str, args: argparse.Namespace) -> list[float]:
    """h2load against the same server; prints each run, returns the rates of the clean runs."""
    if shutil.which("h2load") is None:
        print("h2load: not installed (Debian: apt-get install nghttp2-client); skipped")
        return []
    per_conn = args.notifications // args.connections
    rates = []
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy_loops)
    ]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            body = Path(tmp) / "body.json"
            body.write_bytes(BODY)
            command = [
                "h2load",
                "-n",
                str(per_conn * args.connections),
                "-c",
                str(args.connections),
                "-m",
                str(args.in_flight),
                "-H",
                f"authorization: {authorization}",
                "-H",
                f"apns-topic: {TOPIC}",
                "-H",
                "apns-push-type: alert",
                "-H",
                "apns-priority: 10",
                "-d",
                str(body),
                f"https://127.0.0.1:{port}/3/device/{TOKEN}",
            ]
            for run in range(args.h2load_runs):
                out = subprocess.run(command, check=False, capture_output=True, text=True).stdout
                rate = _H2LOAD_RATE.search(out)
                requests = _H2LOAD_REQUESTS.search(out)
                ok = _H2LOAD_2XX.search(out)
                if rate is None or requests is None or ok is None:
                    raise SystemExit(f"h2load run {run + 1}: unexpected output:\n{out}")
                print(f"h2load run {run + 1}: {requests[0]}; {ok[0].split(', ')[0]}")
                total = int(requests["total"])
                if int(requests["succeeded"]) == total and int(ok["ok"]) == total:
                    rates.append(float(rate["rate"]))
    finally:
        for loop in busy:
            loop.kill()
            loop.wait()
    print(
        f"h2load: {len(rates)}/{args.h2load_runs} runs with every request answered 2xx"
        + (f" ({args.busy_loops} busy loop(s) running)" if args.busy_loops else "")
    )
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--connections", type=int, default=1, choices=(1, 2))
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--h2load-runs", type=int, help="h2load runs (default: --runs)")
    parser.add_argument(
        "--busy-loops", type=int, default=0, help="processes spinning during the h2load runs"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0
    if args.h2load_runs is None:
        args.h2load_runs = args.runs

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        credentials = TokenCredentials(info["key"], key_id=info["key_id"], team_id=info["team_id"])
        authorization = credentials.authorization()[0]
        conns = [
            Connection(info["port"], info["ca_file"], authorization)
            for _ in range(args.connections)
        ]
        per_conn = args.notifications // args.connections
        drive(conns[0], 2000, args.in_flight, [])  # warm-up
        rates = []
        for run in range(args.runs):
            results: list[int] = []
            threads = [
                threading.Thread(target=drive, args=(c, per_conn, args.in_flight, results))
                for c in conns
            ]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            if len(results) != len(threads) or any(results):
                raise SystemExit(f"run {run + 1}: some answers were missing or not 200: {results}")
            rate = per_conn * len(conns) / elapsed
            rates.append(rate)
            print(
                f"run {run + 1}: {per_conn * len(conns)} notifications "
                f"in {elapsed:.2f} s = {rate:,.0f}/s"
            )
        for conn in conns:
            conn.sock.close()
        h2load_rates = run_h2load(info["port"], authorization, args)
        shape = f"{args.connections} connection(s), {args.in_flight} in flight each"
        print(f"median, lean client: {statistics.median(rates):,.0f} notifications/s ({shape})")
        if h2load_rates:
            print(
                f"median, h2load:      {statistics.median(h2load_rates):,.0f} notifications/s "
                f"({shape}; clean runs)"
            )
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
