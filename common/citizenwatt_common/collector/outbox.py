"""A collector's durable outbox: every reading stays on disk until the aggregator says it is stored.

A broker acknowledgement (PUBACK) is not enough: a broker killed before its next snapshot forgets
messages it had acknowledged. So an entry leaves the outbox only when the aggregator confirms the
commit (on ``<base>/<sensor>/committed``); everything else is sent again after a reconnect or a
restart, and the database's (sensor, ts) key makes the repeats harmless.

Written for an SD card, where every byte and every sync wears the card:

- Each reading is one record appended with a single ``write()`` to a log file, and nothing else.
  A killed collector (or container) loses nothing: the data is in the kernel's page cache.
- The log is fsynced only when a reading has waited ``sync_after`` seconds (9 s) without being
  confirmed. The aggregator commits at most 8 s after a reading arrives, so in steady state the
  confirmation comes first and the collector never syncs; while the aggregator, the broker or
  the database is away, the outbox syncs at most once per ``sync_after``. A power cut therefore
  loses at most the readings of the last ``sync_after`` seconds (plus the time of one fsync)
  that the database has not committed yet: the documented window.
- Confirmations are not written at all: they only let the file be emptied. The log is two
  segment files used in turn: when the one being written reaches ``segment_bytes`` and every
  reading in the other is confirmed (or dropped), the other is truncated and written next. No
  rewrite, no rename, no sync. After a restart the readings of both segments are sent again
  (at most two segments' worth, harmless repeats), so nothing confirmation-related has to be
  durable.
- Records carry a CRC: a record torn by a power cut ends the log there (and is cut off).
- A reading held while the clock was not synchronised (held.py) is written again under the same
  seq once released: reading the log back, the released record wins, wherever each one lies.

With no path the same code keeps the readings in memory only.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from .held import is_held

log = logging.getLogger(__name__)

# One reading's record: marker byte, seq, payload length, CRC-32 of seq and payload; then the payload.
_HEADER = struct.Struct("<BqII")
_MARKER = 0xC7  # zeroed or foreign bytes are never mistaken for a record
# Readings not confirmed stored after this long are fsynced: the power-cut window (with the time
# of the fsync itself). Must stay above the aggregator's batch delay (8 s by default) so that
# steady state never syncs, and at most 10 s.
SYNC_AFTER_SECONDS = 9.0
# About 380 readings of ~170 bytes: what a restart may send again, already stored.
SEGMENT_BYTES = 64 * 1024
_LEGACY_SQLITE_MAGIC = b"SQLite format 3\x00"


def segment_paths(path: str | Path) -> tuple[Path, Path]:
    return Path(f"{path}.0"), Path(f"{path}.1")


def _crc(seq: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<q", seq)))


def _encode(seq: int, payload: bytes) -> bytes:
    return _HEADER.pack(_MARKER, seq, len(payload), _crc(seq, payload)) + payload


def _decode(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """Records from the start of ``data`` up to the first torn or foreign one; and where that is."""
    records: list[tuple[int, bytes]] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        marker, seq, length, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        if marker != _MARKER or end > len(data):
            break
        payload = data[pos + _HEADER.size : end]
        if _crc(seq, payload) != crc:
            break
        records.append((seq, payload))
        pos = end
    return records, pos


def _legacy_paths(path: str | Path) -> list[Path]:
    """Where an older version's SQLite outbox may be: at the path itself, or with ``.sqlite``."""
    found = []
    for candidate in (Path(path), Path(f"{path}.sqlite")):
        try:
            with candidate.open("rb") as handle:
                if handle.read(len(_LEGACY_SQLITE_MAGIC)) == _LEGACY_SQLITE_MAGIC:
                    found.append(candidate)
        except OSError:
            continue
    return found


def _legacy_records(path: Path) -> list[tuple[int, bytes]]:
    # Imported here, once in a collector's life if ever: sqlite3 costs every collector 1.3 MB of RSS.
    import sqlite3

    db = sqlite3.connect(str(path))
    try:
        return [(int(s), bytes(p)) for s, p in db.execute("SELECT seq, payload FROM outbox ORDER BY seq")]
    except sqlite3.DatabaseError:
        return []
    finally:
        db.close()


