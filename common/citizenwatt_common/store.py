"""Writing readings, with the energy rollups kept exact in the same transaction.

Both the aggregator (readings from MQTT) and the api (legacy insert/delete routes) change the
series through these functions, so rollups can never drift from the rows they summarise.
Callers own the transaction; these functions take a per-sensor advisory lock inside it so two
writers never compute deltas from the same stale neighbours.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from .contract import Reading
from .energy import (
    HOUR_SECONDS,
    MINUTE_SECONDS,
    ROLLUP_SECONDS,
    Energy,
    Sample,
    bucket_start,
    chain_delta,
)
from .night import NightWindow, night_flag
from .tariff_store import PLAN_JSON_COLUMNS, plan_from_json
from .tariffs import Plan

_SENSOR_LOCK_CLASS: Final = 0x4357  # first key of pg_advisory_xact_lock(int, int)
# Changed samples further apart than this are handled as separate stretches, so one late reading
# from last week does not make us load a week of rows.
_CLUSTER_SECONDS: Final = 3600.0

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Household:
    night_window: NightWindow | None
    max_gap_seconds: float
    provider_id: int | None
    plan: Plan | None = None  # the dated tariffs, when asked for (the readings' night flag)

    def night(self, ts: float, zone: ZoneInfo) -> bool:
        """The legacy day/night flag of a reading: outside the default period of the tariff version
        in force when that version has time-of-use windows (so legacy clients see the tariff's own
        hours), else the household's night window (a single-price tariff has no hours of its own)."""
        if self.plan is None:
            return night_flag(self.night_window, ts, zone)
        local = datetime.fromtimestamp(ts, zone)
        minute = local.hour * 60 + local.minute
        version = self.plan.on(local.date())[1]
        if version.windows:
            return version.period_at(minute) != version.default_period
        return self.night_window is not None and self.night_window.contains_minute(minute)


def load_household(conn: Conn, with_plan: bool = False) -> Household:
    """The household row; ``with_plan``: also its dated tariffs, read by the same statement."""
    plan_columns = f", {PLAN_JSON_COLUMNS}" if with_plan else ""
    row = conn.execute(
        f"SELECT night_start_minute, night_end_minute, max_gap_seconds, provider_id{plan_columns} FROM household"
    ).fetchone()
    if row is None:
        raise RuntimeError("household settings row missing: run the schema migration first")
    window = NightWindow(row[0], row[1]) if row[0] is not None else None
    plan = plan_from_json(row[4], row[5]) if with_plan else None
    return Household(night_window=window, max_gap_seconds=float(row[2]), provider_id=row[3], plan=plan)


def register_sensors(conn: Conn, readings: Iterable[Reading]) -> dict[str, int]:
    """Create unknown sensors (named after their MQTT id) and return key -> legacy integer id."""
    kinds: dict[str, str] = {}
    for reading in readings:
        kinds[reading.sensor] = reading.kind
    if not kinds:
        return {}
    keys = sorted(kinds)
    # Known sensors are only read, and a kind only rewritten when it changed: an upsert of every
    # sensor at every batch would lock and rewrite each sensor's row, more WAL on the SD card.
    known = conn.execute(
        "SELECT key, id, kind FROM sensors WHERE key = ANY(%s::text[])",
        (keys,),
    ).fetchall()
    ids = {str(key): int(sensor_id) for key, sensor_id, _ in known}
    changed = sorted(str(key) for key, _, kind in known if kinds[str(key)] != kind)
    if changed:
        conn.execute(
            "UPDATE sensors s SET kind = t.kd FROM unnest(%s::text[], %s::text[]) AS t(k, kd) WHERE s.key = t.k",
            (changed, [kinds[k] for k in changed]),
        )
    new = [k for k in keys if k not in ids]
    if new:
        rows = conn.execute(
            "INSERT INTO sensors (key, name, kind) SELECT k, k, kd FROM unnest(%s::text[], %s::text[]) AS t(k, kd)"
            " ON CONFLICT (key) DO UPDATE SET kind = excluded.kind RETURNING key, id",
            (new, [kinds[k] for k in new]),
        ).fetchall()
        ids.update({str(key): int(sensor_id) for key, sensor_id in rows})
    return ids


