"""Long fuzz run of the core's receive path, for use before a release (issue 10).

Mutates server byte streams recorded from node's ``http2`` module and hypercorn
(``tests/core/fuzz_seeds/*.bin``) and feeds them to ``ApnsConnection``, checking the rule in
``tests/core/fuzz_support.py``: nothing escapes ``receive_data``, a violation ends the
connection with our GOAWAY, every request ends in exactly one outcome, buffers stay bounded.
The default test suite runs the same checks for about 20 s (``tests/core/test_core_fuzz.py``).

    python bench/fuzz_core.py --seconds 600 [--seed 1]
    python bench/fuzz_core.py --record        # re-record the seeds (needs node, hypercorn)

A failing case is written to ``fuzz-failure-<seed>.bin`` (the chunks, length-prefixed) and the
run stops with the traceback.
"""

from __future__ import annotations

import argparse
import collections
import random
import socket
import ssl
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [
    str(ROOT / "tests"),
    str(ROOT / "tests" / "core"),
    str(ROOT / "tests" / "interop"),
]

import fuzz_support  # noqa: E402

from apnskit._core.connection import ApnsConnection  # noqa: E402
from apnskit._core.events import ConnectionTerminated, ResponseReceived, StreamReset  # noqa: E402


def fuzz(seconds: float, seed: int) -> int:
    seeds = fuzz_support.load_seeds()
    recordings = list(seeds.values())
    streams = [b"".join(chunks) for chunks in recordings]
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    runs = 0
    codes: collections.Counter[str] = collections.Counter()
    while time.monotonic() < deadline:
        case_seed = rng.randrange(2**63)
        case = random.Random(case_seed)
        recording = case.choice(recordings)
        mutated = fuzz_support.mutate(recording, case, streams)
        chunks = fuzz_support.split(mutated, case)
        try:
            outcome = fuzz_support.check_stream(chunks)
        except Exception:
            path = Path(f"fuzz-failure-{case_seed}.bin")
            path.write_bytes(fuzz_support.encode_chunks(chunks))
            traceback.print_exc()
            print(f"FAILED after {runs} runs; case written to {path}")
            return 1
        runs += 1
        codes["ok" if outcome.error_code is None else f"error {outcome.error_code:#x}"] += 1
    print(f"fuzz_core: {runs} mutated streams in {seconds:.0f} s from {len(seeds)} seeds")
    for name, count in codes.most_common():
        print(f"  {name}: {count}")
    return 0


def record(count_check: bool = True) -> None:
    """Record what each interop server sends on one connection to tests/core/fuzz_seeds."""
    import independent_servers

    fuzz_support.SEED_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        tls = independent_servers.make_tls_files(Path(directory))
        for kind in ("node", "hypercorn"):
            for config, options in independent_servers.CONFIGS.items():
                with independent_servers.running_server(kind, options, tls) as port:
                    data = _record_one(port, tls[0])
                name = f"{kind}-{config}"
                (fuzz_support.SEED_DIR / f"{name}.bin").write_bytes(
                    fuzz_support.encode_chunks(data)
                )
                print(f"recorded {name}: {sum(map(len, data))} bytes in {len(data)} reads")
                if count_check:
                    responses = fuzz_support.check_stream(data).responses
                    assert responses == fuzz_support.REQUESTS, responses


def _record_one(port: int, ca_file: str) -> list[bytes]:
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(["h2"])
    received: list[bytes] = []
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        conn = ApnsConnection(f"127.0.0.1:{port}")
        conn.initiate()
        for i, token in enumerate(fuzz_support.TOKENS):
            conn.send_request(
                f"/3/device/{token}",
                (*fuzz_support.HEADERS, ("apns-id", f"00000000-0000-4000-8000-{i:012x}")),
                fuzz_support.BODY,
                i,
            )
        done = 0
        while done < fuzz_support.REQUESTS:
            sock.sendall(conn.data_to_send())
            data = sock.recv(65536)
            if not data:
                break
            received.append(data)
            for event in conn.receive_data(data):
                if isinstance(event, (ResponseReceived, StreamReset)):
                    done += 1
                elif isinstance(event, ConnectionTerminated):
                    raise RuntimeError(f"server ended the connection: {event}")
        sock.sendall(conn.data_to_send())
    return received


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--record", action="store_true", help="re-record the seed streams")
    args = parser.parse_args()
    if args.record:
        record()
        return 0
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"seed {seed}")
    return fuzz(args.seconds, seed)


if __name__ == "__main__":
    sys.exit(main())
