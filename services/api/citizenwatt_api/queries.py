"""Reading measures and energy out of the database for the legacy (and modern) API.

Energy over long periods comes from the 15-minute rollups the writers keep exact; only the parts
of a period that do not fall on rollup edges are integrated from raw readings. The arithmetic
itself lives in citizenwatt_common.energy, shared with the writers.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Sequence, Set
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from citizenwatt_common.energy import HOUR_SECONDS, MINUTE_SECONDS, ROLLUP_SECONDS, Energy, Sample, Segment, segments_of

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
        rows = _newest(conn, sensor_id, -measure_id - 1, 1)
    found = _measures(rows)
    return found[0] if found else None


# How far back from a sensor's newest reading the newest measures are looked for first. With a
# constant time bound TimescaleDB plans only the chunks that can hold them: unbounded, "the 100
# newest" planned every chunk of three years of history and took 49 ms instead of 3.
_NEWEST_FIRST_LOOK = timedelta(days=1)


def _newest(conn: Conn, sensor_id: int, offset: int, limit: int) -> list[tuple[Any, ...]]:
    """The measures ``offset`` .. ``offset + limit - 1`` counted from the newest, newest first."""
    row = conn.execute("SELECT last_seen FROM sensors WHERE id = %s", (sensor_id,)).fetchone()
    if row is not None and row[0] is not None:
        rows = conn.execute(
            f"SELECT {_MEASURE_COLUMNS} FROM readings WHERE sensor_id = %s AND ts >= %s"
            " ORDER BY ts DESC OFFSET %s LIMIT %s",
            (sensor_id, row[0] - _NEWEST_FIRST_LOOK, offset, limit),
        ).fetchall()
        # last_seen is at or after the newest reading, so every reading newer than the bound is
        # in: a full page is exactly the unbounded answer. A short one may not be: look further.
        if len(rows) == limit:
            return rows
    return conn.execute(
        f"SELECT {_MEASURE_COLUMNS} FROM readings WHERE sensor_id = %s ORDER BY ts DESC OFFSET %s LIMIT %s",
        (sensor_id, offset, limit),
    ).fetchall()


def measures_by_ids(conn: Conn, sensor_id: int, id1: int, id2: int) -> list[Measure]:
    """Both >= 0: ids in [id1, id2). Both <= 0: the slice [id1, id2) counted from the newest end."""
    if id1 >= 0 and id2 > 0:
        rows = conn.execute(
            f"SELECT {_MEASURE_COLUMNS} FROM readings WHERE sensor_id = %s AND id >= %s AND id < %s ORDER BY ts",
            (sensor_id, id1, id2),
        ).fetchall()
        return _measures(rows)
    if id2 - id1 <= 0:
        return []
    return list(reversed(_measures(_newest(conn, sensor_id, -id2, id2 - id1))))


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
    conn: Conn, sensor_id: int | Sequence[int], intervals: Sequence[tuple[float, float]], max_gap: float
) -> list[Energy]:
    """Exact energy of each [lo, hi) interval, summed by the database (over several sensors if given).

    Intervals at least _SNAP_FROM long whose edges are off the minute are worked out on their
    edges moved to the nearest minute (from rollups only, _energy_on_edges), then corrected by the
    energy between each such edge and its minute, from the readings around it (_edge_parts): a
    legacy script asking for a week at 5 minutes from ``time.time()`` reads 2 017 short windows
    of readings instead of every reading of the week.
    """
    sensor_ids = [sensor_id] if isinstance(sensor_id, int) else list(sensor_id)
    if not intervals:
        return []
    ragged = _ragged_edges(intervals, _SNAP_FROM)
    if ragged and _has_chunks(conn):
        ragged = _ragged_edges(intervals, _SNAP_FROM_CHUNKED)
    if not ragged:
        return _energy_on_edges(conn, sensor_ids, intervals, max_gap)
    snapped = [(_nearest_minute(lo), _nearest_minute(hi)) if hi > lo else (lo, hi) for lo, hi in intervals]
    parts = _edge_parts(conn, sensor_ids, ragged, max_gap)
    results = []
    for (lo, hi), on_minutes in zip(intervals, _energy_on_edges(conn, sensor_ids, snapped, max_gap), strict=True):
        if hi <= lo or (lo not in parts and hi not in parts):
            results.append(on_minutes)
            continue
        # [lo, hi) = [M(lo), M(hi)) - [M(lo), lo) + [M(hi), hi), each part signed (see _edge_parts).
        total = Energy()
        total += on_minutes
        if lo in parts:
            total += parts[lo].scaled(-1.0)
        if hi in parts:
            total += parts[hi]
        results.append(_without_dust(total))
    return results


def _energy_on_edges(
    conn: Conn, sensor_ids: list[int], intervals: Sequence[tuple[float, float]], max_gap: float
) -> list[Energy]:
    """Exact energy of each interval, from the rollups and from raw readings where it must.

    The intervals' edges, plus the local midnights (of closed days), hour and quarter-hour edges
    just inside each interval, cut the time line into cells. A cell between two local midnights
    of closed days is read from the daily rollups, one between two whole hours from the hourly
    rollups, one between two quarter hours from the 15-minute rollups, one between two minutes
    from the minute rollups, and any other one (the ragged ends, or every bucket of a fine step
    off the minutes) is integrated from raw readings; an interval is the sum of its cells. A
    quarter hour cut by edges into raw cells is worked out from its rollup minus its shorter parts
    (_split_quarters). All of it is summed in SQL, one statement per source: a week of 5-minute
    buckets on the clock reads 10 080 minute rows, not 75 600 readings, and a year by local day
    365 day rows, not 8 760 hourly ones.
    """
    if not intervals:
        return []
    days = _NO_DAYS
    if any(hi - lo >= _DAY_EDGES_FROM for lo, hi in intervals):
        days = _closed_days(conn, sensor_ids, min(lo for lo, _ in intervals), max(hi for _, hi in intervals))
    try:
        return _energy_in_cells(conn, sensor_ids, intervals, max_gap, days)
    except _DaysChanged:
        # The day rows were read by another statement than the days' description: the zone
        # changed in between (close_days then writes them all again for its days).
        return _energy_in_cells(conn, sensor_ids, intervals, max_gap, _NO_DAYS)


# Intervals shorter than this keep their edges (every cell of a fine step read from raw readings
# in one pass, about 1.6 us per reading): an edge moved to its minute costs a window of readings of
# its own, 15 to 20 us on plain tables, and on compressed chunks the batch of up to 1 000 readings
# it falls in, decompressed for it. Measured (bench/README.md): on plain tables 90-s steps gain
# nothing, 5-minute steps 1.2 to 2x and longer ones up to 4.5x; on compressed chunks 5- and
# 15-minute steps lose (an edge costs about 185 us there), half hours and hours gain 1.5 to 1.9x.
_SNAP_FROM = 120.0
_SNAP_FROM_CHUNKED = 1200.0
# Whether readings has chunks (a TimescaleDB hypertable's inherit from it).
_READINGS_CHUNKED = "EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'readings'::regclass)"
_HAS_CHUNKS = f"SELECT {_READINGS_CHUNKED}"


def _has_chunks(conn: Conn) -> bool:
    row = conn.execute(_HAS_CHUNKS).fetchone()
    return bool(row and row[0])


def _nearest_minute(t: float) -> float:
    return float(round(t / MINUTE_SECONDS) * MINUTE_SECONDS)


def _ragged_edges(intervals: Sequence[tuple[float, float]], snap_from: float) -> list[float]:
    """The edges off the minute, sorted, if the intervals are long enough to move them; else none.

    Moving edges is exact for intervals of any length; it is only slower for fine steps. Up to two
    short intervals do not count: the legacy API's last bucket is cut short at the end of the span
    (and float rounding of the span over the step can make it a sliver)."""
    lengths = [hi - lo for lo, hi in intervals if hi > lo]
    if sum(length < snap_from for length in lengths) > min(2, len(lengths) - 1):
        return []
    return sorted({t for lo, hi in intervals if hi > lo for t in (lo, hi) if t % MINUTE_SECONDS})


class _DaysChanged(Exception):
    pass


def _zone_of(conn: Conn) -> str | None:
    row = conn.execute("SELECT day_zone FROM household").fetchone()
    return None if row is None or row[0] is None else str(row[0])


class _Days(NamedTuple):
    """Which local days have day rows (store.close_days): up to ``until``, in ``zone``; their
    first instants (as PostgreSQL reads midnight in that zone) over the span asked."""

    zone: str | None
    until: float
    midnights: list[float]


_NO_DAYS = _Days(None, -math.inf, [])
# Local midnights only inside intervals this long: a local day has 23 to 25 hours.
_DAY_EDGES_FROM = 12 * HOUR_SECONDS


def _closed_days(conn: Conn, sensor_ids: list[int], lo: float, hi: float) -> _Days:
    row = conn.execute(
        """
        SELECT h.day_zone, date_part('epoch', c.until),
               (greatest(to_timestamp(%(lo)s), c.oldest) AT TIME ZONE h.day_zone)::date,
               (least(to_timestamp(%(hi)s), c.until) AT TIME ZONE h.day_zone)::date + 1
        FROM household AS h, (
            -- Closed up to the earliest of the sensors' (none, if one has none closed).
            SELECT CASE WHEN bool_and(days_closed_until IS NOT NULL) THEN min(days_closed_until) END AS until,
                   (SELECT min(bucket) FROM energy_rollups_daily WHERE sensor_id = ANY(%(s)s::int[])) AS oldest
            FROM sensors WHERE id = ANY(%(s)s::int[])) AS c
        """,
        {"s": sensor_ids, "lo": lo, "hi": hi},
    ).fetchone()
    if row is None or None in row:
        return _NO_DAYS
    zone, until, first, last = str(row[0]), float(row[1]), row[2], row[3]
    return _Days(zone, until, _midnights(conn, zone, first, last))


# Local midnights by (zone, first day, last day): a page reloaded asks for the same year again.
# Worked out by PostgreSQL, whose reading of a local midnight (DST, its time zone data) is the one
# the day rows were cut by; 16 spans of a few thousand days at most.
_MIDNIGHTS: dict[tuple[str, date, date], list[float]] = {}
_MIDNIGHTS_KEPT = 16
_MIDNIGHTS_LOCK = threading.Lock()


def _midnights(conn: Conn, zone: str, first: date, last: date) -> list[float]:
    if first > last:
        return []
    key = (zone, first, last)
    with _MIDNIGHTS_LOCK:
        found = _MIDNIGHTS.get(key)
    if found is None:
        rows = conn.execute(
            "SELECT date_part('epoch', d::timestamp AT TIME ZONE %(z)s)"
            " FROM generate_series(%(a)s::date, %(b)s::date, interval '1 day') AS d ORDER BY d",
            {"z": zone, "a": first, "b": last},
        ).fetchall()
        found = [float(t) for (t,) in rows]
        with _MIDNIGHTS_LOCK:
            if len(_MIDNIGHTS) >= _MIDNIGHTS_KEPT:
                del _MIDNIGHTS[next(iter(_MIDNIGHTS))]
            _MIDNIGHTS[key] = found
    return found


def _energy_in_cells(
    conn: Conn, sensor_ids: list[int], intervals: Sequence[tuple[float, float]], max_gap: float, days: _Days
) -> list[Energy]:
    edges = _cell_edges(intervals, days)
    cells = [Energy() for _ in range(len(edges) - 1)]
    midnights = set(days.midnights)
    sources = [_source_of(edges[index], edges[index + 1], days.until, midnights) for index in range(len(cells))]
    # Cells between intervals that do not touch (the edges' windows of _edge_parts, days apart)
    # belong to none: read, they cost a day of readings each.
    asked = [False] * len(cells)
    for lo, hi in intervals:
        first, end = bisect.bisect_left(edges, lo), bisect.bisect_left(edges, hi)
        asked[first:end] = [True] * (end - first)
    sources = [source if wanted else "none" for source, wanted in zip(sources, asked, strict=True)]
    split = _split_quarters(edges, sources)
    runs: dict[str, list[tuple[int, int]]] = {
        "none": [],
        "daily": [],
        "hourly": [],
        "quarter": [],
        "minute": [],
        "raw": [],
        "derived": [],
    }
    for index, source in enumerate(sources):
        same = runs[source]
        if same and same[-1][1] == index:
            same[-1] = (same[-1][0], index + 1)
        else:
            same.append((index, index + 1))
    for source, (table, width) in _ROLLUPS.items():
        if runs[source]:
            zone = days.zone if source == "daily" else None
            _add_rollup_cells(conn, table, width, sensor_ids, edges, runs[source], cells, zone)
    for one in sensor_ids if runs["raw"] else ():
        _add_raw_cells(conn, one, edges, runs["raw"], cells, max_gap)
    if split:
        _derive_split_quarters(conn, sensor_ids, edges, split, cells)
    if len(cells) == len(intervals) and all(
        lo == edges[i] and hi == edges[i + 1] for i, (lo, hi) in enumerate(intervals)
    ):
        return cells  # fine steps, or calendar days: every interval is one cell
    results = []
    for lo, hi in intervals:
        total = Energy()
        for cell in cells[bisect.bisect_left(edges, lo) : bisect.bisect_left(edges, hi)]:
            total += cell
        results.append(total)
    return results


# Each rollup source: its table and bucket width (a day's is nominal: local days vary).
_ROLLUPS = {
    "daily": ("energy_rollups_daily", 24 * HOUR_SECONDS),
    "hourly": ("energy_rollups_hourly", HOUR_SECONDS),
    "quarter": ("energy_rollups", ROLLUP_SECONDS),
    "minute": ("energy_rollups_minute", MINUTE_SECONDS),
}


def _split_quarters(edges: list[float], sources: list[str]) -> list[tuple[int, int, int]]:
    """Quarter hours cut by edges into raw cells: (first cell, last cell + 1, the longest one).

    The longest cell of such a quarter is not integrated from raw readings: it is the quarter's
    rollup minus its other cells (marked "derived" in ``sources``). An interval edge inside a
    quarter then costs the readings of its shorter side only: on a year at the bucket cap (an
    edge every 52.6 min, each in its own quarter) a few minutes of readings per edge, not 15.
    """
    found = []
    index = 0
    while index < len(sources):
        quarter = math.floor(edges[index] / ROLLUP_SECONDS) * ROLLUP_SECONDS
        if sources[index] != "raw" or edges[index] != quarter:
            index += 1
            continue
        end = index
        while end < len(sources) and sources[end] == "raw" and edges[end + 1] <= quarter + ROLLUP_SECONDS:
            end += 1
        if end - index >= 2 and edges[end] == quarter + ROLLUP_SECONDS:
            longest = max(range(index, end), key=lambda k: edges[k + 1] - edges[k])
            sources[longest] = "derived"
            found.append((index, end, longest))
        index = max(end, index + 1)
    return found


def _derive_split_quarters(
    conn: Conn, sensor_ids: list[int], edges: list[float], split: list[tuple[int, int, int]], cells: list[Energy]
) -> None:
    # One index scan looking up every quarter (= ANY of an array): a hash join read the whole
    # table, 12 ms for the 366 quarters of a year by day from an instant off the minute (2 ms so).
    rows = conn.execute(
        "SELECT date_part('epoch', bucket), sum(day_wh), sum(night_wh), sum(day_seconds), sum(night_seconds),"
        " sum(import_wh), sum(export_wh) FROM energy_rollups WHERE sensor_id = ANY(%(s)s::int[])"
        " AND bucket = ANY(ARRAY(SELECT to_timestamp(t) FROM unnest(%(q)s::float8[]) AS q(t))) GROUP BY bucket",
        {"q": float_array([edges[first] for first, _, _ in split]), "s": sensor_ids},
    ).fetchall()
    totals = {float(t): Energy(*(float(v) for v in sums)) for t, *sums in rows}
    for first, end, longest in split:
        derived = totals.get(edges[first], Energy())
        for index in range(first, end):
            if index != longest:
                derived += cells[index].scaled(-1.0)
        cells[longest] = _without_dust(derived)


def _without_dust(energy: Energy) -> Energy:
    """A difference of sums: a tariff part the cell holds none of may come out as +-1e-12
    rather than 0, which would make a mean power of dust divided by dust."""
    dust = 1e-6  # seconds; Energy.is_empty's threshold
    day = energy.day_seconds >= dust
    night = energy.night_seconds >= dust
    return Energy(
        energy.day_wh if day else 0.0,
        energy.night_wh if night else 0.0,
        energy.day_seconds if day else 0.0,
        energy.night_seconds if night else 0.0,
        energy.import_wh if day or night else 0.0,
        energy.export_wh if day or night else 0.0,
    )


def float_array(values: Sequence[float]) -> str:
    """A float8[] literal, for ``%s::float8[]``: 10 000 edges cost psycopg's list dumper 0.2 s
    (a regular-expression check per float); this, 5 ms. Exact: repr is the shortest text that
    float8 reads back bit for bit."""
    return "{" + ",".join(map(repr, values)) + "}"


def _cell_edges(intervals: Sequence[tuple[float, float]], days: _Days = _NO_DAYS) -> list[float]:
    # No minute edges inside intervals: a ragged end between an edge and the nearest minute would
    # still be read from raw readings, and measured on a year of readings (bench/README.md), the
    # scans for the minute rows of every ragged end cost more than the readings they spare. Minute
    # rollups serve the cells whose both edges are on the minute: fine steps on the clock.
    points: set[float] = set()
    for lo, hi in intervals:
        if hi <= lo:
            continue
        points.update((lo, hi))
        if hi - lo < ROLLUP_SECONDS:
            continue  # too short to hold a whole quarter hour (the usual case for fine steps)
        if lo % HOUR_SECONDS or hi % HOUR_SECONDS:  # else its own edges are its first and last hours
            for width in (ROLLUP_SECONDS, HOUR_SECONDS):
                first, last = math.ceil(lo / width) * width, math.floor(hi / width) * width
                if first < last:
                    points.update((float(first), float(last)))
        if hi - lo >= _DAY_EDGES_FROM and lo < days.until:
            # The first and last local midnights inside, and where the closed days end, when a
            # whole day lies between (not in a UTC day, which holds one local midnight: cut in
            # two, it would cost twice the cells for no day row).
            first_day, end_day = bisect.bisect_right(days.midnights, lo), bisect.bisect_left(days.midnights, hi)
            if end_day - first_day >= 2:
                inside = (days.midnights[first_day], days.midnights[end_day - 1], days.until)
                points.update(t for t in inside if lo < t < hi and t <= days.until)
    return sorted(points)


def _source_of(lo: float, hi: float, closed_until: float = -math.inf, midnights: Set[float] = frozenset()) -> str:
    if hi <= closed_until and lo in midnights and hi in midnights:
        return "daily"
    if lo % HOUR_SECONDS == 0 and hi % HOUR_SECONDS == 0:
        return "hourly"
    if lo % ROLLUP_SECONDS == 0 and hi % ROLLUP_SECONDS == 0:
        return "quarter"
    if lo % MINUTE_SECONDS == 0 and hi % MINUTE_SECONDS == 0:
        return "minute"
    return "raw"


def _add_rollup_cells(
    conn: Conn,
    table: str,
    width: int,
    sensor_ids: list[int],
    edges: list[float],
    runs: list[tuple[int, int]],
    cells: list[Energy],
    zone: str | None = None,
) -> None:
    """``zone``: day rows are read, which must still be that zone's (else _DaysChanged)."""
    # width_bucket (a binary search over the edges) tells which cell a rollup row falls in. Runs
    # spread out (a year at the cap: a quarter hour or two every 52.6 min) are each one index range
    # scan; runs covering most of their span (a week of 1-minute buckets on the clock, each cell a
    # run of its own) are one range scan over the span, keeping the rows of run cells: less than
    # 10 000 scans of one row each.
    span_rows = (edges[runs[-1][1]] - edges[runs[0][0]]) / width
    run_rows = sum(edges[end] - edges[first] for first, end in runs) / width
    sums = (
        "sum(day_wh) AS dw, sum(night_wh) AS nw, sum(day_seconds) AS ds, sum(night_seconds) AS ns,"
        " sum(import_wh) AS iw, sum(export_wh) AS ew"
    )
    # The day rows' zone, read by the same statement (so with the same snapshot) as the rows.
    sums += ", (SELECT day_zone FROM household) AS zone" if zone is not None else ", NULL AS zone"
    params: dict[str, Any] = {"edges": float_array(edges), "s": sensor_ids}
    if span_rows <= run_rows + _ROWS_PER_SCAN * len(runs):
        # Rows of the span outside the runs come back grouped by their cell (at most a row per
        # cell) and are dropped here: testing a mask array in SQL for each row cost a year by day
        # (8 760 hourly rows) 2.5 of its 8 ms.
        params.update(lo=edges[runs[0][0]], hi=edges[runs[-1][1]])
        query = sql.SQL(
            "SELECT width_bucket(date_part('epoch', bucket), %(edges)s::float8[]) AS k, " + sums + ""
            " FROM {} WHERE sensor_id = ANY(%(s)s::int[])"
            " AND bucket >= to_timestamp(%(lo)s) AND bucket < to_timestamp(%(hi)s) GROUP BY 1"
        )
    else:
        params.update(
            lo=float_array([edges[first] for first, _ in runs]), hi=float_array([edges[end] for _, end in runs])
        )
        query = sql.SQL(
            "SELECT r.k, r.dw, r.nw, r.ds, r.ns, r.iw, r.ew, r.zone"
            " FROM unnest(%(lo)s::float8[], %(hi)s::float8[]) AS run(lo, hi)"
            " CROSS JOIN LATERAL ("
            "   SELECT width_bucket(date_part('epoch', bucket), %(edges)s::float8[]) AS k, " + sums + ""
            "   FROM {} WHERE sensor_id = ANY(%(s)s::int[])"
            "     AND bucket >= to_timestamp(run.lo) AND bucket < to_timestamp(run.hi)"
            "   GROUP BY 1) AS r"
        )
    rows = conn.execute(query.format(sql.Identifier(table)), params).fetchall()
    in_run = [False] * (len(edges) + 1)  # by width_bucket's k: cell k - 1
    for first, end in runs:
        in_run[first + 1 : end + 1] = [True] * (end - first)
    if zone is not None and (
        any(row[7] != zone for row in rows)
        or (not rows and _zone_of(conn) != zone)  # none at all: dropped, or there was nothing to read
    ):
        raise _DaysChanged  # close_days dropped them, to write them again for another zone
    for k, dw, nw, ds, ns, iw, ew, _ in rows:
        if in_run[k]:
            # Energy.__iadd__ of Energy(dw, ...), without making one per row.
            cell = cells[k - 1]
            cell.day_wh += dw
            cell.night_wh += nw
            cell.day_seconds += ds
            cell.night_seconds += ns
            cell.import_wh += iw
            cell.export_wh += ew


