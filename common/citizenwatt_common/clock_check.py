"""Readings whose time cannot be right, found before they are stored (issue 14: clock trouble).

A Raspberry Pi has no real-time clock: until NTP sets it, a collector may stamp readings an hour
in the past, or a day ahead. Stored, such a reading lands among other readings and changes their
energy, or becomes the sensor's "newest" for up to a day. Two rules find them; the aggregator
keeps what they find in ``quarantined_readings`` instead of ``readings`` (see batch.py):

- the future: stamped more than ``max_future`` seconds ahead of the aggregator's clock;
- time going back: a reading whose ``seq`` is higher than that of the sensor's newest stored
  reading, but whose ``ts`` is earlier (seq forward, ts back: the clock went back in between).

The second rule compares with one reading per sensor, its newest stored by time (its ``Mark``),
not with every stored reading: the aggregator keeps the marks in memory, read from the database
once per sensor. What it deliberately lets through:

- a lower seq than the mark's: an outbox replayed after an outage (old seqs, old times), or a
  collector of an older version restarted with its seq from 0 again (a reset). A reset moves the
  mark to the new numbering, so what follows is judged against it, and no history stays suspect;
- a reading without a seq: only the future rule applies to it.

Pure: no database, no clock of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from .contract import Reading

# CW_MAX_FUTURE_SECONDS' default (the aggregator's settings say why 300 s); the api refuses to
# release a reading still further ahead than this.
DEFAULT_MAX_FUTURE_SECONDS: Final = 300.0


@dataclass(frozen=True)
class Mark:
    """A sensor's newest stored reading by time, among those with a seq: a later seq must not precede it."""

    seq: int
    ts: float


@dataclass
class Triage:
    """What to do with a batch: the positions to quarantine, with their reasons, and each sensor's
    mark once the others are stored."""

    quarantined: dict[int, str] = field(default_factory=dict)
    marks: dict[str, Mark | None] = field(default_factory=dict)


def utc_text(ts: float) -> str:
    """2026-11-24T10:04:04Z: to the second (the seq says which reading; a fraction is noise)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").removesuffix("+00:00") + "Z"


def duration_text(seconds: float) -> str:
    """3592 -> '59 min 52 s', 82800 -> '23 h 0 min': how far off a clock is, for a human."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def future_reason(ts: float, now: float, max_future: float) -> str | None:
    """Why a reading stamped ``ts`` is too far ahead of ``now``, or None."""
    ahead = ts - now
    if ahead <= max_future:
        return None
    return (
        f"in the future: stamped {utc_text(ts)}, {duration_text(ahead)} ({ahead:.0f} s) ahead of the"
        f" aggregator's clock (more than CW_MAX_FUTURE_SECONDS = {max_future:g} s)"
    )


def time_back_reason(seq: int, ts: float, mark: Mark) -> str:
    return (
        f"time went back: seq {seq} is stamped {utc_text(ts)}, {duration_text(mark.ts - ts)} before"
        f" seq {mark.seq} ({utc_text(mark.ts)}), already stored with a lower seq"
    )


def triage(readings: Sequence[Reading], marks: dict[str, Mark | None], now: float, max_future: float) -> Triage:
    """Which readings of a batch to quarantine, given each sensor's mark before the batch.

    ``marks`` must hold every sensor of the batch (None: no stored reading with a seq). Readings
    are judged in seq order within each sensor, as if they had been stored one by one, each
    accepted one moving its sensor's mark. A reset inside the batch (the new numbering sorts
    first) would make the old numbering's last readings look like time going back: so the mark
    a reset replaces stays in use for the seqs above it, for the rest of the batch.
    """
    result = Triage(marks=dict(marks))
    retired: dict[str, Mark] = {}  # per sensor: the mark a reset in this batch replaced
    with_seq: list[tuple[str, int, int]] = []
    for position, reading in enumerate(readings):
        reason = future_reason(reading.ts, now, max_future)
        if reason is not None:
            result.quarantined[position] = reason
        elif reading.seq is not None:
            with_seq.append((reading.sensor, reading.seq, position))
    for sensor, seq, position in sorted(with_seq):
        ts = readings[position].ts
        mark = result.marks.get(sensor)
        if mark is None:
            result.marks[sensor] = Mark(seq, ts)
            continue
        if seq <= mark.seq:
            if ts > mark.ts:  # a lower seq, later in time: the collector's numbering started again
                retired.setdefault(sensor, mark)
                result.marks[sensor] = Mark(seq, ts)
            continue  # else an older reading replayed: nothing to compare it with
        old = retired.get(sensor)
        if ts < mark.ts and old is not None:  # of the numbering before the reset: judged by its mark
            if seq > old.seq and ts < old.ts:
                result.quarantined[position] = time_back_reason(seq, ts, old)
            elif seq > old.seq:
                retired[sensor] = Mark(seq, ts)
            continue
        if ts < mark.ts:
            result.quarantined[position] = time_back_reason(seq, ts, mark)
            continue
        result.marks[sensor] = Mark(seq, ts)
    return result
