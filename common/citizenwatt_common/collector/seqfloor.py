"""A collector's ``seq``: increasing within a run and across restarts, whatever the clock does.

Older versions started each run's seqs at the wall clock in milliseconds; a Pi booting with its
clock an hour behind (no real-time clock) then started below the previous run. Now a floor is
kept beside the outbox, ``<CW_OUTBOX_PATH>.seq``: a number no seq handed out so far reaches. It
is written for a block of ``BLOCK`` seqs at a time, before the block's first seq is used (one small
write and fsync per 1000 readings: under two hours at one reading per 8 s, kind to an SD card), so
a restart, or a power cut, resumes at the next block: seqs skip at most a block, never go back.

The first start with this file missing (a new collector, or an older version's outbox) starts
where the older versions did, at the wall clock in milliseconds, and above every seq the outbox
still holds. Without an outbox path nothing can be kept: seqs start from the clock, as before.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

BLOCK = 1000
SUFFIX = ".seq"


def floor_path(outbox_path: str | Path) -> Path:
    return Path(f"{outbox_path}{SUFFIX}")


def read_floor(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("%s unreadable (%s): seqs start from the clock and the outbox instead", path, exc)
        return None
    try:
        return int(text.strip())
    except ValueError:
        log.warning("%s holds %r, not a number: seqs start from the clock and the outbox instead", path, text[:40])
        return None


def _write_durably(path: Path, value: int) -> None:
    """A new file renamed over the old one, both synced: after a power cut, one or the other."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{value}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class SeqCounter:
    def __init__(self, outbox_path: str | Path | None, newest_kept: int | None, clock_ms: Callable[[], int]) -> None:
        """``newest_kept``: the highest seq the outbox holds; ``clock_ms``: the wall clock in ms,
        asked only when there is no floor yet."""
        self._path = None if outbox_path is None else floor_path(outbox_path)
        floor = None if self._path is None else read_floor(self._path)
        start = clock_ms() if floor is None else floor
        self._next = max(start, (newest_kept or 0) + 1)
        self._reserved = self._next  # seqs below this are covered by the file
        self.first = self._next

    def next(self) -> int:
        if self._next >= self._reserved and self._path is not None:
            self._reserved = self._next + BLOCK
            _write_durably(self._path, self._reserved)
        seq = self._next
        self._next += 1
        return seq

    @property
    def last(self) -> int:
        """The newest seq handed out (``first - 1`` before any)."""
        return self._next - 1