# What one more index range scan costs, in rows read by a scan already under way (a guess on the
# safe side: a scan's start is a descent of the index and a new executor node).
_ROWS_PER_SCAN = 10


# Raw readings to energy per cell, in one pass. Each segment (two consecutive readings of one
# window, at most max_gap apart) is charged to the cell holding its end; when it crosses one cell
# edge e, its part before e is summed apart ("carry") and charged to the previous cell. Parts use
# the same formulas as citizenwatt_common.energy.Segment.part_in. Segments crossing more than one
# edge (a step shorter than the readings' period, or a gap) only show in max(k1 - k0), and are then
# fetched by _CROSSING_SEGMENTS for Python to cut. Plain sums, no FILTER: per-row work is what
# a 10 000-bucket answer costs. Each window's segments are summed in its own LATERAL subquery: a
# cell split between two pieces of a window (_cut_windows) comes back as two rows, added up in
# Python. Summed once over all windows, the 282 000 segments of a year at the bucket cap were
# sorted for the grouping (neither enable_sort off nor 256 MB of work_mem made the planner hash
# them), in 14 MB of temporary files: writes to the SD card, for a read. enable_sort stays off for
# this transaction: the planner's estimates for the LATERAL are poor, and hashing each window's
# groups made 35 days at 302.4 s 2 % faster than letting it sort them.
#
# Export (negative power) is summed apart, for the same two parts, with energy.linear_flows's
# formulas: a part whose two end powers have opposite signs holds a triangle each way. A cell's
# import is then its net plus its export. Only for a sensor that ever reported negative power
# (sensors.exports): for the others export is 0 and import the net, and their statement has no
# export sums at all (they cost fine steps 4 to 12 % more in `make bench`, for nothing).
_WINDOWS = "unnest(%(lo)s::float8[], %(hi)s::float8[], %(next)s::float8[]) AS w(lo, hi, next_lo)"
# A window's readings: its own, and the nearest one on each side within max_gap (the segment
# crossing each of its ends), by three index (or compressed-batch) range scans.
_NEAR_POINTS = """
    FROM ((SELECT ts, power, night_rate FROM readings
           WHERE sensor_id = %(s)s AND ts < to_timestamp(w.lo) AND ts >= to_timestamp(w.lo - %(gap)s)
             AND ts >= to_timestamp(%(first)s) AND ts <= to_timestamp(%(last)s)
           ORDER BY ts DESC LIMIT 1)
          UNION ALL
          (SELECT ts, power, night_rate FROM readings
           WHERE sensor_id = %(s)s AND ts >= to_timestamp(w.lo) AND ts <= to_timestamp(w.hi)
             AND ts >= to_timestamp(%(first)s) AND ts <= to_timestamp(%(last)s))
          UNION ALL
          (SELECT ts, power, night_rate FROM readings
           WHERE sensor_id = %(s)s AND ts > to_timestamp(w.hi) AND ts <= to_timestamp(w.hi + %(gap)s)
             AND ts >= to_timestamp(%(first)s) AND ts <= to_timestamp(%(last)s)
           ORDER BY ts LIMIT 1)) AS near (ts, power, night_rate)
"""
# The same from a hypertable: every reading within max_gap of the window, by one scan, the
# segments outside it then dropped. On compressed chunks each scan decompresses the batch it
# starts in (up to 1 000 readings), so one scan instead of three made a year at the bucket cap
# 18 % faster (2.7 to 2.2 s) and a week by hour off the minute 20 %; on plain tables, whose scans
# start by an index descent, reading the extra readings made the year at the cap 50 % slower.
_NEAR_RANGE = """
    FROM (SELECT ts, power, night_rate FROM readings
          WHERE sensor_id = %(s)s AND ts >= to_timestamp(w.lo - %(gap)s) AND ts <= to_timestamp(w.hi + %(gap)s)
            AND ts >= to_timestamp(%(first)s) AND ts <= to_timestamp(%(last)s)) AS near (ts, power, night_rate)
"""