@dataclass(frozen=True)
class StoreResult:
    inserted: int
    duplicates: int  # the same reading again (a redelivery): harmless
    # Positions (in the readings given) of readings refused because another reading of their
    # sensor, with other values, is stored at the same microsecond (the storage's resolution).
    conflicts: tuple[int, ...] = ()


def store_readings(conn: Conn, readings: Sequence[Reading], household: Household, zone: ZoneInfo) -> StoreResult:
    """Insert readings (ignoring ones already stored) and update the rollups by the exact change."""
    if not readings:
        return StoreResult(0, 0)
    ids = register_sensors(conn, readings)
    _lock_sensors(conn, ids.values())
    # The flag of a UTC minute is its local minute's (offsets are whole minutes): worked out once
    # per minute, not per reading (a batch of 500 readings of 4 sensors spans about 17 minutes).
    flags: dict[int, bool] = {}

    def night(ts: float) -> bool:
        minute = math.floor(ts / 60)
        flag = flags.get(minute)
        if flag is None:
            flag = flags[minute] = household.night(minute * 60.0, zone)
        return flag

    # The batch travels as one JSON text that the server takes apart: psycopg would convert eleven
    # arrays element by element in Python, the largest cost of a batch on the aggregator's side.
    # Exact: json writes each float's shortest round-trip form, which float8 reads back bit for bit.
    batch = json.dumps(
        [
            [
                ids[r.sensor],
                r.ts,
                r.power,
                night(r.ts),
                r.voltage,
                r.current,
                r.battery,
                r.soc,
                r.energy,
                r.state,
                r.seq,
            ]
            for r in readings
        ]
    )
    # One statement for the whole batch; ON CONFLICT makes redelivery harmless and RETURNING tells
    # exactly which rows are new, so rollups move only for those.
    rows = conn.execute(
        """
        INSERT INTO readings (sensor_id, ts, power, night_rate, voltage, current, battery, soc,
                              energy, state, seq)
        SELECT (r->>0)::int, to_timestamp((r->>1)::float8), (r->>2)::float8, (r->>3)::bool,
               (r->>4)::float8, (r->>5)::float8, (r->>6)::float8, (r->>7)::float8, (r->>8)::float8,
               (r->>9)::bool, (r->>10)::int8
        FROM json_array_elements(%s::json) AS r
        ORDER BY 1, 2
        ON CONFLICT (sensor_id, ts) DO NOTHING
        RETURNING sensor_id, extract(epoch FROM ts)::float8, power < 0
        """,
        (batch,),
    ).fetchall()
    changed: dict[int, list[float]] = {}
    exporting: set[int] = set()
    for sensor_id, ts, negative in rows:
        changed.setdefault(int(sensor_id), []).append(float(ts))
        if negative:
            exporting.add(int(sensor_id))
    _mark_exporting(conn, exporting)
    for sensor_id, stamps in changed.items():
        _apply_delta(conn, sensor_id, stamps, sign=+1, last_seen=max(stamps), max_gap=household.max_gap_seconds)
    conflicts = _conflicting(conn, batch) if len(rows) < len(readings) else ()
    return StoreResult(inserted=len(rows), duplicates=len(readings) - len(rows) - len(conflicts), conflicts=conflicts)


def _conflicting(conn: Conn, batch: str) -> tuple[int, ...]:
    """Which readings of the batch differ from the row stored at their (sensor, microsecond).

    A skipped insert is usually a redelivery of the very same reading, which is harmless; but two
    different readings less than a microsecond apart also collide, and the second must not be
    confirmed to its collector as if it were kept. Only run when some insert was skipped."""
    rows = conn.execute(
        """
        SELECT b.idx - 1
        FROM json_array_elements(%s::json) WITH ORDINALITY AS b(r, idx)
        JOIN readings x ON x.sensor_id = (b.r->>0)::int AND x.ts = to_timestamp((b.r->>1)::float8)
        WHERE (x.power, x.voltage, x.current, x.battery, x.soc, x.energy, x.state, x.seq)
              IS DISTINCT FROM ((b.r->>2)::float8, (b.r->>4)::float8, (b.r->>5)::float8, (b.r->>6)::float8,
                                (b.r->>7)::float8, (b.r->>8)::float8, (b.r->>9)::bool, (b.r->>10)::int8)
        ORDER BY 1
        """,
        (batch,),
    ).fetchall()
    return tuple(int(row[0]) for row in rows)


