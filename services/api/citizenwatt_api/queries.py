"""Reading measures and energy out of the database for the legacy (and modern) API.

Energy over long periods comes from the rollups the writers keep exact (days, hours, quarter hours,
minutes); only the parts of a period that do not fall on their edges are integrated from raw
readings, by raw_energy.py. The arithmetic itself lives in citizenwatt_common.energy, shared with
the writers.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NamedTuple

from psycopg import sql

from citizenwatt_common.energy import HOUR_SECONDS, MINUTE_SECONDS, ROLLUP_SECONDS, Energy, Sample, segments_of

from .raw_energy import Conn, add_raw_cells, float_array, window_energies

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
    if not ragged:
        return _energy_on_edges(conn, sensor_ids, intervals, max_gap)
    # Each edge's minute worked out once (back-to-back intervals share their edges).
    minute_of = {t: _nearest_minute(t) for t in ragged}
    snapped = [(minute_of.get(lo, lo), minute_of.get(hi, hi)) if hi > lo else (lo, hi) for lo, hi in intervals]
    parts = _edge_parts(conn, sensor_ids, ragged, minute_of, max_gap)
    no_part = Energy()
    results = []
    for (lo, hi), on_minutes in zip(intervals, _energy_on_edges(conn, sensor_ids, snapped, max_gap), strict=True):
        if hi <= lo or (lo not in parts and hi not in parts):
            results.append(on_minutes)
            continue
        # [lo, hi) = [M(lo), M(hi)) - [M(lo), lo) + [M(hi), hi), each part signed (see _edge_parts).
        results.append(_without_dust(_corrected(on_minutes, parts.get(lo, no_part), parts.get(hi, no_part))))
    return results


def _corrected(on_minutes: Energy, before: Energy, after: Energy) -> Energy:
    """on_minutes - before + after, field by field (one object, not one per term: 10 000 buckets
    off the minute made 40 000 of them)."""
    return Energy(
        on_minutes.day_wh - before.day_wh + after.day_wh,
        on_minutes.night_wh - before.night_wh + after.night_wh,
        on_minutes.day_seconds - before.day_seconds + after.day_seconds,
        on_minutes.night_seconds - before.night_seconds + after.night_seconds,
        on_minutes.import_wh - before.import_wh + after.import_wh,
        on_minutes.export_wh - before.export_wh + after.export_wh,
    )


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
# in one pass, about 1.6 us per reading): moving an edge costs the readings around it
# (raw_energy.window_energies), and with an edge every minute or less those are most of the
# readings anyway. Measured (bench/README.md): 90-s steps gain nothing on plain tables, 5-minute
# steps 1.2 to 2x and longer ones up to 4.5x; on compressed chunks, where each edge's window is
# cut from one scan of the span, 5-minute steps 1.4x, 15-minute ones 3.4x.
_SNAP_FROM = 120.0


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
    back_to_back = _back_to_back(intervals)
    edges = _cell_edges(intervals, days, back_to_back)
    cells = [Energy() for _ in range(len(edges) - 1)]
    sources = _sources(edges, days)
    if not back_to_back:
        # Cells between intervals that do not touch (the edges' windows of _edge_parts, days
        # apart) belong to none: read, they cost a day of readings each. (Back-to-back intervals,
        # such as a legacy call's buckets, leave no cell between them.)
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
    index = 0
    for source, same in itertools.groupby(sources):
        end = index + sum(1 for _ in same)
        runs[source].append((index, end))
        index = end
    for source, (table, width) in _ROLLUPS.items():
        if runs[source]:
            zone = days.zone if source == "daily" else None
            _add_rollup_cells(conn, table, width, sensor_ids, edges, runs[source], cells, zone)
    for one in sensor_ids if runs["raw"] else ():
        add_raw_cells(conn, one, edges, runs["raw"], cells, max_gap)
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


# The most raw cells of a quarter hour whose longest is derived from its rollup (_split_quarters).
_SPLIT_CELLS = 5


def _split_quarters(edges: list[float], sources: list[str]) -> list[tuple[int, int, int]]:
    """Quarter hours cut by edges into raw cells: (first cell, last cell + 1, the longest one).

    The longest cell of such a quarter is not integrated from raw readings: it is the quarter's
    rollup minus its other cells (marked "derived" in ``sources``). An interval edge inside a
    quarter then costs the readings of its shorter side only: on a year at the bucket cap (an
    edge every 52.6 min, each in its own quarter) a few minutes of readings per edge, not 15.
    Not for quarters cut into more than _SPLIT_CELLS cells (fine steps): the raw pass reads their
    readings anyway, and the longest of 112 cells of 8 s spares one reading for 111 subtractions
    (22.2 hours at 8 s spent 10 of its 100 ms on them).
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
        if 2 <= end - index <= _SPLIT_CELLS and edges[end] == quarter + ROLLUP_SECONDS:
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


