"""The aggregator end to end: real Mosquitto, real PostgreSQL, services as real processes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.conftest import Backend
from tests.services import MqttObserver, ServiceProcess, count_rows, service, wait_for_exit, wait_until
from tests.test_faults import assert_late_readings_in_compressed_chunks, compress_while_flowing
from tools.localstack import LocalMosquitto


def env_for(broker: LocalMosquitto, database_url: str, **extra: str) -> dict[str, str]:
    return {"CW_MQTT_URL": broker.url, "CW_DATABASE_URL": database_url, "CW_HEALTH_PORT": "0", **extra}


def reading(sensor: str, ts: float, power: float, seq: int | None = None) -> bytes:
    body: dict[str, object] = {"v": 1, "sensor": sensor, "kind": "simulator", "ts": ts, "power": power}
    if seq is not None:
        body["seq"] = seq
    return json.dumps(body).encode()


def reached(database_url: str, target: int) -> bool:
    return count_rows(database_url) >= target


def wait_for_aggregator(observer: MqttObserver) -> None:
    observer.wait_for(lambda ms: ("citizenwatt/_services/aggregator/status", b"online") in [(t, p) for t, p, _ in ms])


def stop_and_read_seqs(
    simulator: ServiceProcess, observer: MqttObserver, database_url: str
) -> tuple[set[int], list[int]]:
    """Stop the simulator (sensor "fast"), wait until as many readings are stored as it
    published, and return the published seqs and the stored ones in time order."""
    assert simulator.stop() == 0
    published = {json.loads(p)["seq"] for t, p, _ in observer.messages if t == "citizenwatt/fast/reading"}
    wait_until(
        lambda: count_rows(database_url) == len(published), timeout=60, message=f"{len(published)} readings stored"
    )
    with psycopg.connect(database_url) as conn:
        seqs = [int(str(r[0])) for r in conn.execute("SELECT seq FROM readings ORDER BY ts").fetchall()]
    return published, seqs


def assert_each_stored_once(published: set[int], seqs: list[int]) -> None:
    assert set(seqs) == published
    assert len(seqs) == len(set(seqs))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap in the simulator's sequence


@pytest.fixture
def observer(mosquitto: LocalMosquitto) -> Iterator[MqttObserver]:
    obs = MqttObserver(mosquitto.url, "#")
    yield obs
    obs.close()


def test_simulated_readings_reach_the_database_and_the_state_topic(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, observer: MqttObserver
) -> None:
    env = env_for(mosquitto, database_url, CW_SENSOR_ID="house", CW_PERIOD_SECONDS="0.1")
    with service("citizenwatt_aggregator", env, tmp_path / "agg.log"):
        # On a brand-new broker nobody keeps readings until the aggregator has subscribed once.
        wait_for_aggregator(observer)
        sim = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
        wait_until(lambda: count_rows(database_url) >= 20, message="20 stored readings")
        assert sim.stop() == 0
    observer.wait_for(lambda ms: ("citizenwatt/house/status", b"offline", False) in ms)
    published = {json.loads(p)["seq"] for t, p, _ in observer.messages if t == "citizenwatt/house/reading"}
    with psycopg.connect(database_url) as conn:
        stored = {int(str(r[0])) for r in conn.execute("SELECT seq FROM readings").fetchall()}
        sensor = conn.execute("SELECT key, name, kind FROM sensors").fetchall()
    assert sensor == [("house", "house", "simulator")]
    assert stored == published
    states = [json.loads(p) for t, p, _ in observer.messages if t == "citizenwatt/house/state"]
    assert states and states[-1]["energy_kwh"] > 0
    assert all(a["energy_kwh"] <= b["energy_kwh"] for a, b in itertools.pairwise(states))
    discovery = {t: json.loads(p) for t, p, retained in observer.messages if t.startswith("homeassistant/")}
    energy = discovery["homeassistant/sensor/citizenwatt_house/energy/config"]
    assert (energy["state_topic"], energy["state_class"], energy["unit_of_measurement"]) == (
        "citizenwatt/house/state",
        "total_increasing",
        "kWh",
    )


def test_a_malformed_payload_is_kept_aside_and_the_next_reading_stored(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, observer: MqttObserver
) -> None:
    now = time.time()
    with service("citizenwatt_aggregator", env_for(mosquitto, database_url), tmp_path / "agg.log") as agg:
        wait_for_aggregator(observer)
        observer.publish("citizenwatt/kitchen/reading", b'{"v": 1, "sensor": "kitchen", "power": "lots"}')
        observer.publish("citizenwatt/kitchen/reading", b"\x00\xff")
        observer.publish("citizenwatt/kitchen/reading", reading("kitchen", now, 250.0))
        wait_until(lambda: count_rows(database_url) == 1, message="the good reading stored")
        wait_until(lambda: count_rows(database_url, "SELECT count(*) FROM rejected_messages") == 2)
        assert agg.running
    with psycopg.connect(database_url) as conn:
        reasons = [r[0] for r in conn.execute("SELECT reason FROM rejected_messages ORDER BY id").fetchall()]
        power = conn.execute("SELECT power FROM readings").fetchone()
    assert "power" in reasons[0] and "ts" in reasons[0]
    assert "not UTF-8" in reasons[1]
    assert power == (250.0,)
    assert "rejected message on citizenwatt/kitchen/reading" in agg.log()


def test_a_redelivered_reading_is_stored_once(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, observer: MqttObserver
) -> None:
    now = time.time()
    with service("citizenwatt_aggregator", env_for(mosquitto, database_url), tmp_path / "agg.log"):
        wait_for_aggregator(observer)
        for _ in range(3):
            observer.publish("citizenwatt/hall/reading", reading("hall", now, 40.0))
        observer.publish("citizenwatt/hall/reading", reading("hall", now + 8, 60.0))
        wait_until(lambda: count_rows(database_url) == 2, message="two distinct readings")
        # The fourth message was handled after the three copies: everything is in by now.
        observer.wait_for(
            lambda ms: any(t == "citizenwatt/hall/state" and json.loads(p)["power"] == 60.0 for t, p, _ in ms)
        )
    assert count_rows(database_url) == 2


def test_readings_published_while_the_aggregator_is_down_are_stored(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, observer: MqttObserver
) -> None:
    env = env_for(mosquitto, database_url)
    with service("citizenwatt_aggregator", env, tmp_path / "agg.log"):
        wait_for_aggregator(observer)
    # Stopped: its persistent session keeps collecting for it.
    now = time.time()
    for i in range(50):
        observer.publish("citizenwatt/attic/reading", reading("attic", now + i, 100.0 + i))
    with service("citizenwatt_aggregator", env, tmp_path / "agg2.log"):
        wait_until(lambda: count_rows(database_url) == 50, message="all 50 readings stored")


# On TimescaleDB every chunk is compressed before each kill: the batch redelivered to the next
# aggregator meets compressed readings (tests/test_faults.py checks they land in a compressed chunk).
@pytest.mark.backends("plain", "timescaledb-compressed")
def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(
    mosquitto: LocalMosquitto,
    database_url: str,
    tmp_path: Path,
    observer: MqttObserver,
    backend: Backend,
) -> None:
    env = env_for(mosquitto, database_url, CW_SENSOR_ID="fast", CW_PERIOD_SECONDS="0.1")
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    wait_for_aggregator(observer)
    simulator = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
    try:
        for round_number in range(3):
            target = count_rows(database_url) + 30
            wait_until(partial(reached, database_url, target), message=f"progress in round {round_number}")
            compress_while_flowing(backend, database_url)
            (writer,) = aggregator.children()
            aggregator.kill()
            # Its writer process (writer.py) does not outlive it, holding a connection.
            wait_for_exit(writer, timeout=30)
            aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
        wait_until(lambda: count_rows(database_url) >= target + 30, message="progress after the last restart")
        published, seqs = stop_and_read_seqs(simulator, observer, database_url)
    finally:
        if simulator.running:
            simulator.kill()
        aggregator.stop()
    lost = len(published) - len(seqs)
    print(f"\nFAULT aggregator SIGKILLed 3x: published {len(published)}, stored {len(seqs)}, lost {lost}")
    assert_each_stored_once(published, seqs)
    assert_late_readings_in_compressed_chunks(backend, database_url)


def test_a_killed_writer_stops_the_aggregator_and_loses_nothing(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, observer: MqttObserver
) -> None:
    """The database writer process SIGKILLed mid-stream (as the OOM killer would): the aggregator
    says so and exits with an error, and the next run stores what it had not acknowledged."""
    env = env_for(mosquitto, database_url, CW_SENSOR_ID="fast", CW_PERIOD_SECONDS="0.1")
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    wait_for_aggregator(observer)
    simulator = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
    try:
        wait_until(partial(reached, database_url, 30), message="readings stored")
        (writer,) = aggregator.children()
        os.kill(writer, signal.SIGKILL)
        assert aggregator.process is not None
        assert aggregator.process.wait(timeout=60) == 1
        assert f"the database writer process (pid {writer}) is gone" in aggregator.log()
        aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
        stored = count_rows(database_url)
        wait_until(partial(reached, database_url, stored + 30), message="progress after the restart")
        published, seqs = stop_and_read_seqs(simulator, observer, database_url)
    finally:
        if simulator.running:
            simulator.kill()
        aggregator.stop()
    assert_each_stored_once(published, seqs)


def test_a_writer_killed_while_nothing_comes_stops_the_aggregator(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, observer: MqttObserver
) -> None:
    """Noticed without waiting for a batch: the aggregator does not sit there reporting healthy."""
    aggregator = ServiceProcess("citizenwatt_aggregator", env_for(mosquitto, database_url), tmp_path / "agg.log")
    aggregator.start()
    try:
        wait_for_aggregator(observer)
        (writer,) = aggregator.children()
        os.kill(writer, signal.SIGKILL)
        assert aggregator.process is not None
        assert aggregator.process.wait(timeout=30) == 1
    finally:
        aggregator.stop()
    assert f"the database writer process (pid {writer}) is gone, exit code -9" in aggregator.log()


def test_the_aggregator_closes_the_past_days_at_start(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, observer: MqttObserver
) -> None:
    # An hour at 100 W, at noon three days ago (Paris): the aggregator that stores it has closed
    # the days at its start, before it; the next one closes that day (store.close_days): 100 Wh.
    zone = ZoneInfo("Europe/Paris")
    day = (datetime.now(zone) - timedelta(days=3)).date()
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=zone).timestamp()
    env = env_for(mosquitto, database_url, CW_TIMEZONE="Europe/Paris")
    with service("citizenwatt_aggregator", env, tmp_path / "agg.log"):
        wait_for_aggregator(observer)
        for i in range(61):
            observer.publish("citizenwatt/garage/reading", reading("garage", noon + 60 * i, 100.0))
        wait_until(lambda: count_rows(database_url) == 61, message="the hour stored")
    assert count_rows(database_url, "SELECT count(*) FROM energy_rollups_daily") == 0
    with service("citizenwatt_aggregator", env, tmp_path / "agg2.log"):
        wait_until(
            lambda: count_rows(database_url, "SELECT count(*) FROM energy_rollups_daily") == 1,
            message="the day closed",
        )
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM bucket), day_wh + night_wh, day_seconds + night_seconds"
            " FROM energy_rollups_daily"
        ).fetchone()
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
    assert row is not None
    assert (float(str(row[0])), float(str(row[1])), float(str(row[2]))) == pytest.approx((midnight, 100.0, 3600.0))
