"""The database's energy engine (queries.energy_in_intervals: hourly, 15-minute and minute rollups,
raw readings for the ragged parts, quarter hours and minutes split by an edge worked out from their
rollup) gives the same energy as integrating the readings one segment at a time in plain Python
(citizenwatt_common.energy, whose trapezoids tests/test_energy.py checks by hand), for random
readings (gaps longer than the 300 s limit, export, both tariffs) and random intervals at steps
from 8 s to two hours, aligned on the quarter hours, on the minutes or not, on all backends.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from citizenwatt_api import queries, raw_energy
from citizenwatt_api.db import configure_connection as configure_api_connection
from citizenwatt_api.queries import energy_in_intervals
from citizenwatt_common.contract import Reading
from citizenwatt_common.energy import Energy, Sample, segments_of
from citizenwatt_common.store import close_days, delete_readings, load_household, store_readings
from tests.conftest import ALL_BACKENDS

pytestmark = pytest.mark.backends(*ALL_BACKENDS)
PARIS = ZoneInfo("Europe/Paris")
MAX_GAP = 300.0
START = 1_793_000_000.0  # 2026-10-26, a Monday; a multiple of 900 is START - 200
STEPS = [8.0, 45.0, 60.0, 90.0, 299.0, 300.0, 302.4, 900.0, 1000.0, 3153.6, 3600.0, 7777.0]
FIELDS = ("day_wh", "night_wh", "day_seconds", "night_seconds", "import_wh", "export_wh")


def _readings(rng: random.Random, sensor: str, exports: bool) -> list[Reading]:
    readings, ts = [], START + rng.uniform(0, 30)
    while ts < START + 2 * 86_400:
        low = -800.0 if exports else 0.0
        readings.append(Reading(sensor=sensor, kind="simulator", ts=round(ts, 3), power=rng.uniform(low, 3000.0)))
        # Mostly 8 s, sometimes a pause within the gap limit, now and then a gap beyond it.
        ts += rng.choice([8.0] * 30 + [rng.uniform(1, 290), rng.uniform(310, 4000)])
    return readings


def _by_python(samples: list[Sample], lo: float, hi: float) -> Energy:
    energy = Energy()
    for segment in segments_of(samples, MAX_GAP):
        energy.add_segment_part(segment, lo, hi)
    return energy


def _assert_same_energy(energy: Energy, expected: Energy, *context: object) -> None:
    for field in FIELDS:
        assert getattr(energy, field) == pytest.approx(getattr(expected, field), rel=1e-9, abs=1e-6), (*context, field)


@pytest.mark.parametrize("seed", [1, 2])
def test_energy_in_intervals_equals_integrating_each_segment(
    db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Callable[[str], int], seed: int
) -> None:
    rng = random.Random(seed)
    db.execute(
        "UPDATE household SET night_start_minute = 1320, night_end_minute = 360, max_gap_seconds = %s", (MAX_GAP,)
    )
    with db.transaction():
        household = load_household(db)
        store_readings(db, _readings(rng, "house", exports=False), household, PARIS)
        store_readings(db, _readings(rng, "solar", exports=True), household, PARIS)
    compress(database_url)  # on timescaledb-compressed: the raw readings are read from compressed chunks
    ids = {str(k): int(str(i)) for k, i in db.execute("SELECT key, id FROM sensors").fetchall()}
    samples = {
        key: [
            Sample(float(str(t)), float(str(p)), bool(n))
            for t, p, n in db.execute(
                "SELECT extract(epoch FROM ts)::float8, power, night_rate FROM readings"
                " WHERE sensor_id = %s ORDER BY ts",
                (sensor_id,),
            ).fetchall()
        ]
        for key, sensor_id in ids.items()
    }
    for _ in range(16):
        step = rng.choice(STEPS)
        count = rng.randint(1, 60)
        lo = START + rng.choice(
            [rng.uniform(-600, 86_400), float(rng.randint(0, 90) * 900 - 200), float(rng.randint(0, 1440) * 60 - 200)]
        )
        intervals = [(lo + k * step, lo + (k + 1) * step) for k in range(count)]
        for key in ("house", "solar", "all"):
            wanted = list(ids.values()) if key == "all" else ids[key]
            got = energy_in_intervals(db, wanted, intervals, MAX_GAP)
            for (a, b), energy in zip(intervals, got, strict=True):
                expected = Energy()
                for name in ids if key == "all" else [key]:
                    expected += _by_python(samples[name], a, b)
                _assert_same_energy(energy, expected, key, step, a, b)


def test_intervals_spread_over_weeks_read_their_raw_windows_a_week_at_a_time(
    db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Callable[[str], int]
) -> None:
    # On TimescaleDB, raw windows more than a week apart are read by separate statements, each sent
    # only the edges its segments can reach (raw_energy._window_groups); on plain tables, by one
    # statement for all: 17 days of readings about a minute apart,
    # buckets of 1.37 days with ragged ends, a quarter-hour step straddling a group's end.
    rng = random.Random(3)
    readings, ts = [], START + 17.0
    while ts < START + 17 * 86_400:
        readings.append(Reading(sensor="house", kind="simulator", ts=round(ts, 3), power=rng.uniform(-200.0, 3000.0)))
        ts += rng.choice([60.0] * 40 + [rng.uniform(5, 290), rng.uniform(310, 5000)])
    db.execute("UPDATE household SET night_start_minute = 1320, night_end_minute = 360")
    with db.transaction():
        store_readings(db, readings, load_household(db), PARIS)
    compress(database_url)
    samples = [
        Sample(float(str(t)), float(str(p)), bool(n))
        for t, p, n in db.execute(
            "SELECT extract(epoch FROM ts)::float8, power, night_rate FROM readings ORDER BY ts"
        ).fetchall()
    ]
    for lo, step, count in ((START + 1234.5, 1.37 * 86_400, 12), (START + 6.9 * 86_400, 901.7, 60)):
        intervals = [(lo + k * step, lo + (k + 1) * step) for k in range(count)]
        got = energy_in_intervals(db, 1, intervals, MAX_GAP)
        for (a, b), energy in zip(intervals, got, strict=True):
            expected = _by_python(samples, a, b)
            _assert_same_energy(energy, expected, a)


def test_long_raw_windows_are_read_in_pieces_that_count_each_segment_once(
    db: psycopg.Connection[tuple[object, ...]],
    database_url: str,
    compress: Callable[[str], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fine steps off the minute are one raw window over their whole span, read in pieces of at
    # most raw_energy._WINDOW_SECONDS (a day; shortened here so that two days hold many cuts). The
    # pieces touch: a segment crossing a cut, a pause shorter than the gap limit across one, a gap
    # longer than it, and a reading exactly on a cut must each be counted once.
    rng = random.Random(4)
    db.execute("UPDATE household SET night_start_minute = 1320, night_end_minute = 360")
    with db.transaction():
        store_readings(db, _readings(rng, "house", exports=True), load_household(db), PARIS)
        # Readings every 8 s exactly, for the cut that falls on one (below).
        regular = [Reading(sensor="meter", kind="simulator", ts=START + 8 * k, power=100.0 + k % 7) for k in range(600)]
        store_readings(db, regular, load_household(db), PARIS)
    compress(database_url)
    ids = {str(k): int(str(i)) for k, i in db.execute("SELECT key, id FROM sensors").fetchall()}
    house, meter = _samples(db, ids["house"]), _samples(db, ids["meter"])
    for piece in (1000.0, 137.0):
        monkeypatch.setattr(raw_energy, "_WINDOW_SECONDS", piece)
        # Steps under queries._SNAP_FROM: their edges stay where they are (longer ones are moved
        # to the minute, and only short windows around them are read).
        for lo, step, count in ((START + 1234.5, 90.7, 500), (START + 86_000.3, 45.0, 300)):
            intervals = [(lo + k * step, lo + (k + 1) * step) for k in range(count)]
            got = energy_in_intervals(db, ids["house"], intervals, MAX_GAP)
            for (a, b), energy in zip(intervals, got, strict=True):
                _assert_same_energy(energy, _by_python(house, a, b), piece, a)
    # 100-s steps from START + 4 (off the minute: every cell raw) make one window of 3 000 s; in
    # pieces of 1 500 s, the cut is at START + 1 504, where a reading is.
    monkeypatch.setattr(raw_energy, "_WINDOW_SECONDS", 1500.0)
    assert raw_energy._cut_windows([[START + 4, START + 3004]]) == [
        [START + 4, START + 1504, START + 1504],
        [START + 1504, START + 3004, math.inf],
    ]
    intervals = [(START + 4 + k * 100.0, START + 4 + (k + 1) * 100.0) for k in range(30)]
    got = energy_in_intervals(db, ids["meter"], intervals, MAX_GAP)
    for (a, b), energy in zip(intervals, got, strict=True):
        _assert_same_energy(energy, _by_python(meter, a, b), a)


def _samples(db: psycopg.Connection[tuple[object, ...]], sensor_id: int) -> list[Sample]:
    return [
        Sample(float(str(t)), float(str(p)), bool(n))
        for t, p, n in db.execute(
            "SELECT extract(epoch FROM ts)::float8, power, night_rate FROM readings WHERE sensor_id = %s ORDER BY ts",
            (sensor_id,),
        ).fetchall()
    ]


def _local_days(first: datetime, count: int, zone: ZoneInfo) -> list[tuple[float, float]]:
    days = [datetime(first.year, first.month, first.day, tzinfo=zone) + timedelta(days=n) for n in range(count + 1)]
    # Midnights by the calendar (a 25-hour day when the clocks go back), as the v2 API cuts them.
    midnights = [datetime(d.year, d.month, d.day, tzinfo=zone).timestamp() for d in days]
    return list(itertools.pairwise(midnights))


def test_closed_days_give_the_same_energy_as_the_readings(
    db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Callable[[str], int]
) -> None:
    # Day rows (store.close_days, then kept by the writers) serve whole closed local days; every
    # answer must still be the readings' integral: days of Paris around the night the clocks went
    # back (2026-10-25, 25 hours), a span half closed, UTC days, ragged days, a late reading and a
    # deletion in closed days, and the household's zone changed afterwards.
    rng = random.Random(4)
    first, last = START - 7 * 86_400, START + 10 * 86_400
    db.execute("UPDATE household SET night_start_minute = 1320, night_end_minute = 360")
    for sensor, exports in (("house", False), ("solar", True)):
        readings, ts = [], first + rng.uniform(0, 30)
        while ts < last:
            low = -500.0 if exports else 0.0
            readings.append(Reading(sensor=sensor, kind="simulator", ts=round(ts, 3), power=rng.uniform(low, 3000.0)))
            ts += rng.choice([60.0] * 40 + [rng.uniform(5, 290), rng.uniform(310, 5000)])
        with db.transaction():
            store_readings(db, readings, load_household(db), PARIS)
    compress(database_url)
    # Closed up to the local midnight of 2026-10-30 (now - 2 h falls on that day), not beyond.
    closed_until = datetime(2026, 10, 30, tzinfo=PARIS).timestamp()
    assert close_days(db, closed_until + 3 * 3600, "Europe/Paris") > 0
    row = db.execute("SELECT min(extract(epoch FROM days_closed_until)), count(*) FROM sensors").fetchone()
    assert row is not None and float(str(row[0])) == closed_until
    paris_days = _local_days(datetime(2026, 10, 19), 17, PARIS)
    utc = ZoneInfo("UTC")
    sets = {
        "Paris days": paris_days,
        "a week of Paris days at a time": [(paris_days[k][0], paris_days[k + 7][0]) for k in (0, 5, 9)],
        "all of it": [(first - 3600, last + 3600)],
        "UTC days": _local_days(datetime(2026, 10, 19), 17, utc),
        "ragged days": [(first + 5000.5 + k * 86_400, first + 5000.5 + (k + 1) * 86_400) for k in range(16)],
        "two days and a half": [(paris_days[3][0] + 1800.0, paris_days[5][1] + 43_200.0)],
    }

    def check(when: str) -> None:
        ids = [int(str(i)) for (i,) in db.execute("SELECT id FROM sensors ORDER BY id").fetchall()]
        samples = {sensor_id: _samples(db, sensor_id) for sensor_id in ids}
        for name, intervals in sets.items():
            for wanted in [[one] for one in ids] + [ids]:
                got = energy_in_intervals(db, wanted, intervals, MAX_GAP)
                for (a, b), energy in zip(intervals, got, strict=True):
                    expected = Energy()
                    for sensor_id in wanted:
                        expected += _by_python(samples[sensor_id], a, b)
                    _assert_same_energy(energy, expected, when, name, wanted, a, b)

    check("closed")
    # The closed Paris days are read from their rows: 1 Wh more in one of them shows.
    oct_22 = paris_days[3]
    before = energy_in_intervals(db, [1, 2], [oct_22], MAX_GAP)[0].total_wh
    db.execute("UPDATE energy_rollups_daily SET day_wh = day_wh + 1 WHERE bucket = to_timestamp(%s)", (oct_22[0],))
    assert energy_in_intervals(db, [1, 2], [oct_22], MAX_GAP)[0].total_wh == pytest.approx(before + 2)
    db.execute("UPDATE energy_rollups_daily SET day_wh = day_wh - 1 WHERE bucket = to_timestamp(%s)", (oct_22[0],))
    # A late reading in a closed day, and a deletion in another: the writers keep their rows.
    with db.transaction():
        late = Reading(sensor="house", kind="simulator", ts=START - 3 * 86_400 + 4321.25, power=9000.0)
        assert store_readings(db, [late], load_household(db), PARIS).inserted == 1
    house = db.execute("SELECT id FROM sensors WHERE key = 'house'").fetchone()
    assert house is not None
    victims = db.execute(
        "SELECT id FROM readings WHERE sensor_id = %s AND ts >= to_timestamp(%s) ORDER BY ts LIMIT 3",
        (house[0], START - 86_400 + 7777),
    ).fetchall()
    with db.transaction():
        delete_readings(db, int(str(house[0])), [int(str(v)) for (v,) in victims])
    check("after a late reading and a deletion")
    # Another zone: the day rows are written again for its days (and Paris days read finer rows).
    # A request that saw the Paris days before the change and reads the day rows after it must
    # notice (energy_in_intervals then answers from finer rows).
    seen_before = queries._closed_days(db, [1, 2], first, last)
    close_days(db, closed_until + 3 * 3600, "UTC")
    with pytest.raises(queries._DaysChanged):
        queries._energy_in_cells(db, [1, 2], paris_days, MAX_GAP, seen_before)
    zone = db.execute("SELECT day_zone FROM household").fetchone()
    assert zone == ("UTC",)
    check("in UTC")


def _paused_and_gapped(end: float, paused_edge: float, gapped_edge: float) -> list[Reading]:
    """Readings of "house" every 8 s from START + 3.5 to ``end``, with power of both signs (import
    and export), but for a pause of 100 s from 38 s before ``paused_edge`` (within the gap limit)
    and a gap of 400 s (beyond it) starting just after ``gapped_edge``."""
    readings, ts, k = [], START + 3.5, 0
    while ts < end:
        power = 900.0 * math.sin(k / 9.0) + 150.0
        readings.append(Reading(sensor="house", kind="simulator", ts=ts, power=round(power, 2)))
        k += 1
        if paused_edge - 130 < ts < paused_edge - 30 and ts + 8 > paused_edge - 30:
            ts += 100.0
        elif gapped_edge < ts < gapped_edge + 8:
            ts += 400.0
        else:
            ts += 8.0
    return readings


def test_edges_off_the_minute_are_moved_to_it_and_corrected_from_the_readings_around_them(
    db: psycopg.Connection[tuple[object, ...]],
    database_url: str,
    compress: Callable[[str], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 20-minute buckets from an instant off the minute, as a script asks for "the last days" from
    # time.time(): each edge is moved to its nearest minute and the energy between the two comes
    # from a short window of readings (queries._edge_parts; for buckets of 2 minutes or more).
    # Readings every 8 s, with power that changes sign, except a pause of
    # 100 s (within the gap limit) across one edge and a gap of 400 s (beyond it) starting just
    # after another: those two windows lack a reading within their pad (2.5 periods, 20 s) on one
    # side, so they are worked out again the long way, and only they.
    lo, step, count = START + 3600 + 17.25, 1200.0, 40
    paused_edge, gapped_edge = lo + 10 * step, lo + 25 * step
    readings = _paused_and_gapped(lo + (count + 1) * step, paused_edge, gapped_edge)
    db.execute("UPDATE household SET night_start_minute = 1320, night_end_minute = 360")
    with db.transaction():
        store_readings(db, readings, load_household(db), PARIS)
        store_readings(
            db,
            [Reading(sensor="meter", kind="simulator", ts=START + 5 + 8 * n, power=400.0) for n in range(6700)],
            load_household(db),
            PARIS,
        )
    compress(database_url)
    ids = {str(key): int(str(i)) for key, i in db.execute("SELECT key, id FROM sensors").fetchall()}
    worked_again: list[tuple[float, float]] = []
    long_way = queries._energy_in_cells

    def spy(
        conn: psycopg.Connection[tuple[object, ...]],
        sensor_ids: list[int],
        intervals: list[tuple[float, float]],
        *rest: object,
    ) -> list[Energy]:
        if all(hi - lo < 60 for lo, hi in intervals):  # the edges' windows (the buckets are 1200 s)
            worked_again.extend(intervals)
        return long_way(conn, sensor_ids, intervals, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(queries, "_energy_in_cells", spy)
    intervals = [(lo + n * step, lo + (n + 1) * step) for n in range(count)]
    house, meter = _samples(db, ids["house"]), _samples(db, ids["meter"])
    got = energy_in_intervals(db, [ids["house"], ids["meter"]], intervals, MAX_GAP)
    for (a, b), energy in zip(intervals, got, strict=True):
        expected = _by_python(house, a, b)
        expected += _by_python(meter, a, b)
        _assert_same_energy(energy, expected, a)
    assert any(e.export_wh > 0 for e in got), "the readings were meant to export in some buckets"
    # Each edge's window lies between it and its nearest minute, 22.75 s later (START is 20 s
    # past a minute, so the edges are 37.25 s past one).
    assert START % 60 == 20
    assert sorted(worked_again) == [(edge, edge + 22.75) for edge in (paused_edge, gapped_edge)]


@pytest.mark.parametrize("way", ["probe", "scan"])
def test_moved_edges_give_the_readings_integral_whichever_way_their_windows_are_read(
    db: psycopg.Connection[tuple[object, ...]],
    database_url: str,
    compress: Callable[[str], int],
    monkeypatch: pytest.MonkeyPatch,
    way: str,
) -> None:
    # The readings around moved edges (raw_energy.window_energies) are read by a range scan per
    # window ("probe") or cut from one scan of the span ("scan", chosen on hypertables when the
    # windows are dense); each way is forced here on every backend. Readings every 8 s with both
    # signs, a pause of 100 s across one edge and a gap of 400 s after another. Besides 5-minute
    # buckets from an instant off the minute: two edges 10 s on either side of one minute (their
    # windows touch there), and two edges 20 and 10 s before one minute (their windows overlap:
    # the scan cannot give a reading to both, so that request is read by probes).
    lo = START + 3600 + 17.25  # 37.25 s past a minute (START is 20 s past one)
    paused_edge, gapped_edge = lo + 10 * 300, lo + 20 * 300
    readings = _paused_and_gapped(lo + 40 * 300, paused_edge, gapped_edge)
    db.execute("UPDATE household SET night_start_minute = 1320, night_end_minute = 360")
    with db.transaction():
        store_readings(db, readings, load_household(db), PARIS)
    compress(database_url)
    (sensor_id,) = [int(str(i)) for (i,) in db.execute("SELECT id FROM sensors").fetchall()]
    house = _samples(db, sensor_id)
    minute = lo + 30 * 300 - 37.25  # a whole minute inside the readings
    assert minute % 60 == 0
    requests = {
        "5-minute buckets": ([(lo + n * 300, lo + (n + 1) * 300) for n in range(30)], True),
        "windows touching": ([(lo, minute - 10), (minute - 10, minute + 10), (minute + 10, lo + 35 * 300)], True),
        "windows overlapping": ([(lo, minute - 20), (minute - 20, minute - 10), (minute - 10, lo + 35 * 300)], False),
    }
    bounds_found: list[bool] = []
    scan_bounds = raw_energy._scan_bounds

    def spy(windows: list[tuple[float, float]], pad: float) -> list[float] | None:
        found = scan_bounds(windows, pad)
        bounds_found.append(found is not None)
        return found

    monkeypatch.setattr(raw_energy, "_scan_bounds", spy)
    monkeypatch.setattr(raw_energy, "_scan_is_cheaper", lambda *_: way == "scan")
    for name, (intervals, scanned) in requests.items():
        bounds_found.clear()
        got = energy_in_intervals(db, sensor_id, intervals, MAX_GAP)
        for (a, b), energy in zip(intervals, got, strict=True):
            _assert_same_energy(energy, _by_python(house, a, b), name, a)
        assert bounds_found == ([scanned] if way == "scan" else []), name
    exported = energy_in_intervals(db, sensor_id, requests["5-minute buckets"][0], MAX_GAP)
    assert any(e.export_wh > 0 for e in exported), "the readings were meant to export in some buckets"


@pytest.mark.parametrize("way", ["statement", "fetched"])
def test_fine_cells_give_the_readings_integral_whichever_way_they_are_cut(
    way: str,
    monkeypatch: pytest.MonkeyPatch,
    db: psycopg.Connection[tuple[object, ...]],
    database_url: str,
    compress: Callable[[str], int],
) -> None:
    # Cells finer than the minute off the readings' times (raw_energy.add_raw_cells) are summed by
    # one statement, or, when they are dense, from the window's readings fetched and cut in Python;
    # each way is forced here on every backend. One sensor that never exported (power > 0) and one
    # that did: export parts stay the statement's, so its cells are never fetched. Readings every
    # 8 s, a pause of 100 s across one edge, a gap of 400 s after another, night from 22:00: cells
    # of 8 s, of 20 s, and of 3 s (segments crossing two edges or more).
    lo = START + 3600 + 0.25
    paused_edge, gapped_edge = lo + 800, lo + 1600
    both_signs = _paused_and_gapped(lo + 3000, paused_edge, gapped_edge)
    positive = [Reading(sensor="fridge", kind="simulator", ts=r.ts, power=abs(r.power) + 1) for r in both_signs]
    db.execute("UPDATE household SET night_start_minute = 1320, night_end_minute = 360")
    with db.transaction():
        store_readings(db, positive + both_signs, load_household(db), PARIS)
    compress(database_url)
    ids = {str(key): int(str(i)) for key, i in db.execute("SELECT key, id FROM sensors").fetchall()}
    cut = raw_energy._cut_readings
    fetched: list[int] = []

    def spy(readings: list[tuple[object, ...]], edges: list[float], max_gap: float) -> object:
        fetched.append(len(readings))
        return cut(readings, edges, max_gap)

    monkeypatch.setattr(raw_energy, "_cut_readings", spy)
    monkeypatch.setattr(raw_energy, "_FETCHED_CELL_SECONDS", math.inf if way == "fetched" else 0.0)
    for sensor, exports in (("fridge", False), ("house", True)):
        samples = _samples(db, ids[sensor])
        for step, count in ((8.0, 300), (20.0, 140), (3.0, 400)):
            fetched.clear()
            intervals = [(lo + n * step, lo + (n + 1) * step) for n in range(count)]
            got = energy_in_intervals(db, ids[sensor], intervals, MAX_GAP)
            for (a, b), energy in zip(intervals, got, strict=True):
                _assert_same_energy(energy, _by_python(samples, a, b), sensor, step, a)
            assert bool(fetched) == (way == "fetched" and not exports), (sensor, step)
            assert sum(e.seconds for e in got) > 0


def test_a_long_fine_step_request_is_summed_without_temporary_files(db: psycopg.Connection[tuple[object, ...]]) -> None:
    """35 days at 5 minutes on the clock sums 50 400 minute rows into 10 080 buckets. Grouped at
    once, even with the api's 4 MB work_mem, PostgreSQL sorted them in temporary files: writes to
    the SD card, for a read. With no temporary file allowed, the request must still answer, right."""
    db.execute("INSERT INTO sensors (key, name, kind) VALUES ('house', 'house', 'simulator')")
    first = 1_792_800_000.0  # a multiple of 3 600
    minutes = 35 * 1440
    # Minute i holds i Wh and 60 s of day tariff: bucket k (minutes 5k to 5k + 4) holds 25k + 10 Wh.
    db.execute(
        "INSERT INTO energy_rollups_minute (sensor_id, bucket, day_wh, night_wh, day_seconds, night_seconds,"
        " import_wh, export_wh)"
        " SELECT s.id, to_timestamp(%s + 60 * i), i, 0, 60, 0, i, 0"
        " FROM sensors AS s, generate_series(0, %s - 1) AS i WHERE s.key = 'house'",
        (first, minutes),
    )
    row = db.execute("SELECT id FROM sensors WHERE key = 'house'").fetchone()
    assert row is not None
    sensor_id = int(str(row[0]))
    db.execute("ANALYZE energy_rollups_minute")  # as autovacuum would: the planner's groups estimate
    configure_api_connection(db)  # the api's work_mem
    db.execute("SET temp_file_limit = 0")  # any temporary file is an error
    buckets = minutes // 5
    intervals = [(first + 300 * k, first + 300 * (k + 1)) for k in range(buckets)]
    got = energy_in_intervals(db, sensor_id, intervals, MAX_GAP)
    assert len(got) == buckets
    for k, energy in enumerate(got):
        wh = 25 * k + 10
        assert (energy.day_wh, energy.day_seconds, energy.night_wh, energy.import_wh) == (wh, 300, 0, wh)
