"""A TCP server that speaks just enough MongoDB wire protocol to be a stuck primary.

It answers the handshake and monitoring (``hello``/``isMaster``) like a standalone
server, so the driver selects it and sends commands, and then never answers any other
command: a primary waiting on ``w: majority``, or a half-open connection. What the
driver does then is up to its own ``timeoutMS``.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import bson

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
_HANDSHAKE = {"hello", "ismaster"}


def _hello() -> dict[str, Any]:
    return {
        "ok": 1.0,
        "isWritablePrimary": True,
        "ismaster": True,
        "helloOk": True,
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
        "localTime": datetime.now(UTC),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": 1,
        "minWireVersion": 0,
        "maxWireVersion": 21,
        "readOnly": False,
    }


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError
        data += chunk
    return data


def _serve(conn: socket.socket, seen: list[str]) -> None:
    try:
        while True:
            length, request_id, _to, opcode = struct.unpack("<iiii", _read(conn, 16))
            body = _read(conn, length - 16)
            if opcode == OP_QUERY:
                # flags, collection name (cstring), skip, return, then the query document
                at = 4 + body.index(b"\0", 4) + 1 + 8
                command = bson.decode(body[at:])
            elif opcode == OP_MSG:
                command = bson.decode(body[5:])  # flags, section kind 0, document
            else:
                continue
            name = next(iter(command)).lower()
            seen.append(name)
            if name not in _HANDSHAKE:
                continue  # never answered
            reply = bson.encode(_hello())
            if opcode == OP_QUERY:
                payload = struct.pack("<iqii", 0, 0, 0, 1) + reply
                op = OP_REPLY
            else:
                payload = struct.pack("<I", 0) + b"\0" + reply
                op = OP_MSG
            conn.sendall(struct.pack("<iiii", 16 + len(payload), 0, request_id, op) + payload)
    except (ConnectionError, OSError):
        pass
    finally:
        conn.close()


@contextmanager
def stuck_primary() -> Iterator[tuple[str, list[str]]]:
    """``(url, commands seen)`` of a server that never answers a command."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_serve, args=(conn, seen), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true", seen
    finally:
        stop.set()
        thread.join(5)
        listener.close()
