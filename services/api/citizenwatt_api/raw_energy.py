"""Energy integrated from raw readings, where no rollup row fits: the engine under queries.py.

Two uses, both reading a request's readings in a few statements rather than one per bucket:
- ``add_raw_cells``: the cells of a request whose edges are off the rollups' grid (fine steps off
  the minute, a ragged end), each window of readings scanned once and cut into cells in SQL;
- ``window_energies``: short windows around bucket edges moved to their nearest minute (queries'
  ``_edge_parts``), paired and clipped in one statement; those it cannot be sure of go to the
  caller's exact way.
The arithmetic is citizenwatt_common.energy's (trapezoids of consecutive readings at most max_gap
apart, export summed apart), written again in SQL for the rows and checked against it by the tests.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from citizenwatt_common.energy import Energy, Segment

Conn = psycopg.Connection[Any]

# Whether readings is a TimescaleDB hypertable with chunks (statements are then grouped by week).
READINGS_CHUNKED = "EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'readings'::regclass)"


def float_array(values: Sequence[float]) -> str:
    """A float8[] literal, for ``%s::float8[]``: 10 000 edges cost psycopg's list dumper 0.2 s
    (a regular-expression check per float); this, 5 ms. Exact: repr is the shortest text that
    float8 reads back bit for bit."""
    return "{" + ",".join(map(repr, values)) + "}"


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


# Readings paired in time order (lag). A reading's ts is unique for its sensor, so the default frame's
# peers (RANGE) never group two rows, but PostgreSQL still compares every row's key to look for
# them: lag ignores frames, and with ROWS the pairing of 75 000 readings (6.9 days) took 10 % less.
_BY_TIME = "WINDOW o AS (ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)"


def _window_segments(near: str, keep: str) -> str:
    """One window's segments (w: its bounds), with the cells their ends fall in."""
    return f"""
SELECT t0, t1, p0, p1, n, k0, k1, (%(edges)s::float8[])[k1] AS e
FROM (
    SELECT lag(t) OVER o AS t0, t AS t1, lag(p) OVER o AS p0, p AS p1, n
{near.strip(chr(10))}
    CROSS JOIN LATERAL (SELECT date_part('epoch', near.ts) AS t, near.power AS p, near.night_rate AS n) AS r
    {_BY_TIME}
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
_EXPORTS_AND_CHUNKS = f"SELECT exports, {READINGS_CHUNKED} FROM sensors WHERE id = %s"

_CROSSING_SEGMENTS = {
    chunked: f"SELECT cut.t0, cut.t1, cut.p0, cut.p1, cut.n FROM {_WINDOWS}"
    f" CROSS JOIN LATERAL ({_WINDOW_SEGMENTS[chunked]}) AS cut WHERE cut.k0 < cut.k1 - 1"
    for chunked in (False, True)
}


# Fine cells, a reading or two each (10 000 cells of 8 s), cost the statement above more per cell
# than per reading: its groups, rows and their sums. There the window's readings are fetched and
# cut into cells here instead (_cut_readings), with the statement's arithmetic in its order. In
# process, plain PostgreSQL, 10 000 cells from 8-s readings, best of 8 against the statement:
# 8-s cells 74 to 91 ms against 96 to 152; 16-s cells 102 to 111 against 121 to 143; 25-s cells
# (3 readings a cell) about even. Hence only for one window with cells of at most 20 s on average,
# and a sensor that never exported (export parts stay the statement's).
_FETCHED_CELL_SECONDS = 20.0
_WINDOW_READINGS = (
    "SELECT date_part('epoch', ts), power, night_rate FROM readings WHERE sensor_id = %s"
    " AND ts >= to_timestamp(%s) AND ts <= to_timestamp(%s) ORDER BY ts"
)


def add_raw_cells(
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
    is_raw = [False] * len(cells)
    for first, end in runs:
        is_raw[first:end] = [True] * (end - first)
    # Fine cells in one window: its readings fetched and cut here (_FETCHED_CELL_SECONDS).
    fetch = len(windows) == 1 and windows[0][1] - windows[0][0] <= _FETCHED_CELL_SECONDS * sum(is_raw)
    with conn.transaction():
        conn.execute("SELECT set_config('enable_sort', 'off', true)")
        exports, chunked = conn.execute(_EXPORTS_AND_CHUNKS, (sensor_id,)).fetchone() or (False, False)
        found = None
        if fetch and not exports:
            lo, hi = windows[0][0] - max_gap, windows[0][1] + max_gap
            readings = conn.execute(_WINDOW_READINGS, (sensor_id, lo, hi), binary=True).fetchall()
            # As below: a flag still unset after the read means none of these readings is negative.
            exports = _exports(conn, sensor_id)
            if not exports:
                found = _cut_readings(readings, edges, max_gap)
        if found is None:
            found = _read_cells(conn, sensor_id, edges, _cut_windows(windows), chunked, exports, max_gap)
    _apply_cells(*found, edges, is_raw, cells)


# A cell's sums, as _RAW_CELLS gives them: (k1, night, joules, seconds, carried joules, carried
# seconds, max(k1 - k0), exported joules, carried exported joules), with the offset of its edges.
Rows = list[tuple[int, tuple[Any, ...]]]


def _read_cells(
    conn: Conn,
    sensor_id: int,
    edges: list[float],
    windows: list[list[float]],
    chunked: bool,
    exports: bool,
    max_gap: float,
) -> tuple[Rows, list[tuple[Any, ...]]]:
    """The cells' sums by _RAW_CELLS, and the segments crossing two edges or more."""
    rows: Rows = []
    crossing: list[tuple[Any, ...]] = []
    groups = [_group_params(group, edges, sensor_id, max_gap) for group in _window_groups(windows, chunked)]
    found = [conn.execute(_RAW_CELLS[chunked, exports], p, binary=True).fetchall() for p in groups]
    # The writer that stores a sensor's first negative reading sets its flag in the same
    # transaction, and the flag never goes back. So if it is still unset after the statements,
    # none of them had a negative reading to see, whatever the isolation level; if it was set
    # meanwhile, they are run again with the export sums.
    if not exports and _exports(conn, sensor_id):
        found = [conn.execute(_RAW_CELLS[chunked, True], p, binary=True).fetchall() for p in groups]
    for params, group_rows in zip(groups, found, strict=True):
        rows += [(params["offset"], row) for row in group_rows]
        if any(row[6] > 1 for row in group_rows):
            crossing += conn.execute(_CROSSING_SEGMENTS[chunked], params).fetchall()
    return rows, crossing


