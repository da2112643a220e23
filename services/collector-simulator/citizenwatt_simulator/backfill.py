"""A first start's history: the simulated household's past days, published before going live.

So that a newcomer's first ``make run`` shows full day, week and month views at once instead of an
empty page, the simulator publishes ``CW_BACKFILL_DAYS`` days of past readings, one per
``CW_BACKFILL_PERIOD_SECONDS`` (60 s: 43 200 readings for 30 days), then starts its live readings.

- **Same path as live readings.** Each one is a normal reading of kind ``simulator`` (that is what
  marks it simulated, in the database and in ``/api/v2/sensors``'s ``simulated``), with a seq,
  submitted to the collector's publisher: outbox, MQTT QoS 1, in order, confirmed by the aggregator.
- **Paced by the aggregator's confirmations, not by a timer.** At most ``WINDOW`` readings are
  submitted and not yet confirmed stored, so the backfill takes whatever rate the broker, the
  aggregator and the database allow (its commit pacing included), and its memory stays at
  ``WINDOW`` readings however long the history; the outbox's bound still applies on top.
- **Once.** A marker file beside the outbox (``<CW_OUTBOX_PATH>.backfill.json``) records the range
  and how far it got. It is written before the first reading and after every window, so a
  collector stopped midway resumes where it was (what it had submitted is in its outbox, which
  sends it again anyway), and a finished backfill never runs again. Deleting the file asks for a
  new one (readings at times already stored are kept once: (sensor, ts) is their key).
- **Contiguous with live readings.** Readings lie on a grid of the period (multiples of it in Unix
  time) from ``days`` before the start up to the present; the backfill keeps going until it has
  caught up with the clock, so the gap to the first live reading is under one period, and the
  energy between the two is counted (it must stay under ``CW_MAX_GAP_SECONDS``, 300 s by default).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from citizenwatt_common.collector.outbox import segment_paths
from citizenwatt_common.collector.publisher import PublisherStats
from citizenwatt_common.collector.runtime import CollectorRuntime

from .household import SimulatedHousehold

log = logging.getLogger(__name__)

# Submitted but not yet confirmed stored, at most: two of the aggregator's batches (500) in
# flight and two waiting, and about 350 kB of payloads in the publisher.
WINDOW = 2000
MARKER_SUFFIX = ".backfill.json"


@dataclass
class Progress:
    """What the marker file holds."""

    sensor: str
    first: float  # Unix time of the first backfilled reading
    period: float
    next: float  # readings before this time are stored (a restart resumes here)
    done: bool = False


def marker_path(outbox_path: str) -> Path:
    return Path(f"{outbox_path}{MARKER_SUFFIX}")


def load_progress(path: Path) -> Progress | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Progress(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        # A marker torn by a power cut: better to say so and go live than to backfill twice.
        log.warning("%s unreadable (%s): no backfill; delete it to backfill again", path, exc)
        return Progress(sensor="", first=0.0, period=1.0, next=0.0, done=True)


def save_progress(path: Path, progress: Progress) -> None:
    # Written whole to a new file, then renamed over the old one: a crash leaves one or the other.
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(asdict(progress)), encoding="utf-8")
    os.replace(temporary, path)


def ran_before(outbox_path: str | None) -> bool:
    """Whether a collector already ran with this outbox (its files, or an older version's SQLite
    file, are there). Only meaningful before this run's publisher has created its own files."""
    if not outbox_path:
        return False
    return any(Path(name).exists() for name in (outbox_path, f"{outbox_path}.sqlite", *segment_paths(outbox_path)))


def grid_start(now: float, days: float, period: float) -> float:
    """The first backfilled reading's time: ``days`` before ``now``, on the period's grid."""
    return math.floor(now / period) * period - round(days * 86_400 / period) * period


def backfill(
    runtime: CollectorRuntime,
    *,
    days: float,
    period: float,
    seed: int,
    zone: ZoneInfo,
    voltage: float,
    ran_before: bool = False,
) -> None:
    """Publish the missing past readings (see the module's doc); returns when caught up or stopped."""
    settings = runtime.settings
    if days <= 0:
        return
    if not settings.outbox_path:
        log.warning(
            "CW_BACKFILL_DAYS=%g ignored: it needs CW_OUTBOX_PATH, whose folder keeps the marker saying"
            " the backfill was done (without it every start would publish the history again)",
            days,
        )
        return
    path = marker_path(settings.outbox_path)
    # Its grid and its end are laid on the wall clock: not on one an hour off after a reboot.
    runtime.wait_for_clock()
    progress = load_progress(path)
    if progress is not None and progress.done:
        log.info("%s: simulated history already published (%s); going live", settings.sensor_id, path)
        return
    if progress is None and ran_before:
        # Not a first start: this simulator has been publishing live readings here (an older
        # version, or backfill turned on later). Simulated history under them would be a second,
        # different trace interleaved with the first, so none; the marker makes it final.
        save_progress(path, Progress(sensor=settings.sensor_id, first=0.0, period=period, next=0.0, done=True))
        log.info("%s: not a first start (an outbox is there already): no simulated history", settings.sensor_id)
        return
    if progress is None:
        first = grid_start(time.time(), days, period)
        progress = Progress(sensor=settings.sensor_id, first=first, period=period, next=first)
        save_progress(path, progress)
        log.info(
            "%s: publishing %g days of simulated history, one reading per %g s (about %d readings),"
            " before going live; CW_BACKFILL_DAYS=0 turns this off",
            settings.sensor_id,
            days,
            period,
            (time.time() - first) / period,
        )
    else:
        log.info("%s: resuming the simulated history at %s", settings.sensor_id, time.ctime(progress.next))
    house = SimulatedHousehold(seed=seed, zone=zone)
    publisher = runtime.publisher
    # Confirmations counted from here: the backfill may run ahead of what is confirmed by WINDOW.
    base = publisher.stats()
    submitted = 0

    def unconfirmed(stats: PublisherStats) -> int:
        return submitted - (stats.confirmed - base.confirmed) - (stats.dropped - base.dropped)

    def wait_until_at_most(pending: int) -> bool:
        """Until at most ``pending`` submitted readings are unconfirmed; False if stopped first."""
        waited_since = time.monotonic()
        while not runtime.stop_event.is_set():
            # The publisher notifies every change of its stats; the timeout only lets a stop in.
            if publisher.wait_for(lambda stats: unconfirmed(stats) <= pending, timeout=1.0):
                return True
            if time.monotonic() - waited_since > 60:
                log.info("%s: backfill waits for the aggregator to store its readings", settings.sensor_id)
                waited_since = time.monotonic()
        return False

    t = progress.next
    chunk = WINDOW // 2
    started = time.monotonic()
    while t < time.time() and not runtime.stop_event.is_set():
        # Half a window at a time: submit it, then wait for the half before it to be confirmed.
        chunk_start = t
        for _ in range(chunk):
            if t >= time.time():
                break
            power = house.power_at(t)
            runtime.publish(runtime.reading(power, ts=t, voltage=voltage, current=round(power / voltage, 3)))
            submitted += 1
            t += period
        if not wait_until_at_most(chunk):
            return
        # Everything before this chunk is confirmed stored: a restart resumes at the chunk.
        progress.next = chunk_start
        save_progress(path, progress)
    if runtime.stop_event.is_set() or not wait_until_at_most(0):
        return
    progress.next, progress.done = t, True
    save_progress(path, progress)
    log.info(
        "%s: simulated history published (%d readings in %.0f s); going live",
        settings.sensor_id,
        submitted,
        time.monotonic() - started,
    )