def delete_readings(
    conn: Conn, sensor_id: int, reading_ids: Sequence[int], *, between: tuple[float, float] | None = None
) -> int:
    """Delete readings by legacy id, taking their energy out of the rollups first.

    ``between``: the (first, last) timestamps of those readings, when the caller selected them by
    time and knows: then only that stretch of the history is read to find them again.
    """
    if not reading_ids:
        return 0
    _lock_sensors(conn, [sensor_id])
    first, last = between if between is not None else (-math.inf, math.inf)
    # Ids joined from an array rather than "id = ANY(array)": on compressed chunks TimescaleDB
    # tests ANY() element by element (14 s for 108 000 ids in 129 600 readings; the join: 0.3 s).
    rows = conn.execute(
        "SELECT extract(epoch FROM r.ts)::float8, r.id FROM readings r JOIN unnest(%s::int8[]) AS u(id) ON u.id = r.id"
        " WHERE r.sensor_id = %s AND r.ts >= to_timestamp(%s) AND r.ts <= to_timestamp(%s)",
        (list(reading_ids), sensor_id, first - 1, last + 1),
    ).fetchall()
    id_at = {float(ts): int(reading_id) for ts, reading_id in rows}
    if not id_at:
        return 0
    _apply_delta(conn, sensor_id, list(id_at), sign=-1)
    # With TimescaleDB, a DELETE on compressed chunks decompresses every batch it may touch, and
    # by default refuses to decompress more than 100 000 rows in a transaction. Deleting one
    # stretch of nearby readings at a time, with its time range spelled out, lets it skip every
    # chunk and batch outside that range. Within it, decompressing is the price of deleting what
    # the caller asked for, however much that is (a legacy client may delete a month in one call):
    # the limit guards against unbounded statements, which these are not, so it is lifted for
    # this transaction only. On plain PostgreSQL the setting is an inert placeholder.
    conn.execute("SELECT set_config('timescaledb.max_tuples_decompressed_per_dml_transaction', '0', true)")
    deleted = 0
    for cluster in _clusters(sorted(id_at)):
        deleted += conn.execute(
            "DELETE FROM readings r USING unnest(%s::int8[]) AS u(id) WHERE r.id = u.id AND r.sensor_id = %s"
            " AND r.ts >= to_timestamp(%s) AND r.ts <= to_timestamp(%s)",
            # A second of margin on the bounds: the ids select the rows, the range only prunes.
            ([id_at[ts] for ts in cluster], sensor_id, cluster[0] - 1, cluster[-1] + 1),
        ).rowcount
    return deleted


def insert_reading(conn: Conn, sensor_id: int, ts: float, power: float, night: bool) -> bool:
    """The legacy insert route: one measure with an explicit tariff flag. False if (sensor, ts) exists."""
    _lock_sensors(conn, [sensor_id])
    row = conn.execute(
        "INSERT INTO readings (sensor_id, ts, power, night_rate) VALUES (%s, to_timestamp(%s), %s, %s)"
        " ON CONFLICT (sensor_id, ts) DO NOTHING RETURNING extract(epoch FROM ts)::float8",
        (sensor_id, ts, power, night),
    ).fetchone()
    if row is None:
        return False
    if power < 0:
        _mark_exporting(conn, {sensor_id})
    _apply_delta(conn, sensor_id, [float(row[0])], sign=+1)
    conn.execute("UPDATE sensors SET last_seen = greatest(last_seen, to_timestamp(%s)) WHERE id = %s", (ts, sensor_id))
    return True


def _mark_exporting(conn: Conn, sensor_ids: set[int]) -> None:
    """Remember that these sensors reported negative power (export): the page and the API show
    their import and export apart. "NOT exports": once set, a batch of a solar sensor's night
    readings updates no row (no new row version, no WAL)."""
    if sensor_ids:
        conn.execute(
            "UPDATE sensors SET exports = true WHERE id = ANY(%s::int[]) AND NOT exports", (sorted(sensor_ids),)
        )


