"""Years of believable history, written straight into the database, for the query benchmarks.

Storing a year of 8-s readings through the aggregator would take hours; here the rows are made by
one INSERT ... SELECT per week and the 15-minute rollups by one statement that does, in SQL, the
same trapezoid arithmetic as citizenwatt_common.energy (the tests check the writers' rollups
against hand-worked values; `check_rollups` compares these against that Python code on a sample).
The history grows in place (1 month, then 1 year, then 3 years), so the same database shows how
query time and size follow the amount of data.
"""

from __future__ import annotations

import math
import time
from typing import Any

import psycopg
from psycopg import sql

from citizenwatt_common.energy import MINUTE_SECONDS, ROLLUP_SECONDS, Energy, Sample, segments_of, split_by_bucket
from citizenwatt_common.store import close_days

Conn = psycopg.Connection[Any]

PERIOD = 8.0  # seconds between two readings of a sensor, as the CitizenWatt sensor sends them
MAX_GAP = 300.0
ZONE = "Europe/Paris"
NIGHT = (22 * 60, 6 * 60)  # Heures creuses, 22:00-06:00 local
DAY = 86_400


def prepare(conn: Conn, sensors: int) -> list[int]:
    """Sensors ``house-1``.. and the household's night window; returns their ids."""
    conn.execute(
        "UPDATE household SET night_start_minute = %s, night_end_minute = %s, max_gap_seconds = %s",
        (*NIGHT, MAX_GAP),
    )
    rows = conn.execute(
        "INSERT INTO sensors (key, name, kind) SELECT 'house-' || i, 'House ' || i, 'simulator'"
        " FROM generate_series(1, %s) AS i ON CONFLICT (key) DO UPDATE SET kind = excluded.kind RETURNING id",
        (sensors,),
    ).fetchall()
    return sorted(int(r[0]) for r in rows)


def grow(conn: Conn, sensor_ids: list[int], start: float, end: float) -> None:
    """Readings of every sensor in [start, end), in arrival order, then their rollups.

    Power follows a daily cycle with deterministic noise; an hour-long outage every ~9 days makes
    gaps the energy must skip. Sensors are offset by a second so their stamps differ.
    """
    for week_start in range(int(start), int(end), 7 * DAY):
        week_end = min(week_start + 7 * DAY, end)
        conn.execute(
            """
            INSERT INTO readings (sensor_id, ts, power, night_rate, voltage, current, seq)
            SELECT s.id, to_timestamp(t), p, m >= %(ns)s OR m < %(ne)s, 230.0, round((p / 230)::numeric, 3), k
            FROM generate_series(%(k0)s::bigint, %(k1)s::bigint - 1) AS k
            CROSS JOIN unnest(%(ids)s::int[]) WITH ORDINALITY AS s(id, n)
            CROSS JOIN LATERAL (SELECT k * %(period)s + s.n - 1 AS t) AS stamp
            CROSS JOIN LATERAL (SELECT
                extract(hour FROM to_timestamp(t) AT TIME ZONE %(zone)s)::int * 60
                + extract(minute FROM to_timestamp(t) AT TIME ZONE %(zone)s)::int AS m,
                round((250 + 180 * sin(2 * pi() * ((t + 3 * 3600)::bigint %% 86400) / 86400.0)
                    + 90 * ((k * 7919 + s.n * 104729) %% 97) / 97.0 + 40 * s.n)::numeric, 1)::float8 AS p) AS v
            WHERE k %% 100000 >= 450
            ORDER BY k, s.n
            """,
            {
                "k0": math.ceil(week_start / PERIOD),
                "k1": math.ceil(week_end / PERIOD),
                "ids": sensor_ids,
                "period": PERIOD,
                "zone": ZONE,
                "ns": NIGHT[0],
                "ne": NIGHT[1],
            },
        )
    _add_rollups(conn, start, end)
    close_days(conn, time.time(), ZONE)  # as the aggregator does: the past days get their day rows


def _add_rollups(conn: Conn, start: float, end: float) -> None:
    for table, width in (("energy_rollups", ROLLUP_SECONDS), ("energy_rollups_minute", MINUTE_SECONDS)):
        _add_rollup_rows(conn, table, width, start, end)
    _add_hours(conn, start, end)


