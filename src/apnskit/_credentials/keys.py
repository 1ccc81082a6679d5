"""Reading key material, shared by token and certificate credentials.

Files, PEM blocks and private keys, with errors (:class:`~apnskit.CredentialsError`) that say
what was found and never show the secret itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TypeAlias

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from apnskit._errors import CredentialsError

__all__ = [
    "PRIVATE_KEY_LABELS",
    "PrivateKey",
    "describe_key",
    "is_encrypted_block",
    "pem_blocks",
    "read_file",
]

_PEM_BLOCK_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
#: The PEM labels a private key comes under (PKCS#8, encrypted PKCS#8, traditional RSA / EC).
PRIVATE_KEY_LABELS = frozenset(
    {b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY"}
)

#: The private keys a client certificate may have.
PrivateKey: TypeAlias = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | dsa.DSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def read_file(what: str, path: str | os.PathLike[str]) -> bytes:
    """The bytes of the file at ``path``.

    Raises:
        CredentialsError: It cannot be read; the message starts with ``what`` and the path.
    """
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CredentialsError(f"{what} {os.fspath(path)}: no such file") from None
    except IsADirectoryError:
        raise CredentialsError(f"{what} {os.fspath(path)}: is a directory, not a file") from None
    except PermissionError:
        raise CredentialsError(f"{what} {os.fspath(path)}: permission denied") from None
    except OSError as exc:
        raise CredentialsError(
            f"{what} {os.fspath(path)}: cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None


def pem_blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (label, block) pairs of the PEM ``data``, in order."""
    return [(m.group(1), m.group(0)) for m in _PEM_BLOCK_RE.finditer(data)]


def is_encrypted_block(label: bytes, block: bytes) -> bool:
    """Whether the PEM private key ``block`` (under ``label``) needs a password."""
    # PKCS#8 "ENCRYPTED PRIVATE KEY", or the traditional OpenSSL "Proc-Type: 4,ENCRYPTED" header.
    return label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block


_NIST_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def describe_key(key: object) -> str:
    """What kind of key ``key`` is (``"an RSA private key (2048 bits)"``), for messages."""
    if isinstance(key, rsa.RSAPrivateKey):
        return f"an RSA private key ({key.key_size} bits)"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        nist = _NIST_CURVE_NAMES.get(key.curve.name)
        named = f"{nist} ({key.curve.name})" if nist else key.curve.name
        return f"an EC {named} private key"
    if isinstance(key, dsa.DSAPrivateKey):
        return "a DSA private key"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "an Ed25519 private key"
    if isinstance(key, ed448.Ed448PrivateKey):
        return "an Ed448 private key"
    return f"a {type(key).__name__}"