def _lock_sensors(conn: Conn, sensor_ids: Iterable[int]) -> None:
    # Sorted, so two writers locking overlapping sets cannot deadlock; one statement for all (a
    # round trip per sensor and batch was a good part of the aggregator's time on a backlog).
    ordered = sorted(set(sensor_ids))
    if len(ordered) == 1:
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_SENSOR_LOCK_CLASS, ordered[0]))
    elif ordered:
        conn.execute(
            "SELECT count(pg_advisory_xact_lock(%s, s)) FROM"
            " (SELECT s FROM unnest(%s::int[]) WITH ORDINALITY AS u(s, n) ORDER BY n OFFSET 0) AS t",
            (_SENSOR_LOCK_CLASS, ordered),
        )


def _apply_delta(
    conn: Conn,
    sensor_id: int,
    stamps: list[float],
    sign: int,
    last_seen: float | None = None,
    max_gap: float | None = None,
) -> None:
    """Add (sign=+1, rows just inserted) or remove (sign=-1, rows about to be deleted) their energy.

    Must be called while the changed rows are in the table. ``last_seen``: also move the sensor's
    last_seen up to this, in the same row update (one row version less per sensor and batch).
    """
    if max_gap is None:  # the caller did not load the household in this transaction
        max_gap = load_household(conn).max_gap_seconds
    totals: dict[int, Energy] = {}
    minutes: dict[int, Energy] = {}
    for cluster in _clusters(sorted(stamps)):
        chain = _chain_around(conn, sensor_id, cluster[0], cluster[-1], max_gap)
        # Each width cut from the segments themselves (not minutes summed into quarters): every
        # rollup row is then the exact integral over its own bucket, whichever table it is in.
        for deltas, width in ((totals, ROLLUP_SECONDS), (minutes, MINUTE_SECONDS)):
            for bucket, energy in chain_delta(chain, set(cluster), max_gap, width).items():
                deltas.setdefault(bucket, Energy()).__iadd__(energy if sign == 1 else energy.scaled(sign))
    if not totals:
        if last_seen is not None:
            conn.execute(
                "UPDATE sensors SET last_seen = greatest(last_seen, to_timestamp(%s)) WHERE id = %s",
                (last_seen, sensor_id),
            )
        return
    hours: dict[int, Energy] = {}
    for bucket, energy in totals.items():
        hours.setdefault(bucket_start(bucket, HOUR_SECONDS), Energy()).__iadd__(energy)
    # The writes need no answer: sent together in one round trip (pipeline mode), which matters
    # to the aggregator catching up on a backlog, a batch touching every sensor.
    with conn.pipeline():
        _write_deltas(conn, sensor_id, totals, hours, minutes, last_seen)


def _write_deltas(
    conn: Conn,
    sensor_id: int,
    totals: dict[int, Energy],
    hours: dict[int, Energy],
    minutes: dict[int, Energy],
    last_seen: float | None,
) -> None:
    for table, deltas in (
        ("energy_rollups", totals),
        ("energy_rollups_hourly", hours),
        ("energy_rollups_minute", minutes),
    ):
        _add_to_rollups(conn, table, sensor_id, deltas)
    # Closed days only: the open ones have no row until close_days (no write at all, most of the
    # time). Quarter hours fall in one local day in every zone (offsets are whole quarter hours).
    # The sensor's lock (_lock_sensors, taken by every writer and by close_days) keeps a day from
    # being closed while this transaction changes it.
    _add_to_rollups(conn, "energy_rollups_daily", sensor_id, totals, by_local_day=True)
    _update_sensor_totals(conn, sensor_id, totals, last_seen)


