"""The simulator's first-start history, through the real path: simulator -> Mosquitto -> aggregator -> PostgreSQL.

A backfill of one day at one reading per 240 s is 361 readings on the 240-s grid of Unix time
(the live readings, stamped with the clock, are never on it), so the tests can tell the two apart
and check every backfilled reading against the seeded household the simulator steps through.
"""

from __future__ import annotations

import itertools
import json
import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient

from citizenwatt_api.app import create_app
from citizenwatt_api.settings import ApiSettings
from citizenwatt_simulator.backfill import marker_path
from citizenwatt_simulator.household import SimulatedHousehold
from tests.services import MqttObserver, ServiceProcess, aggregator_online, count_rows, service, wait_until
from tools.localstack import LocalMosquitto

pytestmark = pytest.mark.backends("plain")  # the subject is the collector, not storage

PERIOD = 240
GRID = f"extract(epoch FROM ts) % {PERIOD} = 0"
SEED = 7


def simulator_env(mosquitto: LocalMosquitto, tmp_path: Path, days: float, period: float) -> dict[str, str]:
    return {
        "CW_MQTT_URL": mosquitto.url,
        "CW_SENSOR_ID": "house",
        "CW_OUTBOX_PATH": str(tmp_path / "outbox"),
        "CW_BACKFILL_DAYS": str(days),
        "CW_BACKFILL_PERIOD_SECONDS": str(period),
        "CW_PERIOD_SECONDS": "3600",  # one live reading per start: it is what the tests wait for
        "CW_SEED": str(SEED),
        "CW_TIMEZONE": "Europe/Paris",
    }