def _window_segments(near: str, keep: str) -> str:
    """One window's segments (w: its bounds), with the cells their ends fall in."""
    return f"""
SELECT t0, t1, p0, p1, n, k0, k1, (%(edges)s::float8[])[k1] AS e
FROM (
    SELECT lag(t) OVER o AS t0, t AS t1, lag(p) OVER o AS p0, p AS p1, n
{near.strip(chr(10))}
    CROSS JOIN LATERAL (SELECT date_part('epoch', near.ts) AS t, near.power AS p, near.night_rate AS n) AS r
    WINDOW o AS (ORDER BY ts)
) AS seg
CROSS JOIN LATERAL (SELECT width_bucket(seg.t0, %(edges)s::float8[]) AS k0,
                           width_bucket(seg.t1, %(edges)s::float8[]) AS k1) AS cell
WHERE t1 - t0 > 0 AND t1 - t0 <= %(gap)s AND t1 < next_lo{keep}
"""


# By whether readings has chunks.
_WINDOW_SEGMENTS = {
    False: _window_segments(_NEAR_POINTS, ""),
    True: _window_segments(_NEAR_RANGE, " AND t1 >= w.lo AND t0 <= w.hi"),
}


def _export_sql(pa: str, pb: str, seconds: str) -> str:
    """SQL for the export joules of a part linear from ``pa`` to ``pb`` W (energy.linear_flows)."""
    return (
        f"CASE WHEN {pa} <= 0 AND {pb} <= 0 THEN -({pa} + {pb}) / 2 * ({seconds})"
        f" WHEN {pa} >= 0 AND {pb} >= 0 THEN 0"
        f" ELSE least({pa}, {pb}) * least({pa}, {pb}) * ({seconds}) / (2 * abs({pa} - {pb})) END"
    )


