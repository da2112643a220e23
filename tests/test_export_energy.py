"""Import and export kept apart (negative power is export), against values worked out by hand.

The exporting day, around 06:00 in Paris (winter, UTC+1), T = 05:00 UTC: a whole UTC hour (so a
15-minute and an hourly rollup edge) and the end of a 22:00-06:00 night window.

    T-200: 300 W (night)   T-100: 100 W (night)   T+100: -300 W (day)   T+200: -100 W   T+300: 100 W

Segments (each takes the tariff of the reading ending it):
1. (T-200, T-100) night, 300 -> 100 W: import (300+100)/2*100 = 20000 J.
2. (T-100, T+100) day, 100 -> -300 W: crosses zero at t* = T-100 + 100/400*200 = T-50.
   Import: triangle 100 W * 50 s / 2 = 2500 J; export: 300 W * 150 s / 2 = 22500 J; net -20000 J.
   At T the power is -100 W: before T, import 2500 and export 100*50/2 = 2500 J (net 0);
   after T, export (100+300)/2*100 = 20000 J.
3. (T+100, T+200) day, -300 -> -100 W: export (300+100)/2*100 = 20000 J.
4. (T+200, T+300) day, -100 -> 100 W: crosses zero at T+250: export 2500 J, import 2500 J.
Day: import 25000 J, export 45000 J, net -20000 J (night +20000, day -40000).
Quarter hour [T-900, T): import 22500, export 2500, night 20000, day 0, 100 s each.
Quarter hour [T, T+900): import 2500, export 42500, day -40000 over 300 s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from citizenwatt_common.contract import Reading
from citizenwatt_common.energy import (
    Energy,
    Sample,
    Segment,
    chain_delta,
    energy_between,
    linear_flows,
    segments_of,
    split_by_bucket,
)
from citizenwatt_common.store import load_household, store_readings
from tests.conftest import ALL_BACKENDS
from tests.services import MqttObserver, service
from tools.localstack import LocalMosquitto

T = 1_768_453_200  # 2026-01-15 05:00 UTC, 06:00 in Paris: a multiple of 3600 (and of 900)
TRACE = [
    Sample(T - 200, 300, True),
    Sample(T - 100, 100, True),
    Sample(T + 100, -300, False),
    Sample(T + 200, -100, False),
    Sample(T + 300, 100, False),
]
J = 1 / 3600  # Wh per joule


def test_same_signs_go_wholly_to_one_side() -> None:
    assert linear_flows(100, 300, 10) == (2000, 0)
    assert linear_flows(-100, -300, 10) == (0, 2000)
    assert linear_flows(0, 0, 10) == (0, 0)
    # A zero end belongs to neither side: the trapezoid is a triangle on the other's side.
    assert linear_flows(0, -200, 10) == (0, 1000)
    assert linear_flows(200, 0, 10) == (1000, 0)


def test_opposite_signs_make_two_triangles() -> None:
    # 100 -> -300 W over 200 s crosses zero after 50 s: 100*50/2 = 2500 J in, 300*150/2 = 22500 J out.
    assert linear_flows(100, -300, 200) == pytest.approx((2500, 22500))
    # The other way round, the same triangles.
    assert linear_flows(-300, 100, 200) == pytest.approx((2500, 22500))
    # Symmetric: -100 -> 100 over 100 s, 2500 J each way, nothing net.
    assert linear_flows(-100, 100, 100) == pytest.approx((2500, 2500))


def test_the_zero_crossing() -> None:
    assert Segment(T - 100, T + 100, 100, -300, False).zero_crossing() == T - 50
    assert Segment(0, 100, -100, 100, False).zero_crossing() == 50
    # Touching zero at an end, or staying on one side, is no crossing.
    assert Segment(0, 100, 0, -100, False).zero_crossing() is None
    assert Segment(0, 100, 100, 50, False).zero_crossing() is None


def test_the_exporting_day() -> None:
    total = energy_between(segments_of(TRACE, 300), T - 3600, T + 3600)
    assert total.import_wh == pytest.approx(25_000 * J)
    assert total.export_wh == pytest.approx(45_000 * J)
    assert total.night_wh == pytest.approx(20_000 * J)
    assert total.day_wh == pytest.approx(-40_000 * J)
    assert total.total_wh == pytest.approx(-20_000 * J)
    assert (total.day_seconds, total.night_seconds) == (400, 100)  # segments 2-4 are day


def test_parts_of_a_crossing_segment_cut_anywhere() -> None:
    segment = Segment(T - 100, T + 100, 100, -300, False)  # crossing at T-50, -100 W at T

    def flows(lo: float, hi: float) -> tuple[float, float]:
        return segment.flows_in(lo, hi)

    # Cut exactly at t*: all import before, all export after.
    assert flows(T - 100, T - 50) == pytest.approx((2500, 0))
    assert flows(T - 50, T + 100) == pytest.approx((0, 22500))
    # Cut at the rollup edge T: 2500 J each way before it, (100+300)/2*100 = 20000 J out after.
    assert flows(-1e12, T) == pytest.approx((2500, 2500))
    assert flows(T, 1e12) == pytest.approx((0, 20000))
    # Inside, around t*: T-75 (50 W) to T-25 (-50 W): two triangles of 50 W * 25 s / 2 = 625 J.
    assert flows(T - 75, T - 25) == pytest.approx((625, 625))
    # Wholly on the export side: T-25 (-50 W) to T+75 (-250 W): 150 W * 100 s = 15000 J.
    assert flows(T - 25, T + 75) == pytest.approx((0, 15000))
    # Outside the segment: nothing.
    assert flows(T + 100, T + 200) == (0, 0)


def test_rollup_buckets_carry_the_split() -> None:
    buckets = split_by_bucket(segments_of(TRACE, 300))
    assert sorted(buckets) == [T - 900, T]
    before, after = buckets[T - 900], buckets[T]
    assert (before.import_wh, before.export_wh) == pytest.approx((22_500 * J, 2_500 * J))
    assert (before.night_wh, before.day_wh) == pytest.approx((20_000 * J, 0))
    assert (after.import_wh, after.export_wh) == pytest.approx((2_500 * J, 42_500 * J))
    assert after.day_wh == pytest.approx(-40_000 * J)


def test_a_late_reading_moves_import_and_export_by_the_exact_change() -> None:
    # A late -100 W at T-150 (night) cuts segment 1 in two:
    # (T-200, T-150) 300 -> -100 W crosses zero at T-162.5: 300*37.5/2 = 5625 J in, 100*12.5/2 = 625 J out;
    # (T-150, T-100) -100 -> 100 W crosses zero at T-125: 1250 J each way.
    # Import goes from 20000 to 6875 J (-13125), export from 0 to 1875 J, all in [T-900, T).
    chain = [TRACE[0], Sample(T - 150, -100, True), TRACE[1]]
    delta = chain_delta(chain, {T - 150}, 300)
    assert sorted(delta) == [T - 900]
    assert delta[T - 900].import_wh == pytest.approx(-13_125 * J)
    assert delta[T - 900].export_wh == pytest.approx(1_875 * J)
    # Net: 20000 J becomes (300-100)/2*50 + 0 = 5000 J.
    assert delta[T - 900].total_wh == pytest.approx(-15_000 * J)


def test_energy_adds_and_scales_the_split() -> None:
    a = Energy(1, 2, 3, 4, 5, 6)
    a += Energy(1, 1, 1, 1, 1, 1)
    assert a == Energy(2, 3, 4, 5, 6, 7)
    assert a.scaled(-1) == Energy(-2, -3, -4, -5, -6, -7)


# Database tests: the same day through the writers' rollups, the upgrade, the queries and the API.
# On timescaledb-compressed, late readings land in compressed chunks.
PARIS = ZoneInfo("Europe/Paris")
Db = psycopg.Connection[Any]
Compress = Callable[[str], int]
db_backends = pytest.mark.backends(*ALL_BACKENDS)


def store(conn: Db, points: list[tuple[float, float]], sensor: str = "solar") -> int:
    with conn.transaction():
        readings = [Reading(sensor=sensor, kind="simulator", ts=ts, power=p) for ts, p in points]
        return store_readings(conn, readings, load_household(conn), PARIS).inserted


def night_window(conn: Db) -> None:
    conn.execute("UPDATE household SET night_start_minute = 1320, night_end_minute = 360")  # 22:00-06:00


def day_points() -> list[tuple[float, float]]:
    return [(s.ts, s.power) for s in TRACE]


def rollup_rows(conn: Db, table: str, sensor: str = "solar") -> dict[int, tuple[float, ...]]:
    rows = conn.execute(
        f"SELECT extract(epoch FROM bucket)::int8, import_wh, export_wh, day_wh, night_wh, day_seconds, night_seconds"
        f" FROM {table} WHERE sensor_id = (SELECT id FROM sensors WHERE key = %s) ORDER BY bucket",
        (sensor,),
    ).fetchall()
    return {int(r[0]): tuple(float(v) for v in r[1:]) for r in rows}


def meters(conn: Db, sensor: str = "solar") -> dict[str, Any]:
    row = conn.execute(
        "SELECT exports, energy_total_wh, meter_wh, energy_import_wh, meter_import_wh, energy_export_wh,"
        " meter_export_wh FROM sensors WHERE key = %s",
        (sensor,),
    ).fetchone()
    assert row is not None
    names = ("exports", "net", "meter", "import", "meter_import", "export", "meter_export")
    return {name: (bool(v) if name == "exports" else float(v)) for name, v in zip(names, row, strict=True)}


@db_backends
def test_the_rollups_of_an_exporting_day(db: Db, database_url: str, compress: Compress) -> None:
    night_window(db)
    assert store(db, day_points()) == 5
    compress(database_url)
    # (import, export, day, night Wh; day, night seconds), as worked out in the module's docstring.
    quarter = rollup_rows(db, "energy_rollups")
    assert sorted(quarter) == [T - 900, T]
    assert quarter[T - 900] == pytest.approx((22_500 * J, 2_500 * J, 0, 20_000 * J, 100, 100), abs=1e-9)
    assert quarter[T] == pytest.approx((2_500 * J, 42_500 * J, -40_000 * J, 0, 300, 0), abs=1e-9)
    # T is a whole UTC hour: the hours [T-3600, T) and [T, T+3600) hold the same as the quarters.
    assert rollup_rows(db, "energy_rollups_hourly") == {
        T - 3600: pytest.approx(quarter[T - 900], abs=1e-9),
        T: pytest.approx(quarter[T], abs=1e-9),
    }
    assert meters(db) == {
        "exports": True,
        "net": pytest.approx(-20_000 * J),
        # One batch took the net total from 0 to -20000 J: the net meter, never decreasing, stays at 0.
        # That is why an exporting sensor needs the import and export meters.
        "meter": 0,
        "import": pytest.approx(25_000 * J),
        "meter_import": pytest.approx(25_000 * J),
        "export": pytest.approx(45_000 * J),
        "meter_export": pytest.approx(45_000 * J),
    }


@db_backends
def test_the_meters_never_decrease_when_a_late_reading_lowers_a_segment(
    db: Db, database_url: str, compress: Compress
) -> None:
    night_window(db)
    store(db, day_points())
    compress(database_url)
    # -100 W at T-150 comes late (see test_a_late_reading_moves_import_and_export_by_the_exact_change):
    # import 25000 - 13125 = 11875 J, export 45000 + 1875 = 46875 J, net -20000 - 15000 = -35000 J.
    assert store(db, [(T - 150, -100.0)]) == 1
    after = meters(db)
    assert (after["import"], after["export"], after["net"]) == pytest.approx((11_875 * J, 46_875 * J, -35_000 * J))
    assert after["meter_import"] == pytest.approx(25_000 * J)  # stays at its highest
    assert after["meter_export"] == pytest.approx(46_875 * J)
    compress(database_url)
    # 0 W at T+150 comes late and halves segment 3's export: (T+100, T+150) -300 -> 0 W: 300*50/2 = 7500 J;
    # (T+150, T+200) 0 -> -100 W: 100*50/2 = 2500 J; 10000 J instead of 20000. Import is untouched.
    assert store(db, [(T + 150, 0.0)]) == 1
    last = meters(db)
    assert (last["import"], last["export"], last["net"]) == pytest.approx((11_875 * J, 36_875 * J, -25_000 * J))
    assert (last["meter_import"], last["meter_export"]) == pytest.approx((25_000 * J, 46_875 * J))
    # The rollups hold the exact figures, not the meters': both quarter hours summed.
    quarter = rollup_rows(db, "energy_rollups")
    assert sum(q[0] for q in quarter.values()) == pytest.approx(11_875 * J)
    assert sum(q[1] for q in quarter.values()) == pytest.approx(36_875 * J)


@db_backends
def test_a_sensor_that_never_exports(db: Db) -> None:
    store(db, [(T, 100.0), (T + 100, 300.0)], sensor="house")
    # (100+300)/2 * 100 s = 20000 J, all of it import.
    assert meters(db, "house") == {
        "exports": False,
        "net": pytest.approx(20_000 * J),
        "meter": pytest.approx(20_000 * J),
        "import": pytest.approx(20_000 * J),
        "meter_import": pytest.approx(20_000 * J),
        "export": 0,
        "meter_export": 0,
    }
    # A negative reading that bounds no energy (further than the gap limit) still says "exports".
    store(db, [(T + 10_000, -5.0)], sensor="house")
    assert meters(db, "house")["exports"] is True


# What undoes each migration from 4 on, so a test can go back to an older schema with its data.
UNDO = {
    4: "DROP TABLE energy_rollups_hourly",
    5: "DROP TABLE alerts, sensor_checks",
    6: "ALTER TABLE energy_rollups DROP COLUMN import_wh, DROP COLUMN export_wh;"
    " ALTER TABLE energy_rollups_hourly DROP COLUMN import_wh, DROP COLUMN export_wh;"
    " ALTER TABLE sensors DROP COLUMN exports, DROP COLUMN energy_import_wh, DROP COLUMN energy_export_wh,"
    " DROP COLUMN meter_import_wh, DROP COLUMN meter_export_wh",
    7: "DROP TABLE tempo_days, household_tariffs, tariff_versions, tariffs",
    8: "DROP TABLE quarantined_readings",
    9: "DROP TABLE energy_rollups_minute",
    10: "DROP TABLE energy_rollups_daily; ALTER TABLE sensors DROP COLUMN days_closed_until;"
    " ALTER TABLE household DROP COLUMN day_zone",
}


def downgrade_to(conn: Db, version: int) -> None:
    """Back to the schema as it was after migration ``version``, keeping readings and rollups."""
    from citizenwatt_common.schema import MIGRATIONS

    assert set(UNDO) == set(range(4, len(MIGRATIONS) + 1)), "a new migration needs its UNDO here"
    with conn.transaction():
        for newer in range(len(MIGRATIONS), version, -1):
            conn.execute(UNDO[newer].encode())
        conn.execute("DELETE FROM schema_migrations WHERE version > %s", (version,))


@db_backends
def test_the_upgrade_fills_import_and_export(db: Db, database_url: str, compress: Compress) -> None:
    from citizenwatt_common.schema import migrate

    night_window(db)
    store(db, day_points())
    store(db, [(T, 100.0), (T + 100, 300.0), (T + 200, 300.0)], sensor="house")  # no export: 20000 + 30000 J
    compress(database_url)
    tables = [(table, key) for table in ("energy_rollups", "energy_rollups_hourly") for key in ("solar", "house")]
    written = {where: rollup_rows(db, *where) for where in tables}
    solar_before = meters(db)
    downgrade_to(db, 5)
    migrate(db, 300.0)
    # The solar sensor's quarter hours worked out again from its readings, the house's import taken
    # from its net, the hours summed from the quarters: what the writers had written.
    for where in tables:
        assert rollup_rows(db, *where) == {b: pytest.approx(v, abs=1e-9) for b, v in written[where].items()}
    solar = meters(db)
    numbers = ("net", "import", "meter_import", "export", "meter_export")  # the net meter is left as it was
    assert solar["exports"] is True
    assert {k: solar[k] for k in numbers} == pytest.approx({k: solar_before[k] for k in numbers}, abs=1e-9)
    assert (solar["import"], solar["export"]) == pytest.approx((25_000 * J, 45_000 * J))
    house = meters(db, "house")
    assert (house["exports"], house["import"], house["export"]) == (False, pytest.approx(50_000 * J), 0)
    assert (house["meter_import"], house["meter_export"]) == (pytest.approx(50_000 * J), 0)


def assert_same_energy(got: Energy, want: Energy) -> None:
    fields = ("day_wh", "night_wh", "day_seconds", "night_seconds", "import_wh", "export_wh")
    assert [getattr(got, f) for f in fields] == pytest.approx([getattr(want, f) for f in fields], abs=1e-9)


@db_backends
@pytest.mark.parametrize("step", [50, 30, 7])
def test_fine_steps_from_raw_readings_split_at_zero_crossings(
    db: Db, database_url: str, compress: Compress, step: int
) -> None:
    from citizenwatt_api.queries import energy_in_intervals

    night_window(db)
    store(db, day_points())
    compress(database_url)
    # Steps shorter than a quarter hour come from raw readings, in SQL. 50 s: each segment crosses
    # one edge, and both zero crossings (T-50, T+250) fall on edges. 30 s and 7 s: segments cross
    # several edges (cut in Python), and the crossings fall inside cells.
    intervals = [(float(t), float(t + step)) for t in range(T - 250, T + 350, step)]
    got = energy_in_intervals(db, 1, intervals, 300.0)
    segments = list(segments_of(TRACE, 300))
    for (lo, hi), energy in zip(intervals, got, strict=True):
        assert_same_energy(energy, energy_between(segments, lo, hi))
    if step == 50:
        by_start = {int(lo) - T: e for (lo, _), e in zip(intervals, got, strict=True)}
        # [T-100, T-50): 100 -> 0 W, import 100*50/2 = 2500 J; [T-50, T): 0 -> -100 W, export 2500 J.
        assert (by_start[-100].import_wh, by_start[-100].export_wh) == pytest.approx((2_500 * J, 0), abs=1e-12)
        assert (by_start[-50].import_wh, by_start[-50].export_wh) == pytest.approx((0, 2_500 * J), abs=1e-12)
        # [T+200, T+250): -100 -> 0 W, export 2500 J; [T+250, T+300): 0 -> 100 W, import 2500 J.
        assert (by_start[200].import_wh, by_start[200].export_wh) == pytest.approx((0, 2_500 * J), abs=1e-12)
        assert (by_start[250].import_wh, by_start[250].export_wh) == pytest.approx((2_500 * J, 0), abs=1e-12)
    # The whole day, from rollups and raw pieces together (unaligned ends): 25000 J in, 45000 J out.
    (whole,) = energy_in_intervals(db, [1], [(T - 1234.5, T + 4321.5)], 300.0)
    assert (whole.import_wh, whole.export_wh, whole.total_wh) == pytest.approx(
        (25_000 * J, 45_000 * J, -20_000 * J), abs=1e-9
    )


def test_the_state_topic_and_home_assistant_discovery(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path
) -> None:
    """The exporting day through a real aggregator and broker: its retained state and HA discovery."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        night_window(conn)
    observer = MqttObserver(mosquitto.url, "#")
    env = {"CW_MQTT_URL": mosquitto.url, "CW_DATABASE_URL": database_url, "CW_HEALTH_PORT": "0"}
    try:
        with service("citizenwatt_aggregator", env, tmp_path / "agg.log"):
            online = ("citizenwatt/_services/aggregator/status", b"online")
            observer.wait_for(lambda ms: online in [(t, p) for t, p, _ in ms])
            for ts, power in day_points():
                body = {"v": 1, "sensor": "solar", "kind": "simulator", "ts": ts, "power": power}
                observer.publish("citizenwatt/solar/reading", json.dumps(body))

            def last_state(ms: list[tuple[str, bytes, bool]]) -> dict[str, Any] | None:
                states = [json.loads(p) for t, p, _ in ms if t == "citizenwatt/solar/state"]
                return states[-1] if states and states[-1]["ts"] == T + 300 else None

            state = observer.wait_for(last_state)
        # Whatever the batches, readings in time order only ever add: the meters are the exact
        # totals, 25000 J = 0.006944 kWh imported, 45000 J = 0.0125 kWh exported (6 decimals).
        assert state == {
            "v": 1,
            "sensor": "solar",
            "ts": T + 300,
            "power": 100.0,
            "energy_kwh": state["energy_kwh"],  # the net's highest total: depends on the batches
            "energy_import_kwh": 0.006944,
            "energy_export_kwh": 0.0125,
            "rate": "day",
        }
        discovery = {t: json.loads(p) for t, p, retained in observer.messages if t.startswith("homeassistant/")}
    finally:
        observer.close()
    for name, field, title in (
        ("energy_import", "energy_import_kwh", "Energy imported"),
        ("energy_export", "energy_export_kwh", "Energy exported"),
    ):
        config = discovery[f"homeassistant/sensor/citizenwatt_solar/{name}/config"]
        # What Home Assistant's energy dashboard accepts for grid consumption and return to grid.
        assert (config["device_class"], config["state_class"], config["unit_of_measurement"]) == (
            "energy",
            "total_increasing",
            "kWh",
        )
        assert (config["name"], config["unique_id"], config["state_topic"]) == (
            title,
            f"citizenwatt_solar_{name}",
            "citizenwatt/solar/state",
        )
        assert field in config["value_template"]