def _cut_readings(
    readings: list[tuple[Any, ...]], edges: list[float], max_gap: float
) -> tuple[Rows, list[tuple[Any, ...]]]:
    """_RAW_CELLS's sums (net only) worked out from a window's readings (t, power, night) in time
    order: the same formulas, summed per cell and tariff in the same order, so the same sums."""
    sums: dict[tuple[int, bool], list[float]] = {}
    crossing: list[tuple[Any, ...]] = []  # as _CROSSING_SEGMENTS gives them
    find = bisect.bisect_right
    t0 = p0 = 0.0
    k0 = -1  # no reading yet
    for t1, p1, night in readings:
        k1 = find(edges, t1)  # width_bucket's number: the cell holding t1 is k1 - 1
        seconds = t1 - t0
        if k0 >= 0 and 0 < seconds <= max_gap:
            if k0 == k1:
                part = sums.setdefault((k1, night), [0.0, 0.0, 0.0, 0.0])
                part[0] += (p0 + p1) / 2 * seconds
                part[1] += seconds
            elif k0 == k1 - 1:
                e = edges[k1 - 1]
                part = sums.setdefault((k1, night), [0.0, 0.0, 0.0, 0.0])
                part[0] += (p0 + (p1 - p0) * (e - t0) / seconds + p1) / 2 * (t1 - e)
                part[1] += t1 - e
                part[2] += (p0 + p0 + (p1 - p0) * (e - t0) / seconds) / 2 * (e - t0)
                part[3] += e - t0
            else:
                crossing.append((t0, t1, p0, p1, night))
        t0, p0, k0 = t1, p1, k1
    # The Rows shape; its max(k1 - k0) slot is 1: the segments crossing more are in ``crossing``.
    rows: Rows = [(0, (k1, night, j, s, cj, cs, 1, None, None)) for (k1, night), (j, s, cj, cs) in sums.items()]
    return rows, crossing