def rows(database_url: str, where: str) -> list[tuple[float, float, float | None, float | None]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = conn.execute(
            f"SELECT extract(epoch FROM ts)::float8, power, voltage, current FROM readings WHERE {where} ORDER BY ts"
        ).fetchall()
    return [(float(r[0]), float(r[1]), r[2], r[3]) for r in found]


@pytest.fixture
def aggregator(mosquitto: LocalMosquitto, database_url: str, tmp_path: Path) -> Iterator[MqttObserver]:
    with aggregator_online(mosquitto.url, database_url, tmp_path / "aggregator.log") as observer:
        yield observer


def test_a_first_start_publishes_a_day_of_history_once(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, aggregator: MqttObserver
) -> None:
    env = simulator_env(mosquitto, tmp_path, days=1, period=PERIOD)
    before = time.time()
    with service("citizenwatt_simulator", env, tmp_path / "simulator.log") as simulator:
        # The live reading comes after the whole backfill is confirmed stored.
        wait_until(
            lambda: count_rows(database_url, f"SELECT count(*) FROM readings WHERE NOT {GRID}") >= 1,
            timeout=120,
            message="the first live reading stored",
        )
    history = rows(database_url, GRID)
    ((live_ts, *_),) = rows(database_url, f"NOT {GRID}")
    stamps = [ts for ts, *_ in history]
    # One day before the start, on the grid; then every 240 s without a hole, up to the present.
    first_expected = math.floor(before / PERIOD) * PERIOD - 86_400
    assert stamps[0] in (first_expected, first_expected + PERIOD)
    assert stamps == [stamps[0] + k * PERIOD for k in range(len(stamps))]
    # 360 readings for the day before the start's grid point, that grid point itself (in the past
    # by the time it is published), and one more if the clock passed the next one meanwhile.
    assert len(stamps) in (361, 362)
    assert f"simulated history published ({len(stamps)} readings" in simulator.log()
    # The live reading follows within the aggregator's gap limit (300 s): no energy lost between.
    assert 0 < live_ts - stamps[-1] < 300
    # Each backfilled reading is the seeded household's power at that time, with its voltage/current.
    house = SimulatedHousehold(seed=SEED, zone=ZoneInfo("Europe/Paris"))
    expected = [(ts, house.power_at(ts)) for ts in stamps]
    assert [(ts, p) for ts, p, _, _ in history] == expected
    assert all(v == 230.0 and c == round(p / 230.0, 3) for _, p, v, c in history)
    assert all(50 < p < 10_000 for _, p, _, _ in history)  # at least standby, never absurd
    # Energy: the trapezoids of the whole chain, grid and live reading, all counted in the rollups.
    chain = [(ts, p) for ts, p, _, _ in rows(database_url, "true")]
    trapezoids_wh = sum((p0 + p1) / 2 * (t1 - t0) for (t0, p0), (t1, p1) in itertools.pairwise(chain)) / 3600
    rollup_wh = count_rows_float(database_url, "SELECT sum(day_wh + night_wh) FROM energy_rollups")
    assert rollup_wh == pytest.approx(trapezoids_wh, rel=1e-9)
    marker = json.loads(marker_path(env["CW_OUTBOX_PATH"]).read_text())
    assert marker["done"] is True and marker["first"] == stamps[0]

    # A second start finds the marker: straight to live readings, no second history.
    with service("citizenwatt_simulator", env, tmp_path / "simulator-2.log") as again:
        wait_until(
            lambda: count_rows(database_url, f"SELECT count(*) FROM readings WHERE NOT {GRID}") >= 2,
            timeout=60,
            message="the second start's live reading stored",
        )
    assert "already published" in again.log()
    assert rows(database_url, GRID) == history

    # Marked as simulated where a user looks: the sensor's kind, and the modern API's flag.
    settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
    with TestClient(create_app(settings)) as client:
        client.post("/install", data={"login": "admin", "password": "correct horse battery"})
        (sensor,) = client.get("/api/v2/sensors").json()
    assert (sensor["key"], sensor["kind"], sensor["simulated"]) == ("house", "simulator", True)


def count_rows_float(database_url: str, sql: str) -> float:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None and row[0] is not None
    return float(row[0])


def test_a_backfill_stopped_midway_resumes_where_it_was(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, aggregator: MqttObserver
) -> None:
    # 6 days at 60 s: 8 640 readings, several windows of 1 000; stopped after the first window.
    env = simulator_env(mosquitto, tmp_path, days=6, period=60)
    marker = marker_path(env["CW_OUTBOX_PATH"])

    def progressed() -> bool:
        try:
            state = json.loads(marker.read_text())
        except (FileNotFoundError, ValueError):
            return False
        return bool(state["next"] > state["first"])

    first = ServiceProcess("citizenwatt_simulator", env, tmp_path / "simulator.log").start()
    try:
        wait_until(progressed, timeout=120, message="a backfill window confirmed")
    finally:
        assert first.stop(signal.SIGTERM) == 0
    stopped_at = count_rows(database_url)
    state = json.loads(marker.read_text())
    assert state["done"] is False and stopped_at < 8640
    with service("citizenwatt_simulator", env, tmp_path / "simulator-2.log") as second:
        wait_until(
            lambda: (
                count_rows(database_url, "SELECT count(*) FROM readings WHERE extract(epoch FROM ts) % 60 <> 0") >= 1
            ),
            timeout=180,
            message="the live reading after the resumed backfill",
        )
    assert "resuming the simulated history" in second.log()
    stamps = [ts for ts, *_ in rows(database_url, "extract(epoch FROM ts) % 60 = 0")]
    # No hole and no repeat from the first reading to the present.
    assert stamps[0] == state["first"]
    assert stamps == [stamps[0] + k * 60 for k in range(len(stamps))]
    assert len(stamps) >= 8640
    assert json.loads(marker.read_text())["done"] is True


def test_no_history_under_a_simulator_that_ran_before(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, aggregator: MqttObserver
) -> None:
    """Backfill turned on where a simulator already published (its outbox is there): its own live
    history stays alone, rather than get a second, different trace woven into it."""
    env = simulator_env(mosquitto, tmp_path, days=1, period=PERIOD)
    Path(f"{env['CW_OUTBOX_PATH']}.0").touch()  # what any earlier run leaves, even with nothing unsent
    with service("citizenwatt_simulator", env, tmp_path / "simulator.log") as simulator:
        wait_until(lambda: count_rows(database_url) >= 1, timeout=60, message="the live reading stored")
    assert "not a first start" in simulator.log()
    assert rows(database_url, GRID) == []
    assert json.loads(marker_path(env["CW_OUTBOX_PATH"]).read_text())["done"] is True