_AT_EDGE = "(p0 + (p1 - p0) * (e - t0) / (t1 - t0))"  # the power where the segment crosses edge e
_NET_SUMS = """
       sum(CASE WHEN k0 = k1 THEN (p0 + p1) / 2 * (t1 - t0)
                WHEN k0 = k1 - 1 THEN (p0 + (p1 - p0) * (e - t0) / (t1 - t0) + p1) / 2 * (t1 - e) END),
       sum(CASE WHEN k0 = k1 THEN t1 - t0 WHEN k0 = k1 - 1 THEN t1 - e END),
       sum(CASE WHEN k0 = k1 - 1 THEN (p0 + p0 + (p1 - p0) * (e - t0) / (t1 - t0)) / 2 * (e - t0) END),
       sum(CASE WHEN k0 = k1 - 1 THEN e - t0 END),
       max(k1 - k0)"""
# For each, the export in the cell of the segment's end and in its carry. The first test (both
# ends >= 0: no export) answers for most rows of a solar sensor too (its days and nights).
_EXPORT_SUMS = f"""
       sum(CASE WHEN p0 >= 0 AND p1 >= 0 THEN NULL
                WHEN k0 = k1 THEN {_export_sql("p0", "p1", "t1 - t0")}
                WHEN k0 = k1 - 1 THEN {_export_sql(_AT_EDGE, "p1", "t1 - e")} END),
       sum(CASE WHEN p0 >= 0 AND p1 >= 0 THEN NULL
                WHEN k0 = k1 - 1 THEN {_export_sql("p0", _AT_EDGE, "e - t0")} END)"""