def _back_to_back(intervals: Sequence[tuple[float, float]]) -> bool:
    """Whether each interval is longer than nothing and starts where the one before it ends."""
    if not intervals:
        return False
    previous = intervals[0][0]
    for lo, hi in intervals:
        if lo != previous or hi <= lo:
            return False
        previous = hi
    return True


def _cell_edges(
    intervals: Sequence[tuple[float, float]], days: _Days = _NO_DAYS, back_to_back: bool = False
) -> list[float]:
    # No minute edges inside intervals: a ragged end between an edge and the nearest minute would
    # still be read from raw readings, and measured on a year of readings (bench/README.md), the
    # scans for the minute rows of every ragged end cost more than the readings they spare. Minute
    # rollups serve the cells whose both edges are on the minute: fine steps on the clock.
    if back_to_back and all(hi - lo < ROLLUP_SECONDS for lo, hi in intervals):
        # Fine steps: the intervals' own edges, already in order (no set of 10 000 to sort).
        return [intervals[0][0], *(hi for _, hi in intervals)]
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


# A cell's source by the coarsest grid both its edges are on: raw, minutes, quarter hours, hours.
_BY_GRID = ("raw", "minute", "quarter", "hourly")


def _sources(edges: list[float], days: _Days) -> list[str]:
    """Where each cell between consecutive edges is read from: day rows for a closed local day,
    else the coarsest rollup whose grid both its edges are on, else raw readings."""
    grid = [
        3 if t % HOUR_SECONDS == 0 else 2 if t % ROLLUP_SECONDS == 0 else 1 if t % MINUTE_SECONDS == 0 else 0
        for t in edges
    ]
    sources = [_BY_GRID[min(a, b)] for a, b in itertools.pairwise(grid)]
    if days.midnights:
        midnights = set(days.midnights)
        for index, (lo, hi) in enumerate(itertools.pairwise(edges)):
            if hi <= days.until and lo in midnights and hi in midnights:
                sources[index] = "daily"
    return sources


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
    # Runs covering most of their span (a week of 1-minute buckets on the clock, each cell a run of
    # its own) are one range scan over the span, width_bucket (a binary search over the edges)
    # telling each rollup row its cell. Runs spread out (a year at the cap: a quarter hour or two
    # every 52.6 min) are read cell by cell instead, each cell one index range scan and a plain
    # aggregate: grouped by cell within each run, every run's subquery built a hash table sized by
    # the planner's guess of its groups (121 kB for a run of 15 minute rows), and a year at the
    # cap's 9 280 minute runs took 330 ms; its 18 560 cells read one by one, 163 ms.
    in_runs = sum(end - first for first, end in runs)
    span_rows = (edges[runs[-1][1]] - edges[runs[0][0]]) / width
    run_rows = sum(edges[end] - edges[first] for first, end in runs) / width
    sums = (
        "sum(day_wh) AS dw, sum(night_wh) AS nw, sum(day_seconds) AS ds, sum(night_seconds) AS ns,"
        " sum(import_wh) AS iw, sum(export_wh) AS ew"
    )
    # The day rows' zone, read by the same statement (so with the same snapshot) as the rows.
    day_zone = "(SELECT day_zone FROM household)" if zone is not None else "NULL"
    params: dict[str, Any] = {"s": sensor_ids}
    wanted: list[int] = []  # by cell: the index in ``cells`` of each cell read one by one
    if span_rows <= run_rows + _ROWS_PER_SCAN * in_runs:
        # Rows of the span outside the runs come back grouped by their cell (at most a row per
        # cell) and are dropped here: testing a mask array in SQL for each row cost a year by day
        # (8 760 hourly rows) 2.5 of its 8 ms. The span is grouped in pieces of _PIECE_ROWS rows
        # (a LATERAL range scan each): grouped at once, 50 400 minute rows (35 days at 5 min, on
        # the minute or off it) were too many groups for the api's 4 MB of work_mem (db.py), and
        # PostgreSQL sorted them in temporary files, 3 to 7 MB of writes to the SD card for a read.
        # Pieces end on cell edges, so that each cell is still summed by one group.
        cuts, last = [runs[0][0]], runs[-1][1]
        while cuts[-1] < last:
            further = bisect.bisect_left(edges, edges[cuts[-1]] + width * _PIECE_ROWS, cuts[-1] + 1, last)
            cuts.append(further)
        params.update(
            edges=float_array(edges),
            lo=float_array([edges[k] for k in cuts[:-1]]),
            hi=float_array([edges[k] for k in cuts[1:]]),
        )
        query = sql.SQL(
            "SELECT r.*, " + day_zone + " FROM unnest(%(lo)s::float8[], %(hi)s::float8[]) AS piece(lo, hi)"
            " CROSS JOIN LATERAL ("
            "   SELECT width_bucket(date_part('epoch', bucket), %(edges)s::float8[]) AS k, " + sums + ""
            "   FROM {} WHERE sensor_id = ANY(%(s)s::int[])"
            "     AND bucket >= to_timestamp(piece.lo) AND bucket < to_timestamp(piece.hi) GROUP BY 1) AS r"
        )
    else:
        wanted = [index for first, end in runs for index in range(first, end)]
        params.update(
            lo=float_array([edges[index] for index in wanted]), hi=float_array([edges[index + 1] for index in wanted])
        )
        query = sql.SQL(
            "SELECT c.place, r.dw, r.nw, r.ds, r.ns, r.iw, r.ew, " + day_zone + ""
            " FROM unnest(%(lo)s::float8[], %(hi)s::float8[]) WITH ORDINALITY AS c(lo, hi, place)"
            " CROSS JOIN LATERAL ("
            "   SELECT " + sums + " FROM {} WHERE sensor_id = ANY(%(s)s::int[])"
            "     AND bucket >= to_timestamp(c.lo) AND bucket < to_timestamp(c.hi)) AS r"
        )
    rows = conn.execute(query.format(sql.Identifier(table)), params, binary=True).fetchall()
    if zone is not None and (
        any(row[7] != zone for row in rows)
        or (not rows and _zone_of(conn) != zone)  # none at all: dropped, or there was nothing to read
    ):
        raise _DaysChanged  # close_days dropped them, to write them again for another zone
    if wanted:
        # c.place is the 1-based place of the cell in ``wanted``; a cell with no rollup row has no sums.
        found = [(wanted[row[0] - 1], row) for row in rows if row[1] is not None]
    else:
        in_run = [False] * (len(edges) + 1)  # by width_bucket's k: cell k - 1
        for first, end in runs:
            in_run[first + 1 : end + 1] = [True] * (end - first)
        found = [(row[0] - 1, row) for row in rows if in_run[row[0]]]
    for index, (_, dw, nw, ds, ns, iw, ew, _) in found:
        # Energy.__iadd__ of Energy(dw, ...), without making one per row.
        cell = cells[index]
        cell.day_wh += dw
        cell.night_wh += nw
        cell.day_seconds += ds
        cell.night_seconds += ns
        cell.import_wh += iw
        cell.export_wh += ew


