"""Turning a batch of MQTT messages into one committed transaction."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import psycopg

from citizenwatt_common.clock_check import DEFAULT_MAX_FUTURE_SECONDS, Mark, triage
from citizenwatt_common.contract import Reading, Rejection, Topics, parse_reading
from citizenwatt_common.store import load_household, register_sensors, store_readings
from citizenwatt_common.tariff_store import day_of_tempo_topic, parse_tempo_payload, store_colour
from citizenwatt_common.tariffs import TariffError

log = logging.getLogger(__name__)

_PREVIEW_BYTES = 120


class Incoming(NamedTuple):
    """A message as received, with what is needed to acknowledge it after the commit.

    A named tuple: one is made per message on paho's thread, at thousands per second."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int  # which MQTT connection delivered it; acks are only valid on that one


@dataclass
class BatchOutcome:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    quarantined: int = 0  # newly kept aside by the clock rules (clock_check.py)
    sensors: dict[str, Reading] = field(default_factory=dict)
    # seqs now safely kept (stored, already stored, kept as rejected or quarantined), per sensor: the
    # collectors prune their outboxes with these.
    kept_seqs: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class ClockGuard:
    """The clock rules between batches: each sensor's mark (its newest stored reading with a seq),
    read from the database the first time the sensor is in a batch, then kept up to date here.

    One indexed lookup per sensor per run, not per reading nor per batch. A reading stored by
    another writer (the api releasing a quarantined reading, the legacy insert route) does not
    move the marks: those are older readings, or readings without a seq, or the administrator's
    explicit choice."""

    max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS
    marks: dict[str, Mark | None] = field(default_factory=dict)

    def marks_for(self, conn: psycopg.Connection[Any], sensors: set[str], now: float) -> dict[str, Mark | None]:
        missing = sorted(sensors - self.marks.keys())
        found: dict[str, Mark | None] = dict.fromkeys(missing)
        if missing:
            # Readings stamped in the future that were stored before these rules existed are left
            # out: taken as a mark, one would quarantine every reading until its time came.
            rows = conn.execute(
                """
                SELECT s.key, last.seq, last.ts FROM sensors s
                CROSS JOIN LATERAL (
                    SELECT r.seq, extract(epoch FROM r.ts)::float8 AS ts FROM readings r
                    WHERE r.sensor_id = s.id AND r.ts <= to_timestamp(%s) ORDER BY r.ts DESC LIMIT 1
                ) AS last
                WHERE s.key = ANY(%s::text[])
                """,
                (now + self.max_future_seconds, missing),
            ).fetchall()
            for key, seq, ts in rows:
                found[str(key)] = None if seq is None else Mark(int(seq), float(ts))
        return {sensor: self.marks[sensor] if sensor in self.marks else found[sensor] for sensor in sensors}