# By (whether readings has chunks, whether the sensor ever exported).
_RAW_CELLS = {
    (chunked, exports): f"SELECT cells.* FROM {_WINDOWS} CROSS JOIN LATERAL (SELECT k1, n, {_NET_SUMS},"
    f" {_EXPORT_SUMS if exports else 'NULL, NULL'} FROM ({_WINDOW_SEGMENTS[chunked]}) AS cut GROUP BY k1, n) AS cells"
    for chunked in (False, True)
    for exports in (False, True)
}
_EXPORTS = "SELECT exports FROM sensors WHERE id = %s"
# The sensor's export flag, and whether readings has chunks: see _window_groups.
_EXPORTS_AND_CHUNKS = f"SELECT exports, {_READINGS_CHUNKED} FROM sensors WHERE id = %s"

_CROSSING_SEGMENTS = {
    chunked: f"SELECT cut.t0, cut.t1, cut.p0, cut.p1, cut.n FROM {_WINDOWS}"
    f" CROSS JOIN LATERAL ({_WINDOW_SEGMENTS[chunked]}) AS cut WHERE cut.k0 < cut.k1 - 1"
    for chunked in (False, True)
}


def _add_raw_cells(
    conn: Conn,
    sensor_id: int,
    edges: list[float],
    runs: list[tuple[int, int]],
    cells: list[Energy],
    max_gap: float,
) -> None:
    # A run needs its own readings plus, on each side, the nearest reading within max_gap (the
    # segment crossing its edge): not every reading within max_gap, which for runs a few minutes
    # long was most of what was read. Runs less than max_gap apart are read as one window, so that
    # no segment can belong to two windows. Each window is read by its own index (or
    # compressed-batch) range scans: the LATERAL subquery with its window function is not
    # flattened into a join, so the bounds reach the scans. The outer bounds of each statement (a
    # week of windows, _window_groups) are constants, so TimescaleDB leaves chunks outside them out
    # of the plan altogether.
    windows: list[list[float]] = []
    for first, end in runs:
        lo, hi = edges[first], edges[end]
        if windows and lo <= windows[-1][1] + max_gap:
            windows[-1][1] = max(windows[-1][1], hi)
        else:
            windows.append([lo, hi])
    windows = _cut_windows(windows)
    is_raw = [False] * len(cells)
    for first, end in runs:
        is_raw[first:end] = [True] * (end - first)
    rows: list[tuple[int, tuple[Any, ...]]] = []  # (offset of its edges, row)
    crossing: list[tuple[Any, ...]] = []
    with conn.transaction():
        conn.execute("SELECT set_config('enable_sort', 'off', true)")
        exports, chunked = conn.execute(_EXPORTS_AND_CHUNKS, (sensor_id,)).fetchone() or (False, False)
        groups = [_group_params(group, edges, sensor_id, max_gap) for group in _window_groups(windows, chunked)]
        found = [conn.execute(_RAW_CELLS[chunked, exports], p).fetchall() for p in groups]
        # The writer that stores a sensor's first negative reading sets its flag in the same
        # transaction, and the flag never goes back. So if it is still unset after the statements,
        # none of them had a negative reading to see, whatever the isolation level; if it was set
        # meanwhile, they are run again with the export sums.
        if not exports and _exports(conn, sensor_id):
            found = [conn.execute(_RAW_CELLS[chunked, True], p).fetchall() for p in groups]
        for params, group_rows in zip(groups, found, strict=True):
            rows += [(params["offset"], row) for row in group_rows]
            if any(row[6] > 1 for row in group_rows):
                crossing += conn.execute(_CROSSING_SEGMENTS[chunked], params).fetchall()
    last = len(cells)
    for offset, (k1, night, joules, seconds, carried_joules, carried_seconds, _, exported, carried_exported) in rows:
        # width_bucket's 1-based k is cell k - 1 of the edges sent; 0 and their number lie outside
        # every cell (and no segment reaches past the edges sent).
        for index, net, covered, out in (
            (int(k1) - 1 + offset, joules, seconds, exported),
            (int(k1) - 2 + offset, carried_joules, carried_seconds, carried_exported),
        ):
            if covered and offset <= index < last and is_raw[index]:
                wh, out_wh = net / 3600, (out or 0.0) / 3600
                # Import is net plus export; max(): a part all export has an import of 0, which the
                # two sums (net and export, each rounded) may miss by a last bit or so.
                in_wh = max(wh + out_wh, 0.0)
                if night:
                    cells[index] += Energy(0.0, wh, 0.0, covered, in_wh, out_wh)
                else:
                    cells[index] += Energy(wh, 0.0, covered, 0.0, in_wh, out_wh)
    for t0, t1, p0, p1, night in crossing:
        segment = Segment(t0, t1, p0, p1, bool(night))
        for index in range(max(bisect.bisect_right(edges, t0) - 1, 0), min(bisect.bisect_left(edges, t1), last)):
            if is_raw[index]:
                cells[index].add_segment_part(segment, edges[index], edges[index + 1])