@db_backends
def test_the_exporting_day_through_the_api(database_url: str, compress: Compress) -> None:
    from fastapi.testclient import TestClient

    from citizenwatt_api.app import create_app
    from citizenwatt_api.settings import ApiSettings
    from tests.test_api_legacy import ADMIN, SAME_ORIGIN

    settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
    with TestClient(create_app(settings)) as client, psycopg.connect(database_url, autocommit=True) as conn:
        client.post("/install", data=ADMIN)
        client.post("/settings/night-window", data={"start": "22:00", "end": "06:00"}, headers=SAME_ORIGIN)
        client.post("/settings/provider", data={"provider_id": "2"}, headers=SAME_ORIGIN)  # Heures creuses
        store(conn, day_points())
        store(conn, [(T, 100.0), (T + 100, 300.0)], sensor="house")  # 20000 J imported, never exports
        compress(database_url)
        sensors = client.get("/api/v2/sensors").json()
        assert [(s["key"], s["exports"]) for s in sensors] == [("solar", True), ("house", False)]

        day = client.get("/api/v2/energy", params={"sensor": "1", "start": "2026-01-15", "count": 2}).json()
        first, second = day["buckets"]
        kwh = 1 / 3_600_000  # per joule
        assert (first["import_kwh"], first["export_kwh"], first["net_kwh"]) == pytest.approx(
            (25_000 * kwh, 45_000 * kwh, -20_000 * kwh), abs=1e-12
        )
        # The fields that were there keep their meaning: net energy per tariff, priced as such
        # (Heures creuses: 0.2065 EUR/kWh by day, 0.1579 at night).
        assert (first["kwh"], first["day_kwh"], first["night_kwh"]) == pytest.approx(
            (-20_000 * kwh, -40_000 * kwh, 20_000 * kwh), abs=1e-12
        )
        # Euros are what the energy cost at the tariff in force that day (the household's tariff
        # is still the seeded Base: the legacy provider route does not choose it; its version of
        # 2025-08-01 is 0.1952 EUR/kWh, with no export credit): the 25 000 J imported.
        assert first["euros"] == pytest.approx(25_000 * kwh * 0.1952)
        assert second["import_kwh"] is None and second["net_kwh"] is None
        assert (day["total_import_kwh"], day["total_export_kwh"], day["total_net_kwh"]) == pytest.approx(
            (25_000 * kwh, 45_000 * kwh, -20_000 * kwh), abs=1e-12
        )
        # By the hour: 05:00-06:00 local is [T-3600, T), 06:00-07:00 is [T, T+3600) (rollups).
        hours = client.get(
            "/api/v2/energy", params={"sensor": "1", "start": "2026-01-15", "bucket": "hour", "count": 8}
        ).json()["buckets"]
        assert (hours[5]["import_kwh"], hours[5]["export_kwh"]) == pytest.approx((22_500 * kwh, 2_500 * kwh))
        assert (hours[6]["import_kwh"], hours[6]["export_kwh"]) == pytest.approx((2_500 * kwh, 42_500 * kwh))
        # Both sensors: the house's import adds to the solar sensor's.
        both = client.get("/api/v2/energy", params={"sensor": "all", "start": "2026-01-15"}).json()
        assert (both["total_import_kwh"], both["total_export_kwh"], both["total_net_kwh"]) == pytest.approx(
            (45_000 * kwh, 45_000 * kwh, 0), abs=1e-12
        )
        # The legacy API is unchanged: net energy, as the original.
        legacy = client.get(f"/api/1/get/kwatthours/by_time/{T - 3600}/{T + 3600}").json()["data"]
        assert legacy["value"] == pytest.approx(-20_000 * kwh, abs=1e-12)