def write_batch(
    conn: psycopg.Connection[Any],
    topics: Topics,
    batch: list[Incoming],
    zone: ZoneInfo,
    guard: ClockGuard | None = None,
) -> BatchOutcome:
    """Validate and store a batch in one transaction; raises psycopg.Error if it did not commit.

    ``guard``: the clock rules' state, kept between batches (a new one reads the marks again)."""
    guard = guard if guard is not None else ClockGuard()
    outcome = BatchOutcome()
    readings: list[Reading] = []
    carriers: list[Incoming] = []  # the message each reading came in
    rejections: list[tuple[Incoming, Rejection]] = []
    colours: list[tuple[date, str]] = []
    for message in batch:
        tempo = _tempo_colour(topics, message)
        if tempo is not None:
            if isinstance(tempo, Rejection):
                rejections.append((message, tempo))
            else:
                colours.append(tempo)
            continue
        sensor = topics.sensor_of(message.topic)
        result = parse_reading(sensor, message.payload)
        if isinstance(result, Rejection):
            rejections.append((message, result))
            seq = seq_of_payload(message.payload)
            if sensor is not None and seq is not None:
                outcome.kept_seqs.setdefault(sensor, []).append(seq)
        else:
            readings.append(result)
            carriers.append(message)
            if result.seq is not None:
                outcome.kept_seqs.setdefault(result.sensor, []).append(result.seq)
    with conn.transaction():
        # With its tariffs: each reading's legacy night flag follows the version in force.
        household = load_household(conn, with_plan=True)
        now = time.time()
        verdict = triage(
            readings, guard.marks_for(conn, {r.sensor for r in readings}, now), now, guard.max_future_seconds
        )
        aside = [(readings[i], carriers[i], reason) for i, reason in sorted(verdict.quarantined.items())]
        if aside:
            carriers = [m for i, m in enumerate(carriers) if i not in verdict.quarantined]
            readings = [r for i, r in enumerate(readings) if i not in verdict.quarantined]
        outcome.sensors = {r.sensor: r for r in readings}
        stored = store_readings(conn, readings, household, zone)
        quarantined = _quarantine(conn, aside)
        for day, colour in colours:
            if store_colour(conn, day, colour, "mqtt"):
                log.info("Tempo colour of %s: %s", day.isoformat(), colour)
        for position in stored.conflicts:
            reason = "another reading of this sensor, with other values, is stored at the same microsecond"
            rejections.append((carriers[position], Rejection(reason)))
        if stored.conflicts:  # the sensors' newest readings are the ones really kept
            refused = set(stored.conflicts)
            outcome.sensors = {r.sensor: r for i, r in enumerate(readings) if i not in refused}
        if rejections:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO rejected_messages (topic, payload, reason) VALUES (%s, %s, %s)",
                    [(m.topic, m.payload, r.reason) for m, r in rejections],
                )
    # Committed: the marks now describe what is stored. A refused conflict may have moved one:
    # forgotten, read again at the next batch.
    guard.marks.update(verdict.marks)
    for position in stored.conflicts:
        guard.marks.pop(readings[position].sensor, None)
    # Logged after the commit so each line describes something that is really kept.
    for message, rejection in rejections:
        preview = message.payload[:_PREVIEW_BYTES]
        log.warning(
            "rejected message on %s: %s (payload %r%s)",
            message.topic,
            rejection.reason,
            preview,
            "..." if len(message.payload) > _PREVIEW_BYTES else "",
        )
    for reading, reason in quarantined:
        log.warning(
            "quarantined reading of %s (seq %s, power %s W): %s", reading.sensor, reading.seq, reading.power, reason
        )
    outcome.stored, outcome.duplicates, outcome.rejected = stored.inserted, stored.duplicates, len(rejections)
    outcome.quarantined = len(quarantined)
    outcome.duplicates += len(aside) - len(quarantined)
    return outcome


def _quarantine(conn: psycopg.Connection[Any], aside: list[tuple[Reading, Incoming, str]]) -> list[tuple[Reading, str]]:
    """Keep readings with an impossible time aside, out of ``readings`` (so out of energy, of the
    newest reading, of everything) until the administrator releases or deletes them; the ones
    newly kept (a redelivery of one already there is not kept twice)."""
    if not aside:
        return []
    ids = register_sensors(conn, [reading for reading, _, _ in aside])
    kept: list[tuple[Reading, str]] = []
    for reading, message, reason in aside:  # rare: one statement each is fine
        row = conn.execute(
            """
            INSERT INTO quarantined_readings (sensor_id, ts, power, voltage, current, battery, soc, energy,
                                              state, seq, payload, reason)
            VALUES (%s, to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT DO NOTHING RETURNING id
            """,
            (
                ids[reading.sensor],
                reading.ts,
                reading.power,
                reading.voltage,
                reading.current,
                reading.battery,
                reading.soc,
                reading.energy,
                reading.state,
                reading.seq,
                message.payload,
                reason,
            ),
        ).fetchone()
        if row is not None:
            kept.append((reading, reason))
    return kept


def _tempo_colour(topics: Topics, message: Incoming) -> tuple[date, str] | Rejection | None:
    """A Tempo colour message's (day, colour), or why it is refused; None for any other topic."""
    day = day_of_tempo_topic(topics.base, message.topic)
    if day is None:
        return None
    if isinstance(day, str):
        return Rejection(f"Tempo colour: {day}")
    if not message.payload:
        return Rejection("Tempo colour: empty payload (a retained message being cleared)")
    try:
        return day, parse_tempo_payload(message.payload)
    except TariffError as exc:
        return Rejection(f"Tempo colour: {exc}")


def seq_of_payload(payload: bytes) -> int | None:
    """A message's seq, when it has a readable one, even if the message is refused (so its
    collector stops resending it)."""
    try:
        seq = json.loads(payload).get("seq")
    except (ValueError, AttributeError, RecursionError):
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 2**63 else None


def seq_ranges(seqs: list[int]) -> list[list[int]]:
    """[5, 1, 2, 3, 7] -> [[1, 3], [5, 5], [7, 7]]: compact commit confirmations."""
    ranges: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return ranges