def _supersedes(payload: bytes, kept: bytes | None) -> bool:
    """Whether a record read after ``kept`` (same seq) replaces it: a held one never replaces a
    released one (the segments are not read in the order they were written)."""
    return kept is None or not is_held(payload) or is_held(kept)


def records_in(path: str | Path | None) -> list[tuple[int, bytes]]:
    """Every reading an outbox at ``path`` holds on disk, confirmed or not, by seq (read-only)."""
    if path is None:
        return []
    kept: dict[int, bytes] = {}
    for legacy in _legacy_paths(path):
        kept.update(_legacy_records(legacy))
    for segment in segment_paths(path):
        try:
            records = _decode(segment.read_bytes())[0]
        except FileNotFoundError:
            continue
        for seq, payload in records:
            if _supersedes(payload, kept.get(seq)):
                kept[seq] = payload
    return sorted(kept.items())


def newest_seq_in(path: str | Path | None) -> int | None:
    """The highest seq kept by a previous run, so a new run never reuses one (the Pi may boot with a wrong clock)."""
    records = records_in(path)
    return records[-1][0] if records else None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Outbox:
    def __init__(
        self,
        path: str | Path | None,
        capacity: int,
        *,
        sync_after: float = SYNC_AFTER_SECONDS,
        segment_bytes: int = SEGMENT_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self._sync_after = sync_after
        self._segment_bytes = segment_bytes
        self._clock = clock
        # seq -> (payload, segment), kept in seq order. Payloads are the same objects the
        # publisher holds in its send queue: no second copy.
        self._live: dict[int, tuple[bytes, int]] = {}
        self._live_in = [0, 0]  # unconfirmed readings per segment
        self._unsynced: deque[tuple[float, int]] = deque()  # (added at, seq) written since the last sync
        self._fds: list[int] = []
        self._sizes = [0, 0]
        self._dirty = [False, False]
        self._active = 0
        self.syncs = 0  # fsyncs done (tests and the SD card bench read it)
        if path is not None:
            self._open(Path(path))

    # -- opening ---------------------------------------------------------------------------------
    def _open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        segments = segment_paths(path)
        created = False
        contents: list[list[tuple[int, bytes]]] = []
        for index, segment in enumerate(segments):
            created |= not segment.exists()
            fd = os.open(segment, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            self._fds.append(fd)
            data = b""
            while chunk := os.read(fd, 1 << 20):
                data += chunk
            records, valid = _decode(data)
            if valid < len(data):
                # A record torn by a power cut (never synced, so within the window): cut it off so
                # new records follow valid ones.
                log.warning("%s: dropping %d bytes of a torn record", segment, len(data) - valid)
                os.ftruncate(fd, valid)
            self._sizes[index] = valid
            self._dirty[index] = valid > 0
            contents.append(records)
        # The segment holding the newest reading is the one being written.
        newest = [max((seq for seq, _ in records), default=-1) for records in contents]
        self._active = 0 if newest[0] >= newest[1] else 1
        older = 1 - self._active
        for index in (older, self._active):
            for seq, payload in contents[index]:
                kept = self._live.get(seq)
                if _supersedes(payload, None if kept is None else kept[0]):
                    self._keep(seq, payload, index)
        legacy = _legacy_paths(path)
        for old in legacy:
            for seq, payload in _legacy_records(old):
                if seq not in self._live:
                    self._append(seq, payload)
        self._trim_to_capacity(warn=True)
        if any(self._dirty):
            # What a previous run left may never have been synced (it was killed): make it durable
            # now, once, so the window is counted from this start at the latest.
            self._sync()
        if created:
            _fsync_dir(path.parent)
        for old in legacy:
            for leftover in (old, Path(f"{old}-wal"), Path(f"{old}-shm")):
                leftover.unlink(missing_ok=True)
            log.info("%s: imported the outbox of an older version", old)
        if legacy:
            _fsync_dir(path.parent)

    def _keep(self, seq: int, payload: bytes, segment: int) -> None:
        previous = self._live.pop(seq, None)
        if previous is not None:
            self._live_in[previous[1]] -= 1
        if self._live and seq < next(reversed(self._live)):
            self._live[seq] = (payload, segment)
            self._live = dict(sorted(self._live.items()))
        else:
            self._live[seq] = (payload, segment)
        self._live_in[segment] += 1

    # -- writing ---------------------------------------------------------------------------------
    def _append(self, seq: int, payload: bytes) -> None:
        if self._fds:
            other = 1 - self._active
            if self._sizes[self._active] >= self._segment_bytes and self._live_in[other] == 0:
                # Everything in the other segment is stored (or dropped): reuse it. No sync needed:
                # if the truncation does not survive a power cut, its readings are sent again.
                os.ftruncate(self._fds[other], 0)
                self._sizes[other] = 0
                self._active = other
            record = _encode(seq, payload)
            os.write(self._fds[self._active], record)
            self._sizes[self._active] += len(record)
            self._dirty[self._active] = True
            self._unsynced.append((self._clock(), seq))
        self._keep(seq, payload, self._active)

    def add(self, seq: int, payload: bytes) -> int:
        """Keep a reading; returns how many of the oldest had to be dropped to stay within capacity."""
        self._append(seq, payload)
        return self._trim_to_capacity()

    def _trim_to_capacity(self, warn: bool = False) -> int:
        excess = len(self._live) - self.capacity
        if excess <= 0:
            return 0
        for seq in list(self._live)[:excess]:
            self._forget(seq)
        if warn:
            log.warning("outbox holds more than its capacity (%d): dropped the %d oldest", self.capacity, excess)
        return excess

    def _forget(self, seq: int) -> bool:
        entry = self._live.pop(seq, None)
        if entry is None:
            return False
        self._live_in[entry[1]] -= 1
        return True

    def confirm(self, ranges: Iterable[tuple[int, int]]) -> int:
        """Forget readings the aggregator committed (inclusive seq ranges); returns how many."""
        removed = 0
        for low, high in ranges:
            if high - low + 1 > len(self._live):
                candidates: Iterable[int] = [seq for seq in self._live if low <= seq <= high]
            else:
                candidates = range(low, high + 1)
            removed += sum(self._forget(seq) for seq in candidates)
        return removed

    # -- syncing ---------------------------------------------------------------------------------
    def sync_deadline(self) -> float | None:
        """When (on the outbox's clock) the oldest unsynced, unconfirmed reading must be synced."""
        while self._unsynced and self._unsynced[0][1] not in self._live:
            self._unsynced.popleft()  # confirmed or dropped: no need to make it durable
        return self._unsynced[0][0] + self._sync_after if self._unsynced else None

    def sync_if_due(self) -> bool:
        deadline = self.sync_deadline()
        if deadline is None or self._clock() < deadline:
            return False
        self._sync()
        return True

    def sync_now(self) -> None:
        """Make everything written so far durable (a released held reading, before it is sent)."""
        self._sync()

    def _sync(self) -> None:
        for index, fd in enumerate(self._fds):
            if self._dirty[index]:
                os.fsync(fd)
                self.syncs += 1
                self._dirty[index] = False
        self._unsynced.clear()

    # -- reading ---------------------------------------------------------------------------------
    def all_in_order(self) -> list[tuple[int, bytes]]:
        return [(seq, payload) for seq, (payload, _) in self._live.items()]

    def oldest_seq(self) -> int | None:
        return next(iter(self._live), None)

    def __len__(self) -> int:
        return len(self._live)

    def close(self) -> None:
        """Stopping: make what is still unconfirmed durable (nobody will sync it later)."""
        if self._fds and self.sync_deadline() is not None:
            self._sync()
        for fd in self._fds:
            os.close(fd)
        self._fds = []
