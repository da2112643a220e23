"""Reading measures and energy out of the database for the legacy (and modern) API.

Energy over long periods comes from the 15-minute rollups the writers keep exact; only the parts
of a period that do not fall on rollup edges are integrated from raw readings. The arithmetic
itself lives in citizenwatt_common.energy, shared with the writers.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from citizenwatt_common.energy import ROLLUP_SECONDS, Energy, Sample, Segment, segments_of

Conn = psycopg.Connection[Any]

_MEASURE_COLUMNS = "id, sensor_id, power, extract(epoch FROM ts)::float8, night_rate"


@dataclass(frozen=True)
class Measure:
    id: int
    sensor_id: int
    value: float
    timestamp: float
    night_rate: bool

    def as_legacy(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sensor_id": self.sensor_id,
            "value": self.value,
            "timestamp": self.timestamp,
            "night_rate": int(self.night_rate),
        }

    @property
    def sample(self) -> Sample:
        return Sample(self.timestamp, self.value, self.night_rate)


def _measures(rows: Sequence[tuple[Any, ...]]) -> list[Measure]:
    return [Measure(int(r[0]), int(r[1]), float(r[2]), float(r[3]), bool(r[4])) for r in rows]


def sensor_exists(conn: Conn, sensor_id: int) -> bool:
    return conn.execute("SELECT 1 FROM sensors WHERE id = %s", (sensor_id,)).fetchone() is not None


def measure_by_id(conn: Conn, sensor_id: int, measure_id: int) -> Measure | None:
    """A non-negative id is the measure's own id; a negative one counts from the newest (-1 = newest)."""
    if measure_id >= 0:
        rows = conn.execute(
            f"SELECT {_MEASURE_COLUMNS} FROM readings WHERE sensor_id = %s AND id = %s", (sensor_id, measure_id)
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_MEASURE_COLUMNS} FROM readings WHERE sensor_id = %s ORDER BY ts DESC OFFSET %s LIMIT 1",
            (sensor_id, -measure_id - 1),
        ).fetchall()
    found = _measures(rows)
    return found[0] if found else None


def measures_by_ids(conn: Conn, sensor_id: int, id1: int, id2: int) -> list[Measure]:
    """Both >= 0: ids in [id1, id2). Both <= 0: the slice [id1, id2) counted from the newest end."""
    if id1 >= 0 and id2 > 0:
        rows = conn.execute(
            f"SELECT {_MEASURE_COLUMNS} FROM readings WHERE sensor_id = %s AND id >= %s AND id < %s ORDER BY ts",
            (sensor_id, id1, id2),
        ).fetchall()
        return _measures(rows)
    rows = conn.execute(
        f"SELECT {_MEASURE_COLUMNS} FROM readings WHERE sensor_id = %s ORDER BY ts DESC OFFSET %s LIMIT %s",
        (sensor_id, -id2, id2 - id1),
    ).fetchall()
    return list(reversed(_measures(rows)))


def measure_at(conn: Conn, sensor_id: int, ts: float) -> Measure | None:
    rows = conn.execute(
        f"SELECT {_MEASURE_COLUMNS} FROM readings WHERE sensor_id = %s AND ts = to_timestamp(%s)", (sensor_id, ts)
    ).fetchall()
    found = _measures(rows)
    return found[0] if found else None


def measures_between(conn: Conn, sensor_id: int, t1: float, t2: float, limit: int | None = None) -> list[Measure]:
    rows = conn.execute(
        f"SELECT {_MEASURE_COLUMNS} FROM readings WHERE sensor_id = %s"
        " AND ts >= to_timestamp(%s) AND ts < to_timestamp(%s) ORDER BY ts LIMIT %s",
        (sensor_id, t1, t2, limit),
    ).fetchall()
    return _measures(rows)