def _apply_cells(
    rows: Rows,
    crossing: list[tuple[Any, ...]],
    edges: list[float],
    is_raw: list[bool],
    cells: list[Energy],
) -> None:
    """Add each row's parts to its raw cells, and cut the crossing segments into them."""
    last = len(cells)
    for offset, (k1, night, joules, seconds, carried_joules, carried_seconds, _, exported, carried_exported) in rows:
        # width_bucket's 1-based k is cell k - 1 of the edges sent; 0 and their number lie outside
        # every cell (and no segment reaches past the edges sent). The carry goes to the cell before.
        index = k1 - 1 + offset
        if seconds and offset <= index < last and is_raw[index]:
            _add_part(cells[index], night, joules, seconds, exported)
        index -= 1
        if carried_seconds and offset <= index < last and is_raw[index]:
            _add_part(cells[index], night, carried_joules, carried_seconds, carried_exported)
    for t0, t1, p0, p1, night in crossing:
        segment = Segment(t0, t1, p0, p1, bool(night))
        for index in range(max(bisect.bisect_right(edges, t0) - 1, 0), min(bisect.bisect_left(edges, t1), last)):
            if is_raw[index]:
                cells[index].add_segment_part(segment, edges[index], edges[index + 1])


def _add_part(cell: Energy, night: bool, joules: float, seconds: float, exported: float | None) -> None:
    """Add one summed part (net joules over ``seconds``, of which ``exported`` joules went out) to
    a cell, in place: ``cell += Energy(...)`` made an object per part, a sixth of the Python time
    of 10 000 fine buckets."""
    wh, out_wh = joules / 3600, (exported or 0.0) / 3600
    # Import is net plus export; max(): a part all export has an import of 0, which the two sums
    # (net and export, each rounded) may miss by a last bit or so.
    cell.import_wh += max(wh + out_wh, 0.0)
    cell.export_wh += out_wh
    if night:
        cell.night_wh += wh
        cell.night_seconds += seconds
    else:
        cell.day_wh += wh
        cell.day_seconds += seconds


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
# edges at once: each window's readings within ``pad`` of it, paired by lag() and clipped to the
# window. A window whose readings hold none at or before its start, or none at or after its end,
# may miss the segment crossing that end (a pause longer than the pad, or a gap): it is worked out
# again by the caller's exact way (``exact``). Two ways to read the readings (_scan_is_cheaper):
# - "probe": one index (or compressed-batch) range scan per window, each window paired apart;
# - "scan": one range scan over the statement's whole span, each reading told its window by a
#   binary search over the windows' bounds (width_bucket: odd numbers inside a window) and the
#   others dropped before pairing. The first reading of a window is then paired with the last of
#   the window before, across readings dropped in between: harmless, as that false segment ends
#   at or before the window's start (else the window is worked out again, as above), so no part
#   of it is inside the window.
_CLIPPED = "(least(t1, w.hi) - greatest(t0, w.lo))"
_AT_LO = "(p0 + (p1 - p0) * (greatest(t0, w.lo) - t0) / (t1 - t0))"
_AT_HI = "(p0 + (p1 - p0) * (least(t1, w.hi) - t0) / (t1 - t0))"
_INSIDE = "t0 IS NOT NULL AND t1 - t0 > 0 AND t1 - t0 <= %(gap)s AND t1 > w.lo AND t0 < w.hi"


def _window_sums(inside: str, exports: bool) -> str:
    """A window's sums per tariff: net joules, seconds, export joules, first and last reading."""
    exported = (
        f"sum(CASE WHEN {inside} AND NOT (p0 >= 0 AND p1 >= 0) THEN {_export_sql(_AT_LO, _AT_HI, _CLIPPED)} END)"
        if exports
        else "NULL"
    )
    return f"""
SELECT w.i, n,
       sum(CASE WHEN {inside} THEN ({_AT_LO} + {_AT_HI}) / 2 * {_CLIPPED} END),
       sum(CASE WHEN {inside} THEN {_CLIPPED} END),
       {exported},
       min(t1), max(t1)"""