@pytest.mark.backends("plain")
def test_a_sensor_found_exporting_during_the_raw_pass_is_summed_again(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    from citizenwatt_api import queries, raw_energy

    store(db, day_points())
    # As if the first negative reading was committed between the flag's first reading (unset) and
    # the statement: the flag read after it is set, so the cells come from the export sums.
    first_read = raw_energy._EXPORTS_AND_CHUNKS.replace("SELECT exports,", "SELECT false,")
    assert first_read != raw_energy._EXPORTS_AND_CHUNKS
    monkeypatch.setattr(raw_energy, "_EXPORTS_AND_CHUNKS", first_read)
    # [T+90, T+210), every part negative, so none of it is export without the export sums. Worked
    # out by hand from TRACE (linear between readings): T+90..T+100 on the segment 100 -> -300 W
    # over T-100..T+100 (-280 to -300 W): 2 900 J; T+100..T+200, -300 -> -100 W: 20 000 J;
    # T+200..T+210 on -100 -> 100 W (-100 to -80 W): 900 J. Each part lies within the interval
    # or crosses one of its edges, so it is summed in SQL, not cut in Python.
    (cell,) = queries.energy_in_intervals(db, 1, [(T + 90.0, T + 210.0)], 300.0)
    assert (cell.import_wh, cell.export_wh, cell.total_wh) == pytest.approx((0, 23_800 * J, -23_800 * J), abs=1e-12)
