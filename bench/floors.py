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
    best = _best(runs, _answer)
    floors["10 000 buckets' answer, in process"] = (best, f"{best * 1000 / CAP:.2f} us a bucket")
    return floors