_PROBED_WINDOWS = f"""
FROM unnest(%(lo)s::float8[], %(hi)s::float8[]) WITH ORDINALITY AS w(lo, hi, i)
CROSS JOIN LATERAL (
    SELECT date_part('epoch', lag(ts) OVER o) AS t0, date_part('epoch', ts) AS t1,
           lag(power) OVER o AS p0, power AS p1, night_rate AS n
    FROM readings
    WHERE sensor_id = %(s)s AND ts >= to_timestamp(w.lo - %(pad)s) AND ts <= to_timestamp(w.hi + %(pad)s)
      AND ts >= to_timestamp(%(first)s) AND ts <= to_timestamp(%(last)s)
    {_BY_TIME}
) AS seg
GROUP BY w.i, n
"""
# Window i holds the readings in [bounds[2i - 1], bounds[2i]) (width_bucket 2i - 1).
_SCANNED_WINDOWS = f"""
FROM (
    SELECT (k + 1) / 2 AS i, (%(lo)s::float8[])[(k + 1) / 2] AS lo, (%(hi)s::float8[])[(k + 1) / 2] AS hi,
           date_part('epoch', lag(ts) OVER o) AS t0, date_part('epoch', ts) AS t1,
           lag(power) OVER o AS p0, power AS p1, night_rate AS n
    FROM (SELECT ts, power, night_rate, width_bucket(date_part('epoch', ts), %(bounds)s::float8[]) AS k
          FROM readings
          WHERE sensor_id = %(s)s AND ts >= to_timestamp(%(first)s) AND ts < to_timestamp(%(last)s)) AS r
    WHERE k %% 2 = 1
    {_BY_TIME}
) AS w
GROUP BY w.i, n
"""
# By (way, whether the sensor ever exported).
_EDGE_WINDOWS = {
    (way, exports): _window_sums(_INSIDE, exports) + rows
    for way, rows in (("probe", _PROBED_WINDOWS), ("scan", _SCANNED_WINDOWS))
    for exports in (False, True)
}
# A sensor's period, from a few readings where the windows start: the pad is 2.5 periods.
_PERIOD = (
    "SELECT date_part('epoch', ts) FROM readings WHERE sensor_id = %s"
    " AND ts >= to_timestamp(%s) AND ts < to_timestamp(%s) ORDER BY ts LIMIT 9"
)
_PAD_BOUNDS = (10.0, 60.0)
# On a hypertable, a window's own range scan decompresses the batch of up to 1 000 readings it falls
# in (about 185 us a window), while one scan of the span decompresses each batch once and tells
# each reading its window. Measured on compressed chunks (bench/README.md), the scan against a
# scan per window: 1.2x faster at 394 readings a window (a year at the bucket cap), 2x at 450 (58
# days by hour); beyond 500 it was not measured, so windows that sparse are read apart. (At 37,
# 5-minute steps, edges were not moved before: with the scan a week is 1.4x faster than its raw
# pass.) On plain tables a window's scan is an index descent (about 26 us), and the whole span's
# scan was slower even at 37 readings a window (a week at 5 min: 75 ms against about 52).
_SCAN_READINGS_PER_WINDOW = 500.0


