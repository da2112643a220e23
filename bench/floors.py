"""What any engine pays for a request at the bucket cap, whatever its plan: the floors.

Run by the queries benchmark on each database it grows, after its views. A 10 000-bucket request
off the minute needs either every reading of its span paired with the next one (a segment is
two readings), or, per edge, a lookup of what lies around it; then 10 000 answers to serialise.
Timed here with nothing else around them: the best of CW_BENCH_RUNS runs after one warm-up, ms.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any

import psycopg
from pydantic import TypeAdapter

from citizenwatt_api.raw_energy import float_array

CAP = 10_000
_SPAN = "sensor_id = %(s)s AND ts >= to_timestamp(%(lo)s) AND ts < to_timestamp(%(hi)s)"
_READ = f"SELECT count(*), sum(power) FROM readings WHERE {_SPAN}"
_PAIR = f"""
SELECT count(*), sum(p1 * (t1 - t0)) FROM (
    SELECT date_part('epoch', ts) AS t1, date_part('epoch', lag(ts) OVER o) AS t0, power AS p1
    FROM readings WHERE {_SPAN}
    WINDOW o AS (ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)) AS seg
"""
_LOOKUP = """
SELECT count(*) FROM energy_rollups_minute WHERE sensor_id = %(s)s
  AND bucket = ANY(ARRAY(SELECT to_timestamp(t) FROM unnest(%(keys)s::float8[]) AS k(t)))
"""
_PROBE = """
SELECT count(*) FROM unnest(%(keys)s::float8[]) AS k(t) CROSS JOIN LATERAL (
    SELECT ts FROM readings WHERE sensor_id = %(s)s AND ts <= to_timestamp(k.t) ORDER BY ts DESC LIMIT 1) AS r
"""
_JSON: TypeAdapter[Any] = TypeAdapter(Any)

# A storage layout not shipped, built here on the side to see what it would pay: each minute row
# carrying the readings around it (every segment touching the minute: within 9 s of it, readings
# being 8 s apart in this history) and the running sums of its UTC day up to its start. An edge
# off the minute is then one row read by key: the energy from the day's start to the edge is the
# row's running sum plus the part of its minute before the edge, cut from the row's readings.
# This floor is what a year at the cap would cost in it for the part within each UTC day (the
# days' own sums, and the answer, would come on top).
_LAYOUT_TABLE = "bench_minute_layout"
_BUILD_LAYOUT = f"""
CREATE UNLOGGED TABLE {_LAYOUT_TABLE} AS
SELECT m.sensor_id, m.bucket,
       sum(m.day_wh) OVER d - m.day_wh AS dw, sum(m.night_wh) OVER d - m.night_wh AS nw,
       sum(m.day_seconds) OVER d - m.day_seconds AS ds, sum(m.night_seconds) OVER d - m.night_seconds AS ns,
       sum(m.import_wh) OVER d - m.import_wh AS iw, sum(m.export_wh) OVER d - m.export_wh AS ew,
       near.t, near.p, near.n
FROM energy_rollups_minute AS m CROSS JOIN LATERAL (
    SELECT array_agg(date_part('epoch', ts) ORDER BY ts) AS t, array_agg(power ORDER BY ts) AS p,
           array_agg(night_rate ORDER BY ts) AS n
    FROM readings AS r WHERE r.sensor_id = m.sensor_id
      AND r.ts >= m.bucket - interval '9 s' AND r.ts < m.bucket + interval '69 s') AS near