def _add_rollup_rows(conn: Conn, table: str, width: int, start: float, end: float) -> None:
    # The history grows before or after what is stored, never into it: the segments this step adds
    # are those ending in [start, end), and the one starting in it that reaches stored readings.
    # Its segments are 8 s long (an outage is longer than the gap limit: no segment), so each
    # crosses at most one bucket edge of either width.
    conn.execute(
        sql.SQL(
            """
        INSERT INTO {} AS r (sensor_id, bucket, day_wh, night_wh, day_seconds, night_seconds, import_wh)
        SELECT sensor_id, to_timestamp(b),
               coalesce(sum(j) FILTER (WHERE NOT n), 0) / 3600, coalesce(sum(j) FILTER (WHERE n), 0) / 3600,
               coalesce(sum(e - a) FILTER (WHERE NOT n), 0), coalesce(sum(e - a) FILTER (WHERE n), 0),
               sum(j) / 3600  -- the history's power is never negative: all of it is imported
        FROM (
            SELECT sensor_id, n, b, a, e,
                   CASE WHEN a = t0 AND e = t1 THEN (p0 + p1) / 2 * (e - a)
                        ELSE (2 * p0 + (p1 - p0) * ((a - t0) + (e - t0)) / (t1 - t0)) / 2 * (e - a) END AS j
            FROM (
                SELECT sensor_id, night_rate AS n, extract(epoch FROM ts)::float8 AS t1, power AS p1,
                       lag(extract(epoch FROM ts)::float8) OVER w AS t0, lag(power) OVER w AS p0
                FROM readings WHERE ts >= to_timestamp(%(lo)s) AND ts <= to_timestamp(%(hi)s)
                WINDOW w AS (PARTITION BY sensor_id ORDER BY ts)
            ) AS pairs
            CROSS JOIN LATERAL (SELECT floor(t0 / %(w)s) * %(w)s + %(w)s AS edge) AS x
            CROSS JOIN LATERAL (VALUES (edge - %(w)s, t0, least(t1, edge)), (edge, edge, t1)) AS part(b, a, e)
            WHERE t1 - t0 > 0 AND t1 - t0 <= %(gap)s AND e > a
              AND ((t1 >= %(start)s AND t1 < %(end)s) OR (t0 >= %(start)s AND t0 < %(end)s AND t1 >= %(end)s))
        ) AS parts
        GROUP BY sensor_id, b
        ON CONFLICT (sensor_id, bucket) DO UPDATE SET
            day_wh = r.day_wh + excluded.day_wh, night_wh = r.night_wh + excluded.night_wh,
            day_seconds = r.day_seconds + excluded.day_seconds,
            night_seconds = r.night_seconds + excluded.night_seconds, import_wh = r.import_wh + excluded.import_wh
        """
        ).format(sql.Identifier(table)),
        {
            "lo": start - MAX_GAP - 1,
            "hi": end + MAX_GAP + 1,
            "start": start,
            "end": end,
            "gap": MAX_GAP,
            "w": width,
        },
    )


def _add_hours(conn: Conn, start: float, end: float) -> None:
    # Whole hours rebuilt from their quarter hours (idempotent, so the bridging hour is right too).
    conn.execute(
        """
        INSERT INTO energy_rollups_hourly AS r (sensor_id, bucket, day_wh, night_wh, day_seconds, night_seconds,
                                                import_wh)
        SELECT sensor_id, date_trunc('hour', bucket, 'UTC'), sum(day_wh), sum(night_wh), sum(day_seconds),
               sum(night_seconds), sum(import_wh)
        FROM energy_rollups WHERE bucket >= date_trunc('hour', to_timestamp(%(lo)s), 'UTC')
          AND bucket < to_timestamp(%(hi)s) GROUP BY 1, 2
        ON CONFLICT (sensor_id, bucket) DO UPDATE SET
            day_wh = excluded.day_wh, night_wh = excluded.night_wh,
            day_seconds = excluded.day_seconds, night_seconds = excluded.night_seconds, import_wh = excluded.import_wh
        """,
        {"lo": start - MAX_GAP - 1, "hi": end + MAX_GAP + 3600},
    )
    conn.execute(
        "UPDATE sensors s SET energy_total_wh = t.wh, meter_wh = t.wh, energy_import_wh = t.wh,"
        " meter_import_wh = t.wh, last_seen = t.last FROM"
        " (SELECT sensor_id, sum(day_wh + night_wh) AS wh, max(bucket) + interval '15 minutes' AS last"
        "  FROM energy_rollups GROUP BY sensor_id) AS t WHERE s.id = t.sensor_id"
    )


def check_rollups(conn: Conn, sensor_id: int, start: float, hours: float = 6) -> float:
    """Largest difference (Wh) between these rollups and citizenwatt_common.energy's, over a sample."""
    rows = conn.execute(
        "SELECT extract(epoch FROM ts)::float8, power, night_rate FROM readings WHERE sensor_id = %s"
        " AND ts >= to_timestamp(%s) AND ts < to_timestamp(%s) ORDER BY ts",
        (sensor_id, start - MAX_GAP, start + hours * 3600 + ROLLUP_SECONDS),
    ).fetchall()
    expected = split_by_bucket(segments_of((Sample(float(t), float(p), bool(n)) for t, p, n in rows), MAX_GAP))
    stored = {
        int(b): Energy(float(dw), float(nw), float(ds), float(ns))
        for b, dw, nw, ds, ns in conn.execute(
            "SELECT extract(epoch FROM bucket)::int8, day_wh, night_wh, day_seconds, night_seconds"
            " FROM energy_rollups WHERE sensor_id = %s AND bucket >= to_timestamp(%s) AND bucket < to_timestamp(%s)",
            (sensor_id, start, start + hours * 3600),
        ).fetchall()
    }
    worst = 0.0
    for bucket, energy in stored.items():
        want = expected.get(bucket, Energy())
        worst = max(worst, abs(energy.day_wh - want.day_wh), abs(energy.night_wh - want.night_wh))
    return worst
