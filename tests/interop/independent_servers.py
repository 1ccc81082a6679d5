"""Starting the independent HTTP/2 servers of the interop tests (and the fuzz seed recorder).

Used by ``test_interop.py`` and by ``bench/fuzz_core.py --record``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = Path(__file__).parent
NODE = shutil.which("node")
#: What stresses a client most: every body split across many DATA frames and WINDOW_UPDATEs,
#: one stream until the first answer, and no HPACK dynamic table at all.
TIGHT = {
    "initialWindowSize": 16,
    "maxConcurrentStreams": 1,
    "raiseStreamsTo": 100,
    "headerTableSize": 0,
}
CONFIGS: dict[str, dict[str, int]] = {"default": {}, "tight": TIGHT}


def make_tls_files(directory: Path) -> tuple[str, str]:
    """Write a self-signed certificate for 127.0.0.1 (its own trust anchor) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(certfile), str(keyfile)


@contextlib.contextmanager
def running_server(kind: str, options: dict[str, int], tls: tuple[str, str]) -> Iterator[int]:
    """Run the ``"node"`` or ``"hypercorn"`` server on 127.0.0.1; yields its port."""
    if kind == "node":
        assert NODE is not None, "node is not installed"
        command = [NODE, str(HERE / "node_apns_server.js")]
    else:
        command = [sys.executable, str(HERE / "hypercorn_apns_server.py")]
    process = subprocess.Popen(
        [*command, *tls, json.dumps(options)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints its port once listening
        assert line.startswith("LISTENING "), f"{kind} server did not start: {line!r}"
        yield int(line.split()[1])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
