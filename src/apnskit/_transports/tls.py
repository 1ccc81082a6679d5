"""TLS in memory (``ssl.SSLObject`` over two ``ssl.MemoryBIO``), for both transports.

``ssl.SSLSocket`` reads each TLS record with two ``read()`` system calls (its 5-byte header,
then its body: OpenSSL's read-ahead is off and Python cannot turn it on), and anyio's
``TLSStream`` returns one record per ``receive()``, each a pass through its Python code. APNs
answers every request with a record of its own (about 100 bytes), so a burst of responses
cost a system call, or an await, per response. Fed from one read of the raw stream, an
``ssl.SSLObject`` decrypts the whole burst from memory and :meth:`TlsLayer.decrypt` hands it
over 64 records at a time: one dispatcher pass per 64 responses.
"""

from __future__ import annotations

import ssl
from typing import Final

__all__ = ["READ_SIZE", "TlsLayer"]

# Bytes asked of the raw stream per read: a burst of a few thousand responses.
READ_SIZE = 256 * 1024
# Records decrypted per call at most; the rest wait in memory for the next call (`more`). The
# dispatcher then takes a burst in steps of about 64 responses, and what each step makes
# (events, results, the next notifications) is mostly gone before the next: taking 2,500 at
# once made hundreds of objects live at a time, which the garbage collector (run after a net
# 700 new objects) paid for, about 11 % more instructions per notification in the compiled
# build (callgrind, issue 13).
_RECORDS_PER_CALL: Final = 64


class TlsLayer:
    """A TLS client session in memory: feed it what the raw stream read, send what it wrote.

    ``end_pending``: :meth:`decrypt` met the end of the session after records it returned
    first; the next call reports the end (which select() cannot see: nothing is left to read
    from the socket). ``more``: it stopped after its share of records with more in memory,
    which select() cannot see either.
    """

    __slots__ = ("end_pending", "incoming", "more", "obj", "outgoing")

    def __init__(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        self.end_pending = False
        self.more = False

    def handshake_step(self) -> bool:
        """Advance the handshake with what was fed: True when it is complete.

        Send what it wrote (``outgoing``) either way; when False, feed the server's answer.
        Raises the native ``ssl.SSLError`` when the handshake fails.
        """
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def feed(self, data: bytes) -> None:
        """Hand over what the raw stream read; ``b""`` is its end."""
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()  # the next decrypt() says how it ended

    def decrypt(self) -> bytes | None:
        """Whole records fed so far, up to 64, as plaintext: ``None`` if none, ``b""`` at the end.

        Raises ``ssl.SSLEOFError`` for an end without close_notify (a "ragged" end, which
        ``ssl.SSLSocket``'s ``suppress_ragged_eofs`` would report as ``b""``) and
        ``ssl.SSLError`` for a broken session.
        """
        self.end_pending = self.more = False
        obj, incoming = self.obj, self.incoming
        chunks: list[bytes] = []
        data: bytes | None
        try:
            while True:
                # One record per call. With read-ahead off OpenSSL takes exactly its bytes,
                # so `incoming.pending` at 0 means all were read, without paying for the
                # SSLWantReadError (a Python exception) at the end of every burst.
                data = obj.read(READ_SIZE)
                if not data:  # close_notify: read() returns b"" (and again if asked again)
                    break
                chunks.append(data)
                if not incoming.pending:
                    break
                if len(chunks) == _RECORDS_PER_CALL:
                    self.more = True
                    break
        except ssl.SSLWantReadError:
            data = None  # what is left is part of a record
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            if not chunks:
                raise
            data = b""  # raised again by the next call
        if not chunks:
            return data
        # The end right behind the records: they go first, the end at the next call.
        self.end_pending = data == b""
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