# The longest window read by one scan. Each window's readings are sorted for its window function:
# fine steps off the minute over 35 days are one window of 377 000 readings, whose sort took 10 MB
# of temporary files (written to the SD card, for a read) with the Pi's 2 MB work_mem. A day of
# 8-s readings sorts in 1 MB.
_WINDOW_SECONDS = 86_400.0


def _cut_windows(windows: list[list[float]]) -> list[list[float]]:
    """[lo, hi, next_lo] pieces of at most _WINDOW_SECONDS, next_lo being where the next piece starts.

    Pieces touch, and a reading at a piece's end is read by both: each segment is then kept by
    the piece it ends in, and by no earlier one ("t1 < next_lo" in _window_segments), so a segment
    crossing from one piece into the next is counted once."""
    pieces: list[list[float]] = []
    for lo, hi in windows:
        count = max(math.ceil((hi - lo) / _WINDOW_SECONDS), 1)
        cuts = [lo + k * (hi - lo) / count for k in range(count)] + [hi]
        pieces += [[a, b] for a, b in itertools.pairwise(cuts)]
    for piece, following in itertools.pairwise(pieces):
        piece.append(following[0])
    if pieces:
        pieces[-1].append(math.inf)
    return pieces


def _group_params(group: list[list[float]], edges: list[float], sensor_id: int, max_gap: float) -> dict[str, Any]:
    # Only the edges this group's segments can reach go with it (width_bucket's numbers are then
    # counted from ``offset``): 27 statements each parsing 20 000 edges cost a year at the cap 10 %
    # more on plain PostgreSQL.
    offset = max(bisect.bisect_left(edges, group[0][0] - max_gap) - 1, 0)
    stop = bisect.bisect_right(edges, group[-1][1] + max_gap) + 1
    return {
        "lo": float_array([w[0] for w in group]),
        "hi": float_array([w[1] for w in group]),
        "next": float_array([w[2] for w in group]),
        "edges": float_array(edges[offset:stop]),
        "offset": offset,
        "s": sensor_id,
        "first": group[0][0] - max_gap,
        "last": group[-1][1] + max_gap,
        "gap": max_gap,
    }


