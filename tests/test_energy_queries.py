"""The database's energy engine (queries.energy_in_intervals: hourly, 15-minute and minute rollups,
raw readings for the ragged parts, quarter hours and minutes split by an edge worked out from their
rollup) gives the same energy as integrating the readings one segment at a time in plain Python
(citizenwatt_common.energy, whose trapezoids tests/test_energy.py checks by hand), for random
readings (gaps longer than the 300 s limit, export, both tariffs) and random intervals at steps
from 8 s to two hours, aligned on the quarter hours, on the minutes or not, on all backends.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from zoneinfo import ZoneInfo

import psycopg
import pytest

from citizenwatt_api.queries import energy_in_intervals
from citizenwatt_common.contract import Reading
from citizenwatt_common.energy import Energy, Sample, segments_of
from citizenwatt_common.store import load_household, store_readings
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
                for field in FIELDS:
                    assert getattr(energy, field) == pytest.approx(getattr(expected, field), rel=1e-9, abs=1e-6), (
                        key,
                        step,
                        a,
                        b,
                        field,
                    )


def test_intervals_spread_over_weeks_read_their_raw_windows_a_week_at_a_time(
    db: psycopg.Connection[tuple[object, ...]], database_url: str, compress: Callable[[str], int]
) -> None:
    # Raw windows more than a week apart are read by separate statements, each sent only the edges
    # its segments can reach (queries._window_groups): 17 days of readings about a minute apart,
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
            for field in FIELDS:
                assert getattr(energy, field) == pytest.approx(getattr(expected, field), rel=1e-9, abs=1e-6), (a, field)
