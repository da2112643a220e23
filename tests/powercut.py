"""A power cut played on real processes' files: strace records each file's writes and syncs, and
what a cut leaves of a file is what it held at its last fsync (tests/test_faults.py,
tests/test_journal.py, tests/composefaults.py)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from tools.localstack import LocalMosquitto

# strace's options for it: every thread (-f), paths of descriptors (-y), unix times (-ttt).
TRACE_WRITES_AND_SYNCS = (
    *("-f", "-y", "-ttt", "-qq", "-s", "0", "-e", "trace=write,fsync,fdatasync,ftruncate"),
    *("-e", "signal=none"),
)


WINDOW_SECONDS = 10.0  # the README's bound: readings older than this at a power cut are never lost


@dataclass
class SegmentTrace:
    """One outbox file as the kernel saw it: its length, and its length when last fsynced."""

    size: int = 0
    synced: int = 0
    fsyncs: list[float] = field(default_factory=list)  # when (unix time)


_TRACE_LINE = re.compile(r"^\d+\s+([\d.]+)\s+(\w+)\((\d+)<([^>]*)>(.*)\)\s+=\s+(-?\d+)")


def outbox_writes(trace: Path, segments: tuple[Path, ...]) -> dict[Path, SegmentTrace]:
    """Replay the collector's write/fsync/ftruncate calls on its outbox files (strace -f -y -ttt).

    What a power cut leaves of a file is what it held at its last fsync: the kernel writes the
    rest back when it likes (up to 30 s later by default), so none of it can be counted on.
    """
    files = {path: SegmentTrace() for path in segments}
    names = {str(path): path for path in segments}
    for line in trace.read_text(errors="replace").splitlines():
        match = _TRACE_LINE.match(line)
        if not match or match.group(4) not in names:
            continue
        at, call, rest, result = float(match.group(1)), match.group(2), match.group(5), int(match.group(6))
        state = files[names[match.group(4)]]
        if result < 0:
            continue
        if call == "write":
            state.size += result
        elif call == "ftruncate":
            state.size = int(rest.split(",")[1])
            # Not synced: the old content (all of it confirmed, so in the database) may come back
            # or not. Keeping neither is the worst case.
            state.synced = min(state.synced, state.size)
        elif call in ("fsync", "fdatasync"):
            state.synced = state.size
            state.fsyncs.append(at)
    return files


def what_a_power_cut_leaves(files: dict[Path, SegmentTrace], broker: LocalMosquitto) -> int:
    """Cut each traced file back to its last fsync and take the broker's snapshot away (worse than
    a snapshot up to an hour old); returns the bytes cut off."""
    cut_off = 0
    for path, state in files.items():
        assert path.stat().st_size == state.size, f"the trace does not account for every byte of {path}"
        cut_off += state.size - state.synced
        os.truncate(path, state.synced)
    for leftover in broker.folder.glob("mosquitto.db*"):
        leftover.unlink()
    return cut_off