def _update_sensor_totals(conn: Conn, sensor_id: int, totals: dict[int, Energy], last_seen: float | None) -> None:
    # A late reading can lower a segment's energy, so the exact totals may dip; the meters that
    # dashboards see keep their highest value, as an electricity meter would. Import and export
    # each have their own: a late reading may lower one and raise the other. (The net meter_wh,
    # by the same rule, stalls while a sensor exports; it keeps the meaning it always had.)
    conn.execute(
        "UPDATE sensors SET energy_total_wh = energy_total_wh + %(d)s,"
        " meter_wh = greatest(meter_wh, energy_total_wh + %(d)s),"
        " energy_import_wh = energy_import_wh + %(i)s,"
        " meter_import_wh = greatest(meter_import_wh, energy_import_wh + %(i)s),"
        " energy_export_wh = energy_export_wh + %(e)s,"
        " meter_export_wh = greatest(meter_export_wh, energy_export_wh + %(e)s),"
        " last_seen = greatest(last_seen, to_timestamp(%(l)s)) WHERE id = %(s)s",
        {
            "d": sum(e.total_wh for e in totals.values()),
            "i": sum(e.import_wh for e in totals.values()),
            "e": sum(e.export_wh for e in totals.values()),
            "s": sensor_id,
            "l": last_seen,
        },
    )


def _add_to_rollups(
    conn: Conn, table: str, sensor_id: int, deltas: dict[int, Energy], by_local_day: bool = False
) -> None:
    buckets = sorted(deltas)
    rows: sql.Composable = sql.SQL("SELECT %s, to_timestamp(b), dw, nw, ds, ns, iw, ew FROM deltas")
    if by_local_day:  # deltas summed by closed local day (schema migration 10)
        rows = sql.SQL(
            "SELECT %s, d, sum(dw), sum(nw), sum(ds), sum(ns), sum(iw), sum(ew) FROM ("
            "  SELECT date_trunc('day', to_timestamp(b) AT TIME ZONE h.day_zone) AT TIME ZONE h.day_zone AS d,"
            "  dw, nw, ds, ns, iw, ew FROM deltas CROSS JOIN household AS h) AS by_day"
            " WHERE d < (SELECT days_closed_until FROM sensors WHERE id = {}) GROUP BY d"
        ).format(sensor_id)
    conn.execute(
        sql.SQL(
            """
            WITH deltas AS (
                SELECT * FROM unnest(%s::int8[], %s::float8[], %s::float8[], %s::float8[], %s::float8[],
                                     %s::float8[], %s::float8[]) AS t(b, dw, nw, ds, ns, iw, ew)
            )
            INSERT INTO {} AS r (sensor_id, bucket, day_wh, night_wh, day_seconds, night_seconds,
                                 import_wh, export_wh)
            {}
            ON CONFLICT (sensor_id, bucket) DO UPDATE SET
                day_wh = r.day_wh + excluded.day_wh,
                night_wh = r.night_wh + excluded.night_wh,
                day_seconds = r.day_seconds + excluded.day_seconds,
                night_seconds = r.night_seconds + excluded.night_seconds,
                import_wh = r.import_wh + excluded.import_wh,
                export_wh = r.export_wh + excluded.export_wh
            """
        ).format(sql.Identifier(table), rows),
        (
            buckets,
            [deltas[b].day_wh for b in buckets],
            [deltas[b].night_wh for b in buckets],
            [deltas[b].day_seconds for b in buckets],
            [deltas[b].night_seconds for b in buckets],
            [deltas[b].import_wh for b in buckets],
            [deltas[b].export_wh for b in buckets],
            sensor_id,
        ),
    )


# A day is closed this long after it ends: readings a few minutes late (a collector's outbox
# catching up) still land in a day nobody has closed, so they cost no day-row write.
CLOSE_DAYS_AFTER_SECONDS = 2 * 3600