# In a TimescaleDB hypertable, raw windows are read a week at a time (a statement each). The
# statement's constant bounds then plan one or two chunks instead of every chunk the request spans,
# and each of the window's index scans no longer walks them all: a year at the bucket cap (10 000
# windows) on compressed chunks took 8.3 s as one statement, 2.6 s a week at a time
# (bench/README.md). A plain table has nothing to gain from it and pays a statement per week: a
# year by day from an instant off the minute (366 windows) took 53 statements and 100 ms, 55 ms
# in one.
_GROUP_SECONDS = 7 * 86_400


def _window_groups(windows: list[list[float]], chunked: bool) -> list[list[list[float]]]:
    if not chunked:
        return [windows] if windows else []
    groups: list[list[list[float]]] = []
    for window in windows:
        if groups and window[1] - groups[-1][0][0] <= _GROUP_SECONDS:
            groups[-1].append(window)
        else:
            groups.append([window])
    return groups


def _exports(conn: Conn, sensor_id: int) -> bool:
    row = conn.execute(_EXPORTS, (sensor_id,)).fetchone()
    return bool(row and row[0])


# The energy between each moved edge and its minute (energy_in_intervals), for all of a request's
# edges at once: each window's readings within ``pad`` of it by one index (or compressed-batch)
# range scan, paired by lag() and clipped to the window. A window whose scan has no reading at or
# before its start, or none at or after its end, may miss the segment crossing that end (a pause
# longer than the pad, or a gap): it is worked out again the long way (_energy_in_cells), exactly.
_CLIPPED = "(least(t1, w.hi) - greatest(t0, w.lo))"
_AT_LO = "(p0 + (p1 - p0) * (greatest(t0, w.lo) - t0) / (t1 - t0))"
_AT_HI = "(p0 + (p1 - p0) * (least(t1, w.hi) - t0) / (t1 - t0))"
_INSIDE = "t0 IS NOT NULL AND t1 - t0 > 0 AND t1 - t0 <= %(gap)s AND t1 > w.lo AND t0 < w.hi"
_EDGE_WINDOWS = {
    exports: f"""
SELECT w.i, n,
       sum(CASE WHEN {_INSIDE} THEN ({_AT_LO} + {_AT_HI}) / 2 * {_CLIPPED} END),
       sum(CASE WHEN {_INSIDE} THEN {_CLIPPED} END),
       {
        f"sum(CASE WHEN {_INSIDE} AND NOT (p0 >= 0 AND p1 >= 0) THEN {_export_sql(_AT_LO, _AT_HI, _CLIPPED)} END)"
        if exports
        else "NULL"
    },
       min(t1), max(t1)
FROM unnest(%(lo)s::float8[], %(hi)s::float8[]) WITH ORDINALITY AS w(lo, hi, i)
CROSS JOIN LATERAL (
    SELECT date_part('epoch', lag(ts) OVER o) AS t0, date_part('epoch', ts) AS t1,
           lag(power) OVER o AS p0, power AS p1, night_rate AS n
    FROM readings
    WHERE sensor_id = %(s)s AND ts >= to_timestamp(w.lo - %(pad)s) AND ts <= to_timestamp(w.hi + %(pad)s)
      AND ts >= to_timestamp(%(first)s) AND ts <= to_timestamp(%(last)s)
    WINDOW o AS (ORDER BY ts)
) AS seg
GROUP BY w.i, n
"""
    for exports in (False, True)
}
# A sensor's period, from a few readings where the windows start: the pad is 2.5 periods.
_PERIOD = (
    "SELECT date_part('epoch', ts) FROM readings WHERE sensor_id = %s"
    " AND ts >= to_timestamp(%s) AND ts < to_timestamp(%s) ORDER BY ts LIMIT 9"
)
_PAD_BOUNDS = (10.0, 60.0)


