"""The aggregator's journal: messages kept on disk from their acknowledgement until the commit
that stores them in PostgreSQL.

Why: a PostgreSQL commit writes at least one whole 8 KB WAL page and syncs it, however little it
holds. Committing every 8 s (the power-cut window) costs 2 KB per reading at 4 sensors, more
than the SD-card budget. With a journal the durable step is an append of the messages as they
came (about 100 bytes each) and one fdatasync per batch, and PostgreSQL gets the messages in
commits CW_COMMIT_SECONDS apart.

The file is a run of records, each: body length and CRC-32 of the body (two little-endian
uint32), then the body: the topic's length (uint16), the topic, the payload. A power cut can
leave a torn last record; reading stops at the first record that is short or fails its CRC, and
the file is cut back there, so that what is appended next can be read. Replaying a record
already stored is harmless: the (sensor, ts) key makes a reading a no-op the second time, as a
redelivery from the broker is.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")  # body length, CRC-32 of the body
_TOPIC_LENGTH = struct.Struct("<H")


def encode_record(topic: str, payload: bytes) -> bytes:
    name = topic.encode()
    body = _TOPIC_LENGTH.pack(len(name)) + name + payload
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def decode_records(data: bytes) -> tuple[list[tuple[str, bytes]], int]:
    """The records at the start of ``data``, and how many bytes they take (the rest is torn)."""
    records: list[tuple[str, bytes]] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        start, end = offset + _HEADER.size, offset + _HEADER.size + length
        if end > len(data) or length < _TOPIC_LENGTH.size:
            break
        body = data[start:end]
        if zlib.crc32(body) != crc:
            break
        (topic_length,) = _TOPIC_LENGTH.unpack_from(body)
        if _TOPIC_LENGTH.size + topic_length > length:
            break
        try:
            topic = body[_TOPIC_LENGTH.size : _TOPIC_LENGTH.size + topic_length].decode()
        except UnicodeDecodeError:
            break
        records.append((topic, body[_TOPIC_LENGTH.size + topic_length :]))
        offset = end
    return records, offset


class Journal:
    """One append-only file. Not thread-safe: the aggregator's main loop alone uses it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.size = os.fstat(self._fd).st_size

    def read(self) -> list[tuple[str, bytes]]:
        """What an earlier run left (messages perhaps not in PostgreSQL yet); a torn tail is cut off."""
        data = os.pread(self._fd, self.size, 0) if self.size else b""
        records, valid = decode_records(data)
        if valid < len(data):
            log.warning("journal %s: %d bytes after its last whole record dropped (torn)", self.path, len(data) - valid)
            os.ftruncate(self._fd, valid)
            self.size = valid
        return records

    def append(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Written (the kernel has it: a killed process loses nothing), not yet synced."""
        chunk = memoryview(b"".join(encode_record(topic, payload) for topic, payload in messages))
        while chunk:
            written = os.write(self._fd, chunk)
            chunk = chunk[written:]
            self.size += written

    def sync(self) -> None:
        """On the card: what was appended survives a power cut."""
        os.fdatasync(self._fd)

    def clear(self) -> None:
        """Everything in it is committed to PostgreSQL. Not synced: should a power cut bring the
        old records back, they are replayed as the no-ops they then are."""
        os.ftruncate(self._fd, 0)
        self.size = 0

    def close(self) -> None:
        os.close(self._fd)