def energy_of_groups(measures: Sequence[Measure], group_size: int, max_gap: float) -> list[Energy]:
    """Energy per group of consecutive measures. Each segment between two consecutive selected
    measures belongs to the group of the measure that ends it, so no energy falls between groups."""
    groups = [Energy() for _ in range(math.ceil(len(measures) / group_size))]
    index_of = {m.timestamp: i for i, m in enumerate(measures)}
    for segment in segments_of((m.sample for m in measures), max_gap):
        groups[index_of[segment.t1] // group_size].add_segment_part(segment)
    return groups


def energy_in_intervals(
    conn: Conn, sensor_id: int, intervals: Sequence[tuple[float, float]], max_gap: float
) -> list[Energy]:
    """Exact energy of each [lo, hi) interval: rollups for whole 15-min buckets, raw readings for the rest."""
    results = [Energy() for _ in intervals]
    rollup_spans: list[tuple[int, int, int]] = []  # (result index, first bucket, end bucket)
    raw_parts: list[tuple[int, float, float]] = []  # (result index, lo, hi)
    for index, (lo, hi) in enumerate(intervals):
        first = math.ceil(lo / ROLLUP_SECONDS) * ROLLUP_SECONDS
        end = math.floor(hi / ROLLUP_SECONDS) * ROLLUP_SECONDS
        if end - first >= ROLLUP_SECONDS:
            rollup_spans.append((index, first, end))
            raw_parts += [(index, lo, first), (index, end, hi)]
        else:
            raw_parts.append((index, lo, hi))
    if rollup_spans:
        _add_rollups(conn, sensor_id, rollup_spans, results)
    raw_parts = [(i, lo, hi) for i, lo, hi in raw_parts if hi > lo]
    if raw_parts:
        _add_raw(conn, sensor_id, raw_parts, results, max_gap)
    return results


def _add_rollups(conn: Conn, sensor_id: int, spans: list[tuple[int, int, int]], results: list[Energy]) -> None:
    rows = conn.execute(
        "SELECT extract(epoch FROM bucket)::int8, day_wh, night_wh, day_seconds, night_seconds FROM energy_rollups"
        " WHERE sensor_id = %s AND bucket >= to_timestamp(%s) AND bucket < to_timestamp(%s) ORDER BY bucket",
        (sensor_id, min(s[1] for s in spans), max(s[2] for s in spans)),
    ).fetchall()
    starts = [int(r[0]) for r in rows]
    energies = [Energy(float(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in rows]
    # Buckets come sorted: each span is a slice of them (a year of hours is 8760 spans over
    # 35040 buckets, too many for a span-by-bucket double loop).
    for index, first, end in spans:
        for energy in energies[bisect.bisect_left(starts, first) : bisect.bisect_left(starts, end)]:
            results[index] += energy


def _add_raw(
    conn: Conn, sensor_id: int, parts: list[tuple[int, float, float]], results: list[Energy], max_gap: float
) -> None:
    # Every segment touching [lo, hi) has both ends within max_gap of it, so each part needs the
    # readings of [lo - max_gap, hi + max_gap]; overlapping windows are merged and fetched at once.
    windows: list[list[float]] = []
    window_of: list[int] = []  # for each part, in sorted order, the window holding it
    ordered = sorted(parts, key=lambda p: p[1])
    for _, lo, hi in ordered:
        if windows and lo - max_gap <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], hi + max_gap)
        else:
            windows.append([lo - max_gap, hi + max_gap])
        window_of.append(len(windows) - 1)
    # One statement for all windows, each read by its own index (or compressed-batch) range
    # scan: the LATERAL subquery with its ORDER BY is not flattened into a join, so each window's
    # bounds reach the readings scan. As a plain join, the planner read every reading of the
    # sensor and filtered them, which on compressed chunks meant decompressing the whole history
    # (0.2 s for 30 days, 9 s for 696 unaligned hours). The outer bounds are constants, so
    # TimescaleDB leaves chunks outside all windows out of the plan altogether.
    rows = conn.execute(
        "SELECT w.n, extract(epoch FROM r.ts)::float8, r.power, r.night_rate"
        " FROM unnest(%(lo)s::float8[], %(hi)s::float8[]) WITH ORDINALITY AS w(lo, hi, n)"
        " CROSS JOIN LATERAL ("
        "   SELECT ts, power, night_rate FROM readings"
        "   WHERE sensor_id = %(s)s AND ts >= to_timestamp(w.lo) AND ts <= to_timestamp(w.hi)"
        "     AND ts >= to_timestamp(%(first)s) AND ts <= to_timestamp(%(last)s)"
        "   ORDER BY ts) AS r"
        " ORDER BY w.n, r.ts",
        {
            "lo": [float(w[0]) for w in windows],
            "hi": [float(w[1]) for w in windows],
            "s": sensor_id,
            "first": windows[0][0],
            "last": windows[-1][1],
        },
    ).fetchall()
    samples: dict[int, list[Sample]] = {}
    for n, ts, power, night in rows:
        samples.setdefault(int(n) - 1, []).append(Sample(float(ts), float(power), bool(night)))
    segments: dict[int, list[Segment]] = {w: list(segments_of(s, max_gap)) for w, s in samples.items()}
    ends = {w: [segment.t1 for segment in window_segments] for w, window_segments in segments.items()}
    for (index, lo, hi), window in zip(ordered, window_of, strict=True):
        window_segments = segments.get(window, [])
        # Segments are in time order and do not overlap: start at the first one ending after lo.
        for segment in window_segments[bisect.bisect_right(ends.get(window, []), lo) :]:
            if segment.t0 >= hi:
                break
            results[index].add_segment_part(segment, lo, hi)


@dataclass(frozen=True)
class Provider:
    id: int
    name: str
    type_id: int
    day_slope: float
    day_constant: float
    night_slope: float
    night_constant: float
    threshold: float

    def cost(self, energy: Energy) -> tuple[float, float]:
        """(day, night) euros of an energy split, at the per-kWh prices."""
        return energy.day_wh / 1000 * self.day_slope, energy.night_wh / 1000 * self.night_slope


_PROVIDER_COLUMNS = (
    "id, name, type_id, day_slope_watt_euros, day_constant_watt_euros, night_slope_watt_euros,"
    " night_constant_watt_euros, threshold"
)


def providers(conn: Conn) -> list[Provider]:
    rows = conn.execute(f"SELECT {_PROVIDER_COLUMNS} FROM energy_providers ORDER BY id").fetchall()
    return [Provider(int(r[0]), str(r[1]), int(r[2]), *(float(v) for v in r[3:])) for r in rows]


def current_provider_id(conn: Conn) -> int | None:
    row = conn.execute(
        "SELECT coalesce(h.provider_id, (SELECT min(id) FROM energy_providers)) FROM household h"
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def current_provider(conn: Conn) -> Provider | None:
    wanted = current_provider_id(conn)
    return next((p for p in providers(conn) if p.id == wanted), None)
