"""Rollups stay exact whatever order readings arrive in, and survive redelivery and deletion.

On ``timescaledb-compressed`` every chunk is compressed before each change, so late readings,
redeliveries and deletions land in compressed chunks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from zoneinfo import ZoneInfo

import psycopg
import pytest

from citizenwatt_common.contract import Reading
from citizenwatt_common.store import close_days, delete_readings, load_household, store_readings
from tests.conftest import ALL_BACKENDS

pytestmark = pytest.mark.backends(*ALL_BACKENDS)
Compress = Callable[[str], int]

B = 1_794_600_000  # a multiple of 900: rollup buckets start at B and B + 900
PARIS = ZoneInfo("Europe/Paris")
# B+700: 100 W, B+800: 300 W, B+1000: 300 W, B+1100: 500 W (gap limit 300 s: all segments count)
TRACE = [(700, 100.0), (800, 300.0), (1000, 300.0), (1100, 500.0)]
# Segments: (700,800) 200 W*100 s = 20000 J; (800,1000) 300 W*200 s = 60000 J; (1000,1100) 400 W*100 s = 40000 J.
# Bucket B: 20000 + 300 W*100 s = 50000 J over 200 s.  Bucket B+900: 30000 + 40000 = 70000 J over 200 s.
EXPECTED_WH = {B: 50_000 / 3600, B + 900: 70_000 / 3600}


def reading(offset: int, power: float) -> Reading:
    return Reading(sensor="meter", kind="simulator", ts=B + offset, power=power)


def store(conn: psycopg.Connection[tuple[object, ...]], readings: list[Reading]) -> int:
    with conn.transaction():
        return store_readings(conn, readings, load_household(conn), PARIS).inserted


def rollups(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, tuple[float, float]]:
    rows = conn.execute(
        "SELECT extract(epoch FROM bucket)::int8, day_wh + night_wh, day_seconds + night_seconds FROM energy_rollups"
    ).fetchall()
    return {int(str(b)): (float(str(wh)), float(str(s))) for b, wh, s in rows}


def assert_rollups(conn: psycopg.Connection[tuple[object, ...]], expected_wh: dict[int, float]) -> None:
    got = rollups(conn)
    assert sorted(got) == sorted(expected_wh)
    for bucket, wh in expected_wh.items():
        assert got[bucket][0] == pytest.approx(wh, abs=1e-9)
        assert got[bucket][1] == pytest.approx(200)
    # B is a whole UTC hour, so both quarter hours fall in the hourly bucket B.
    rows = conn.execute(
        "SELECT extract(epoch FROM bucket)::int8, day_wh + night_wh, day_seconds + night_seconds"
        " FROM energy_rollups_hourly"
    ).fetchall()
    hourly = [(int(str(b)), float(str(wh)), float(str(sec))) for b, wh, sec in rows]
    assert [b for b, _, _ in hourly] == [B]
    assert hourly[0][1] == pytest.approx(sum(expected_wh.values()), abs=1e-9)
    assert hourly[0][2] == pytest.approx(200 * len(expected_wh))


def test_in_order_batch(db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Compress) -> None:
    assert store(db, [reading(o, p) for o, p in TRACE]) == 4
    compress(database_url)
    assert_rollups(db, EXPECTED_WH)
    assert db.execute("SELECT count(*), sum(power) FROM readings").fetchone() == (4, 1200.0)


@pytest.mark.parametrize("order", list(itertools.permutations(range(4)))[::5])
def test_any_arrival_order_gives_the_same_rollups(
    db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Compress, order: tuple[int, ...]
) -> None:
    for position, index in enumerate(order):
        if position > 0:
            compress(database_url)  # the next reading arrives late, into a compressed chunk
        assert store(db, [reading(*TRACE[index])]) == 1
    assert_rollups(db, EXPECTED_WH)


def test_redelivery_stores_once_and_changes_nothing(
    db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Compress
) -> None:
    store(db, [reading(o, p) for o, p in TRACE])
    compress(database_url)
    assert store(db, [reading(o, p) for o, p in TRACE] + [reading(700, 100.0)]) == 0
    assert db.execute("SELECT count(*) FROM readings").fetchone() == (4,)
    assert_rollups(db, EXPECTED_WH)


def test_a_late_reading_and_its_redelivery_in_one_batch(
    db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Compress
) -> None:
    store(db, [reading(o, p) for o, p in TRACE if o != 1000])
    compress(database_url)
    # B+1000 (300 W) comes late, twice in one batch, with a copy of B+700: one row more, and the
    # rollups become the full trace's. Without it, (800,1100) was one 300 s segment of
    # (300 + 500)/2 W = 120000 J: 100 s in bucket B (300 -> 366.7 W: 33333.3 J) and 200 s in B+900.
    assert rollups(db)[B][0] == pytest.approx((20_000 + 100_000 / 3) / 3600)
    assert store(db, [reading(1000, 300.0), reading(1000, 300.0), reading(700, 100.0)]) == 1
    assert db.execute("SELECT count(*) FROM readings").fetchone() == (4,)
    assert_rollups(db, EXPECTED_WH)


def test_deleting_a_reading_bridges_its_neighbours(
    db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Compress
) -> None:
    store(db, [reading(o, p) for o, p in TRACE])
    compress(database_url)
    row = db.execute("SELECT id FROM readings WHERE ts = to_timestamp(%s)", (B + 800,)).fetchone()
    assert row is not None
    with db.transaction():
        assert delete_readings(db, 1, [int(str(row[0]))]) == 1
    # Now (700,1000) is one 300 s segment from 100 W to 300 W. Power at B+900 is 100 + 200*200/300 = 233.33 W.
    # Bucket B: (100 + 233.33)/2 * 200 s = 33333.3 J; bucket B+900: (233.33 + 300)/2 * 100 s + 40000 J = 66666.7 J.
    assert_rollups(db, {B: 100_000 / 3 / 3600, B + 900: 200_000 / 3 / 3600})
    total, meter = db.execute("SELECT energy_total_wh, meter_wh FROM sensors").fetchone() or (0, 0)
    assert float(str(total)) == pytest.approx(100_000 / 3600)  # 33333.3 + 66666.7 J
    assert float(str(meter)) == pytest.approx(120_000 / 3600)  # the meter never goes back


def test_the_hourly_rollups_are_filled_from_the_quarter_hours_on_upgrade(
    db: psycopg.Connection[tuple[object, ...]], database_url: str
) -> None:
    from citizenwatt_common.schema import MIGRATIONS, migrate
    from tests.test_export_energy import downgrade_to

    store(db, [reading(o, p) for o, p in TRACE])
    # Back to the schema before the hourly rollups, with the 15-minute ones already written (and
    # the later migrations undone: migrate() applies what comes after the newest version applied).
    version = next(n for n, text in enumerate(MIGRATIONS, 1) if "CREATE TABLE energy_rollups_hourly" in text)
    downgrade_to(db, version - 1)
    migrate(db, 300.0)
    row = db.execute("SELECT extract(epoch FROM bucket)::int8, day_wh + night_wh FROM energy_rollups_hourly").fetchall()
    assert [int(str(b)) for b, _ in row] == [B]
    assert float(str(row[0][1])) == pytest.approx((50_000 + 70_000) / 3600)


def test_a_different_reading_in_the_same_microsecond_is_a_conflict_not_a_duplicate(
    db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Compress
) -> None:
    """Timestamps are stored to the microsecond: B+700.0000001 and B+700.0000004 both round to
    B+700.000000. The first (100 W) is kept; the second (150 W) differs and must be reported as a
    conflict (position 1 of its batch), not counted as a harmless redelivery. A true redelivery of
    the kept one (same values) is still a duplicate. Rollups stay the trace's: the 150 W never
    entered them."""
    with db.transaction():
        household = load_household(db)
        first = store_readings(
            db, [Reading(sensor="meter", kind="simulator", ts=B + 700.0000001, power=100.0)], household, PARIS
        )
    assert (first.inserted, first.duplicates, first.conflicts) == (1, 0, ())
    compress(database_url)
    near = Reading(sensor="meter", kind="simulator", ts=B + 700.0000004, power=150.0)
    again = Reading(sensor="meter", kind="simulator", ts=B + 700.0000001, power=100.0)
    rest = [reading(o, p) for o, p in TRACE[1:]]
    with db.transaction():
        result = store_readings(db, [rest[0], near, again, *rest[1:]], load_household(db), PARIS)
    assert (result.inserted, result.duplicates, result.conflicts) == (3, 1, (1,))
    assert db.execute("SELECT count(*), sum(power) FROM readings").fetchone() == (4, 1200.0)
    assert_rollups(db, EXPECTED_WH)


def minute_rollups(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, tuple[float, ...]]:
    rows = conn.execute(
        "SELECT extract(epoch FROM bucket)::int8, day_wh, night_wh, day_seconds, night_seconds, import_wh, export_wh"
        " FROM energy_rollups_minute ORDER BY 1"
    ).fetchall()
    return {int(str(b)): tuple(float(str(v)) for v in values) for b, *values in rows}


def test_the_minute_rollups_are_the_trace_cut_at_each_minute(
    db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Compress
) -> None:
    # Stored in an odd order, with a late reading, so the rows are sums of deltas.
    store(db, [reading(o, p) for o, p in TRACE if o != 800])
    compress(database_url)
    store(db, [reading(800, 300.0)])
    # Worked out by hand from TRACE (powers linear between readings; all day, all import):
    # (700,800) 100 -> 300 W: minute B+660 holds [700,720): 100 -> 140 W, 20 s = 2400 J;
    # minute B+720 holds [720,780): 140 -> 260 W, 60 s = 12000 J; minute B+780: [780,800) 260 -> 300 W,
    # 20 s = 5600 J, then (800,1000) at 300 W: [800,840) = 12000 J, 60 s in all -> 17600 J.
    # B+840, B+900, B+960: 300 W for 60 s = 18000 J each, except B+960 = [960,1000) 12000 J
    # + (1000,1100) 300 -> 500 W over [1000,1020): 300 -> 340 W, 20 s = 6400 J -> 18400 J.
    # B+1020 [1020,1080): 340 -> 460 W = 24000 J; B+1080 [1080,1100): 460 -> 500 W = 9600 J.
    expected_joules = {
        B + 660: (2_400, 20),
        B + 720: (12_000, 60),
        B + 780: (17_600, 60),
        B + 840: (18_000, 60),
        B + 900: (18_000, 60),
        B + 960: (18_400, 60),
        B + 1020: (24_000, 60),
        B + 1080: (9_600, 20),
    }
    got = minute_rollups(db)
    assert sorted(got) == sorted(expected_joules)
    for bucket, (joules, seconds) in expected_joules.items():
        day_wh, night_wh, day_s, night_s, import_wh, export_wh = got[bucket]
        assert (day_wh, day_s, import_wh) == pytest.approx((joules / 3600, seconds, joules / 3600), abs=1e-9)
        assert (night_wh, night_s, export_wh) == pytest.approx((0, 0, 0), abs=1e-9)


def test_the_minute_rollups_are_filled_from_the_readings_on_upgrade(
    db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Compress
) -> None:
    from citizenwatt_common.schema import MIGRATIONS, migrate
    from tests.test_export_energy import downgrade_to

    db.execute("UPDATE household SET night_start_minute = 1265, night_end_minute = 360")
    # Night from 21:05 Paris (B is 21:00 there), export, zero crossings, a gap beyond the 300 s limit
    # and segments crossing several minutes.
    points = [(0, 200.0), (8, -100.0), (50, 300.0), (290, -50.0), (650, 120.0), (1300, 80.0), (1310, 90.0)]
    store(db, [reading(o, p) for o, p in points] + [reading(o, p) for o, p in TRACE])
    compress(database_url)
    written = minute_rollups(db)
    assert len(written) > 10
    version = next(n for n, text in enumerate(MIGRATIONS, 1) if "CREATE TABLE energy_rollups_minute" in text)
    downgrade_to(db, version - 1)
    migrate(db, 300.0)
    rebuilt = minute_rollups(db)
    assert sorted(rebuilt) == sorted(written)
    for bucket, values in written.items():
        assert rebuilt[bucket] == pytest.approx(values, rel=1e-12, abs=1e-9), bucket


def day_rollups(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, tuple[float, float]]:
    rows = conn.execute(
        "SELECT extract(epoch FROM bucket)::int8, day_wh + night_wh, day_seconds + night_seconds"
        " FROM energy_rollups_daily ORDER BY 1"
    ).fetchall()
    return {int(str(b)): (float(str(wh)), float(str(s))) for b, wh, s in rows}


def test_a_day_row_is_written_when_the_day_closes_and_then_kept_by_the_writers(
    db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Compress
) -> None:
    # B is 21:00 in Paris on 2026-11-13 (UTC+1): the local day ends at B + 3 h, the next at B + 27 h.
    midnight_13, midnight_14, midnight_15 = B - 21 * 3600, B + 3 * 3600, B + 27 * 3600
    # 1000 W every minute from 21:00 to 01:00: 3 h (3000 Wh) on the 13th, 1 h (1000 Wh) on the 14th.
    store(db, [reading(60 * n, 1000.0) for n in range(241)])
    compress(database_url)
    assert close_days(db, midnight_14 + 2 * 3600 - 1, "Europe/Paris") == 0  # the 13th ended < 2 h ago
    assert day_rollups(db) == {}
    # Two hours after the 13th ends, it is closed from its quarter-hour rows; the 14th is not.
    assert close_days(db, midnight_14 + 2 * 3600, "Europe/Paris") == 1
    assert day_rollups(db) == {midnight_13: pytest.approx((3000.0, 10_800.0))}
    assert close_days(db, midnight_14 + 2 * 3600, "Europe/Paris") == 0  # nothing more to close
    # A late 4000 W reading at 22:30:30 (B + 5430): its minute becomes two 30-s segments averaging
    # 2500 W instead of one at 1000 W: +1500 W * 60 s = +25 Wh on the closed 13th.
    store(db, [reading(5430, 4000.0)])
    assert day_rollups(db) == {midnight_13: pytest.approx((3025.0, 10_800.0))}
    # The same on the open 14th (00:30:30): no row for it until it closes, with its 1025 Wh.
    store(db, [reading(12_630, 4000.0)])
    assert day_rollups(db) == {midnight_13: pytest.approx((3025.0, 10_800.0))}
    assert close_days(db, midnight_15 + 2 * 3600, "Europe/Paris") == 1
    assert day_rollups(db) == {
        midnight_13: pytest.approx((3025.0, 10_800.0)),
        midnight_14: pytest.approx((1025.0, 3600.0)),
    }
    # Deleting the late reading of the 13th takes its 25 Wh out of the day's row.
    late = db.execute("SELECT id FROM readings WHERE ts = to_timestamp(%s)", (B + 5430,)).fetchone()
    assert late is not None
    with db.transaction():
        delete_readings(db, 1, [int(str(late[0]))])
    assert day_rollups(db)[midnight_13] == pytest.approx((3000.0, 10_800.0))
    # In another zone, the rows are written again for its days: in UTC, all 4 h fall on the 13th
    # (20:00 to 24:00) with the 14th's late reading: 4025 Wh.
    assert close_days(db, midnight_15 + 2 * 3600, "UTC") == 1
    assert day_rollups(db) == {B - 20 * 3600: pytest.approx((4025.0, 14_400.0))}
