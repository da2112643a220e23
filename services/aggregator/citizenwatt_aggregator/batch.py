"""Turning a batch of MQTT messages into one committed transaction."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import psycopg

from citizenwatt_common.contract import Reading, Rejection, Topics, parse_reading
from citizenwatt_common.store import load_household, store_readings
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
    sensors: dict[str, Reading] = field(default_factory=dict)
    # seqs now safely kept (stored, already stored, or kept as rejected), per sensor: the
    # collectors prune their outboxes with these.
    kept_seqs: dict[str, list[int]] = field(default_factory=dict)


def write_batch(conn: psycopg.Connection[Any], topics: Topics, batch: list[Incoming], zone: ZoneInfo) -> BatchOutcome:
    """Validate and store a batch in one transaction; raises psycopg.Error if it did not commit."""
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
            seq = _seq_of_rejected(message.payload)
            if sensor is not None and seq is not None:
                outcome.kept_seqs.setdefault(sensor, []).append(seq)
        else:
            readings.append(result)
            carriers.append(message)
            outcome.sensors[result.sensor] = result
            if result.seq is not None:
                outcome.kept_seqs.setdefault(result.sensor, []).append(result.seq)
    with conn.transaction():
        # With its tariffs: each reading's legacy night flag follows the version in force.
        household = load_household(conn, with_plan=True)
        stored = store_readings(conn, readings, household, zone)
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
    outcome.stored, outcome.duplicates, outcome.rejected = stored.inserted, stored.duplicates, len(rejections)
    return outcome


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


def _seq_of_rejected(payload: bytes) -> int | None:
    """A rejected message's seq, when it has a readable one (so its collector stops resending it)."""
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