def window_energies(
    conn: Conn,
    sensor_id: int,
    windows: list[tuple[float, float]],
    max_gap: float,
    exact: Callable[[list[tuple[float, float]]], list[Energy]],
) -> list[Energy]:
    """Each window's energy (windows sorted by their start); windows whose readings may miss a
    segment crossing their ends (a pause longer than the pad, a gap) are asked of ``exact``."""
    energies = [Energy() for _ in windows]
    seen: list[list[float]] = [[math.inf, -math.inf] for _ in windows]  # first and last reading read
    with conn.transaction():
        exports, chunked = conn.execute(_EXPORTS_AND_CHUNKS, (sensor_id,)).fetchone() or (False, False)
        period = _period(conn, sensor_id, windows[0][0])
        pad = min(max(2.5 * period, _PAD_BOUNDS[0]), _PAD_BOUNDS[1])
        bounds = _scan_bounds(windows, pad) if _scan_is_cheaper(windows, period, chunked) else None
        way = "probe" if bounds is None else "scan"
        if bounds is not None:
            # The readings come sorted by time from each chunk, and the windows' groups are hashed:
            # with sorting allowed, the planner (misled by the filter's estimate) read whole
            # tables and sorted them in temporary files (SD card writes, for a read).
            conn.execute("SELECT set_config('enable_sort', 'off', true)")
        # On a hypertable a week of windows per statement, with constant bounds (see _window_groups).
        groups = _window_groups([[lo, hi, float(index)] for index, (lo, hi) in enumerate(windows)], chunked)
        params = []
        for group in groups:
            first, end = int(group[0][2]), int(group[-1][2]) + 1  # the group's windows, by index
            p: dict[str, Any] = {
                "lo": float_array([w[0] for w in group]),
                "hi": float_array([w[1] for w in group]),
                "s": sensor_id,
                "pad": pad,
                "gap": max_gap,
                "first": group[0][0] - pad,
                "last": group[-1][1] + pad,
            }
            if bounds is not None:
                p.update(
                    bounds=float_array(bounds[2 * first : 2 * end]), first=bounds[2 * first], last=bounds[2 * end - 1]
                )
            params.append(p)
        offsets = [int(group[0][2]) for group in groups]  # the index of each group's first window
        found = [conn.execute(_EDGE_WINDOWS[way, exports], p, binary=True).fetchall() for p in params]
        if not exports and _exports(conn, sensor_id):  # as in add_raw_cells
            found = [conn.execute(_EDGE_WINDOWS[way, True], p, binary=True).fetchall() for p in params]
    for offset, rows in zip(offsets, found, strict=True):
        for i, night, joules, seconds, exported, first_seen, last_seen in rows:
            index = offset + int(i) - 1
            seen[index][0] = min(seen[index][0], first_seen)
            seen[index][1] = max(seen[index][1], last_seen)
            if seconds:
                _add_part(energies[index], night, joules, seconds, exported)
    again = [k for k, (lo, hi) in enumerate(windows) if not (seen[k][0] <= lo and seen[k][1] >= hi)]
    if again:
        for k, energy in zip(again, exact([windows[k] for k in again]), strict=True):
            energies[k] = energy
    return energies


def _scan_is_cheaper(windows: list[tuple[float, float]], period: float, chunked: bool) -> bool:
    """Whether one scan of every reading of the windows' span costs less than a scan per window."""
    readings = (windows[-1][1] - windows[0][0]) / max(period, 1e-3)
    return chunked and readings <= _SCAN_READINGS_PER_WINDOW * len(windows)


def _scan_bounds(windows: list[tuple[float, float]], pad: float) -> list[float] | None:
    """[start, end) of each window's readings for the scan: the window and ``pad`` on each side, cut
    halfway to the next window where they would overlap (a reading belongs to one window). None if
    two windows overlap (two edges on the same minute's side): then each is read apart."""
    bounds: list[float] = []
    for k, (lo, hi) in enumerate(windows):
        start = lo - pad
        if k:
            before = windows[k - 1][1]
            if lo < before:
                return None
            start = max(start, (before + lo) / 2)
        end = hi + pad
        if k + 1 < len(windows):
            end = min(end, (hi + windows[k + 1][0]) / 2)
        bounds += [start, end]
    return bounds


def _period(conn: Conn, sensor_id: int, start: float) -> float:
    """The sensor's usual time between readings (the median of a few), 8 s if it has none there."""
    stamps = [float(t) for (t,) in conn.execute(_PERIOD, (sensor_id, start, start + 86_400)).fetchall()]
    steps = sorted(b - a for a, b in itertools.pairwise(stamps))
    return steps[len(steps) // 2] if steps else 8.0