def close_days(conn: Conn, now: float, zone: str) -> int:
    """Write the day rows (local days of ``zone``) of every sensor's days that ended
    CLOSE_DAYS_AFTER_SECONDS before ``now`` and are not closed yet, from their quarter-hour rows;
    returns how many rows were written. Idempotent; the aggregator calls it at start and then
    every few minutes.

    One transaction per sensor, which first takes the sensor's lock: every writer takes it before
    touching readings or rollups (_lock_sensors), so no writer changes the rows being summed, and
    a writer after this one sees the day closed and adds to its row. If the household's zone is
    not the one the rows were written in, they are all dropped first and written again in this one.
    """
    row = conn.execute("SELECT day_zone FROM household").fetchone()
    if row is not None and row[0] != zone:
        with conn.transaction():
            _lock_sensors(conn, [int(r[0]) for r in conn.execute("SELECT id FROM sensors").fetchall()])
            conn.execute("DELETE FROM energy_rollups_daily")
            conn.execute("UPDATE sensors SET days_closed_until = NULL")
            conn.execute("UPDATE household SET day_zone = %s", (zone,))
    # The local midnight that starts the day CLOSE_DAYS_AFTER_SECONDS before now: days before it are closed.
    found = conn.execute(
        "SELECT date_trunc('day', (to_timestamp(%(now)s) - make_interval(secs => %(after)s)) AT TIME ZONE %(z)s)"
        " AT TIME ZONE %(z)s",
        {"now": now, "after": CLOSE_DAYS_AFTER_SECONDS, "z": zone},
    ).fetchone()
    assert found is not None
    until = found[0]
    stale = conn.execute(
        "SELECT id FROM sensors WHERE days_closed_until IS NULL OR days_closed_until < %s ORDER BY id", (until,)
    ).fetchall()
    written = 0
    for (sensor_id,) in stale:
        with conn.transaction():
            _lock_sensors(conn, [sensor_id])
            row = conn.execute(
                "SELECT days_closed_until, (SELECT day_zone FROM household) FROM sensors WHERE id = %s", (sensor_id,)
            ).fetchone()
            if row is None or row[1] != zone or (row[0] is not None and row[0] >= until):
                continue  # removed, zone changed meanwhile, or closed by another process meanwhile
            since = row[0]
            written += conn.execute(
                "INSERT INTO energy_rollups_daily (sensor_id, bucket, day_wh, night_wh, day_seconds,"
                " night_seconds, import_wh, export_wh)"
                " SELECT sensor_id, date_trunc('day', bucket AT TIME ZONE %(z)s) AT TIME ZONE %(z)s, sum(day_wh),"
                " sum(night_wh), sum(day_seconds), sum(night_seconds), sum(import_wh), sum(export_wh)"
                " FROM energy_rollups WHERE sensor_id = %(s)s"
                " AND bucket >= coalesce(%(since)s::timestamptz, '-infinity') AND bucket < %(until)s GROUP BY 1, 2",
                {"s": sensor_id, "since": since, "until": until, "z": zone},
            ).rowcount
            conn.execute("UPDATE sensors SET days_closed_until = %s WHERE id = %s", (until, sensor_id))
    return written


def _clusters(stamps: list[float]) -> list[list[float]]:
    clusters: list[list[float]] = []
    for ts in stamps:
        if clusters and ts - clusters[-1][-1] <= _CLUSTER_SECONDS:
            clusters[-1].append(ts)
        else:
            clusters.append([ts])
    return clusters


def _chain_around(conn: Conn, sensor_id: int, first: float, last: float, max_gap: float) -> list[Sample]:
    """Samples from the one before ``first`` to the one after ``last``, inclusive, by time.

    A neighbour further than ``max_gap`` away is left out: every segment reaching it is longer
    than ``max_gap`` with or without the changed samples, so it carries no energy either way.
    Bounding both sides by time lets TimescaleDB skip every other chunk (and compressed batch)
    instead of walking back through the whole history of a sensor.
    """
    rows = conn.execute(
        """
        (SELECT extract(epoch FROM ts)::float8, power, night_rate FROM readings
          WHERE sensor_id = %(s)s AND ts < to_timestamp(%(a)s) AND ts >= to_timestamp(%(before)s)
          ORDER BY ts DESC LIMIT 1)
        UNION ALL
        (SELECT extract(epoch FROM ts)::float8, power, night_rate FROM readings
          WHERE sensor_id = %(s)s AND ts BETWEEN to_timestamp(%(a)s) AND to_timestamp(%(b)s))
        UNION ALL
        (SELECT extract(epoch FROM ts)::float8, power, night_rate FROM readings
          WHERE sensor_id = %(s)s AND ts > to_timestamp(%(b)s) AND ts <= to_timestamp(%(after)s)
          ORDER BY ts ASC LIMIT 1)
        """,
        # One second of margin: a neighbour exactly max_gap away still counts, whatever the rounding.
        {"s": sensor_id, "a": first, "b": last, "before": first - max_gap - 1, "after": last + max_gap + 1},
    ).fetchall()
    return sorted((Sample(float(ts), float(p), bool(n)) for ts, p, n in rows), key=lambda s: s.ts)