def _edge_parts(conn: Conn, sensor_ids: list[int], edges: list[float], max_gap: float) -> dict[float, Energy]:
    """For each edge e off the minute: the energy from its nearest minute M to e, negated if e < M."""
    windows = [(min(e, _nearest_minute(e)), max(e, _nearest_minute(e))) for e in edges]
    totals = [Energy() for _ in windows]
    for one in sensor_ids:
        for total, energy in zip(totals, _window_energies(conn, one, windows, max_gap), strict=True):
            total += energy
    return {e: total if e > _nearest_minute(e) else total.scaled(-1.0) for e, total in zip(edges, totals, strict=True)}


def _window_energies(conn: Conn, sensor_id: int, windows: list[tuple[float, float]], max_gap: float) -> list[Energy]:
    energies = [Energy() for _ in windows]
    seen: list[list[float]] = [[math.inf, -math.inf] for _ in windows]  # first and last reading scanned
    with conn.transaction():
        exports, chunked = conn.execute(_EXPORTS_AND_CHUNKS, (sensor_id,)).fetchone() or (False, False)
        pad = _pad(conn, sensor_id, windows[0][0])
        # On a hypertable a week of windows per statement, with constant bounds (see _window_groups).
        groups = _window_groups([[lo, hi, float(index)] for index, (lo, hi) in enumerate(windows)], chunked)
        params = [
            {
                "lo": float_array([w[0] for w in group]),
                "hi": float_array([w[1] for w in group]),
                "s": sensor_id,
                "pad": pad,
                "gap": max_gap,
                "first": group[0][0] - pad,
                "last": group[-1][1] + pad,
            }
            for group in groups
        ]
        offsets = [int(group[0][2]) for group in groups]  # the index of each group's first window
        found = [conn.execute(_EDGE_WINDOWS[exports], p).fetchall() for p in params]
        if not exports and _exports(conn, sensor_id):  # as in _add_raw_cells
            found = [conn.execute(_EDGE_WINDOWS[True], p).fetchall() for p in params]
    for offset, rows in zip(offsets, found, strict=True):
        for i, night, joules, seconds, exported, first, last in rows:
            index = offset + int(i) - 1
            seen[index][0] = min(seen[index][0], first)
            seen[index][1] = max(seen[index][1], last)
            if seconds:
                wh, out_wh = joules / 3600, (exported or 0.0) / 3600
                in_wh = max(wh + out_wh, 0.0)  # as in _add_raw_cells
                if night:
                    energies[index] += Energy(0.0, wh, 0.0, seconds, in_wh, out_wh)
                else:
                    energies[index] += Energy(wh, 0.0, seconds, 0.0, in_wh, out_wh)
    again = [k for k, (lo, hi) in enumerate(windows) if not (seen[k][0] <= lo and seen[k][1] >= hi)]
    if again:
        exact = _energy_in_cells(conn, [sensor_id], [windows[k] for k in again], max_gap, _NO_DAYS)
        for k, energy in zip(again, exact, strict=True):
            energies[k] = energy
    return energies


def _pad(conn: Conn, sensor_id: int, start: float) -> float:
    stamps = [float(t) for (t,) in conn.execute(_PERIOD, (sensor_id, start, start + 86_400)).fetchall()]
    steps = sorted(b - a for a, b in itertools.pairwise(stamps))
    if not steps:
        return 20.0
    low, high = _PAD_BOUNDS
    return min(max(2.5 * steps[len(steps) // 2], low), high)


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