# What one more index range scan costs, in rows read by a scan already under way (a guess on the
# safe side: a scan's start is a descent of the index and a new executor node).
_ROWS_PER_SCAN = 10
# The most rollup rows per sensor one piece of a span groups: its hash table (or sort) of at most
# that many cells stays within the Pi's 2 MB work_mem.
_PIECE_ROWS = 2_000


def _edge_parts(
    conn: Conn, sensor_ids: list[int], edges: list[float], minute_of: dict[float, float], max_gap: float
) -> dict[float, Energy]:
    """For each edge e off the minute: the energy from its nearest minute M to e, negated if e < M."""
    windows = [(e, minute_of[e]) if e < minute_of[e] else (minute_of[e], e) for e in edges]
    totals: list[Energy] | None = None  # the first sensor's energies, the others added to them
    for one in sensor_ids:

        def exact(again: list[tuple[float, float]], one: int = one) -> list[Energy]:
            return _energy_in_cells(conn, [one], again, max_gap, _NO_DAYS)

        energies = window_energies(conn, one, windows, max_gap, exact)
        if totals is None:
            totals = energies
        else:
            for total, energy in zip(totals, energies, strict=True):
                total += energy
    if totals is None:  # no sensor: nothing measured
        totals = [Energy() for _ in windows]
    return {e: total if e > minute_of[e] else total.scaled(-1.0) for e, total in zip(edges, totals, strict=True)}


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