WHERE m.sensor_id = %(s)s AND m.bucket >= to_timestamp(%(lo)s) AND m.bucket < to_timestamp(%(hi)s)
WINDOW d AS (PARTITION BY m.sensor_id, date_trunc('day', m.bucket, 'UTC') ORDER BY m.bucket)
"""
_LAYOUT_EDGES = f"""
WITH e AS (
    SELECT k, t, floor(t / 60) * 60 AS m FROM unnest(%(edges)s::float8[]) WITH ORDINALITY AS u(t, k)
), row AS (
    SELECT e.k, e.t, e.m, x.dw, x.nw, x.ds, x.ns, x.t AS ta, x.p AS pa, x.n AS na
    FROM {_LAYOUT_TABLE} AS x JOIN e ON date_part('epoch', x.bucket) = e.m
    WHERE x.sensor_id = %(s)s AND x.bucket = ANY(ARRAY(SELECT to_timestamp(m) FROM e))
), seg AS (
    SELECT k, t, m, unnest(ta[:cardinality(ta) - 1]) AS t0, unnest(ta[2:]) AS t1,
           unnest(pa[:cardinality(pa) - 1]) AS p0, unnest(pa[2:]) AS p1, unnest(na[2:]) AS night
    FROM row
), part AS (
    SELECT k, sum(j) FILTER (WHERE NOT night) / 3600 AS dw, sum(j) FILTER (WHERE night) / 3600 AS nw,
           sum(s) FILTER (WHERE NOT night) AS ds, sum(s) FILTER (WHERE night) AS ns
    FROM (SELECT k, night, least(t1, t) - greatest(t0, m) AS s,
                 (2 * p0 + (p1 - p0) * (greatest(t0, m) + least(t1, t) - 2 * t0) / (t1 - t0)) / 2
                 * (least(t1, t) - greatest(t0, m)) AS j
          FROM seg WHERE t1 - t0 > 0 AND t1 - t0 <= %(gap)s AND t1 > m AND t0 < t) AS cut
    GROUP BY k
)
SELECT row.k, row.dw + coalesce(part.dw, 0), row.nw + coalesce(part.nw, 0),
       row.ds + coalesce(part.ds, 0), row.ns + coalesce(part.ns, 0)
FROM row LEFT JOIN part USING (k) ORDER BY row.k
"""


def _best(runs: int, work: Callable[[], object]) -> float:
    work()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def _fetch(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> list[Any]:
    return conn.execute(query, params).fetchall()


def _max_gap(conn: psycopg.Connection[Any]) -> float:
    row = conn.execute("SELECT max_gap_seconds FROM household").fetchone()
    return float(row[0]) if row else 0.0


def _answer() -> bytes:
    """10 000 buckets as the legacy by_time answer shapes them, serialised as the api does."""
    data = [{"value": 1234.5 + k, "day_rate": 1000.25 + k, "night_rate": 234.25} for k in range(CAP)]
    return _JSON.dump_json({"data": data, "rate": "day"})


def measure(url: str, sensor_id: int, end: float, runs: int) -> dict[str, tuple[float, str]]:
    """Each floor: (best ms, what it comes to per unit)."""
    span: dict[str, Any] = {"s": sensor_id, "lo": end - 600_000, "hi": end}  # 6.9 days: 10 000 one-minute buckets
    # A year at the cap: an edge every 3 153.6 s, each on its minute for the lookup.
    edges = [end - 365 * 86_400 + 60 * math.floor(k * 3153.6 / 60) for k in range(CAP)]
    keys: dict[str, Any] = {"s": sensor_id, "keys": float_array(edges)}
    # The same year at the cap as a script asks it: every edge off the minute.
    off_minute = {"s": sensor_id, "edges": float_array([end - 365 * 86_400 - 0.37 + k * 3153.6 for k in range(CAP)])}
    floors: dict[str, tuple[float, str]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(_READ, span).fetchone()
        readings = int(row[0]) if row else 0
        for name, query, params, units, unit in (
            ("read 6.9 days of readings", _READ, span, readings, "reading"),
            ("read and pair them in time order", _PAIR, span, readings, "reading"),
            ("look up 10 000 minute rows", _LOOKUP, keys, CAP, "key"),
            ("probe the reading at 10 000 edges", _PROBE, keys, CAP, "probe"),
        ):
            best = _best(runs, functools.partial(_fetch, conn, query, params))
            floors[name] = (best, f"{best * 1000 / max(units, 1):.2f} us a {unit}")
        conn.execute(_BUILD_LAYOUT, {"s": sensor_id, "lo": end - 366 * 86_400, "hi": end})
        try:
            conn.execute(f"ALTER TABLE {_LAYOUT_TABLE} ADD PRIMARY KEY (sensor_id, bucket)")
            conn.execute(f"VACUUM ANALYZE {_LAYOUT_TABLE}")
            params = {**off_minute, "gap": _max_gap(conn)}
            best = _best(runs, functools.partial(_fetch, conn, _LAYOUT_EDGES, params))
            floors["10 000 edges off the minute, from minute rows with readings (not shipped)"] = (
                best,
                f"{best * 1000 / CAP:.2f} us an edge",
            )
        finally:
            conn.execute(f"DROP TABLE {_LAYOUT_TABLE}")
    best = _best(runs, _answer)
    floors["10 000 buckets' answer, in process"] = (best, f"{best * 1000 / CAP:.2f} us a bucket")
    return floors
