"""Faults with real processes: every test ends by counting stored rows against published ones."""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from citizenwatt_common.collector.outbox import newest_seq_in
from tests.conftest import Backend
from tests.services import MqttObserver, ServiceProcess, count_rows, wait_until
from tools.localstack import LocalMosquitto, LocalPostgres, free_port


@pytest.fixture
def own_postgres(tmp_path: Path, backend: Backend) -> Iterator[LocalPostgres]:
    """A PostgreSQL server of this test's own (on the test's backend), since the test stops it."""
    server = backend.server(tmp_path / "pg")
    server.start()
    yield server
    server.stop("immediate")


def report(name: str, published: int, stored: int) -> None:
    """One line per fault for the README's table (run `pytest -s tests/test_faults.py` to see them)."""
    print(f"\nFAULT {name}: published {published}, stored {stored}, lost {published - stored}")


def health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def published_seqs(observer: MqttObserver, sensor: str) -> set[int]:
    return {json.loads(p)["seq"] for t, p, _ in observer.messages if t == f"citizenwatt/{sensor}/reading"}


def stored_seqs(database_url: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        return [int(str(r[0])) for r in conn.execute("SELECT seq FROM readings").fetchall()]


def test_database_down_for_30_seconds(
    request: pytest.FixtureRequest, mosquitto: LocalMosquitto, own_postgres: LocalPostgres, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "CW_MQTT_URL": mosquitto.url,
        "CW_DATABASE_URL": own_postgres.url,
        "CW_HEALTH_PORT": str(port),
        "CW_SENSOR_ID": "pgdown",
        "CW_PERIOD_SECONDS": "0.1",
    }
    observer = MqttObserver(mosquitto.url, "citizenwatt/#")
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    simulator = None
    try:
        wait_until(lambda: health(port) == 200, message="aggregator healthy")
        simulator = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
        wait_until(lambda: count_rows(own_postgres.url) >= 20, message="readings flowing")
        own_postgres.stop("fast")
        wait_until(lambda: health(port) == 503, message="aggregator reporting unhealthy")
        # Thirty seconds of outage, measured on the readings published meanwhile (10 per second).
        before = len(published_seqs(observer, "pgdown"))
        observer.wait_for(lambda ms: len(published_seqs(observer, "pgdown")) >= before + 300, timeout=60)
        assert aggregator.running
        own_postgres.start()
        wait_until(lambda: health(port) == 200, timeout=60, message="aggregator healthy again")
        assert simulator.stop() == 0
        published = published_seqs(observer, "pgdown")
        wait_until(lambda: count_rows(own_postgres.url) == len(published), timeout=60, message="all stored")
        assert set(stored_seqs(own_postgres.url)) == published
        report(request.node.name, len(published), len(stored_seqs(own_postgres.url)))
    finally:
        if simulator and simulator.running:
            simulator.kill()
        aggregator.stop()
        observer.close()


def test_broker_restarted_with_sigterm_mid_stream(
    request: pytest.FixtureRequest, mosquitto: LocalMosquitto, database_url: str, tmp_path: Path
) -> None:
    env = {
        "CW_MQTT_URL": mosquitto.url,
        "CW_DATABASE_URL": database_url,
        "CW_HEALTH_PORT": "0",
        "CW_SENSOR_ID": "brokerbounce",
        "CW_PERIOD_SECONDS": "0.1",
    }
    observer = MqttObserver(mosquitto.url, "citizenwatt/_services/#", client_id="status-watch")
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    simulator = None
    try:
        observer.wait_for(lambda ms: any(p == b"online" for _, p, _ in ms))
        observer.close()
        simulator = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
        wait_until(lambda: count_rows(database_url) >= 30, message="readings flowing")
        mosquitto.stop()  # SIGTERM: the broker saves its sessions and queues
        mosquitto.start()
        first = count_rows(database_url)
        wait_until(lambda: count_rows(database_url) >= first + 30, timeout=90, message="flowing again")
        assert simulator.stop() == 0
    finally:
        if simulator and simulator.running:
            simulator.kill()
    # The collector's own log says which seqs it produced: every one must be stored, once.
    match = re.search(r"seq (\d+)\.\.(\d+) produced", (tmp_path / "sim.log").read_text())
    assert match, "simulator did not log what it produced"
    produced = set(range(int(match.group(1)), int(match.group(2)) + 1))
    wait_until(lambda: count_rows(database_url) >= len(produced), timeout=60, message=f"{len(produced)} stored")
    aggregator.stop()
    seqs = stored_seqs(database_url)
    assert set(seqs) == produced
    report(request.node.name, len(produced), len(seqs))
    assert len(seqs) == len(produced)


def outbox_size(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


def produced_seqs(log_text: str) -> set[int]:
    produced: set[int] = set()
    for first, last in re.findall(r"seq (\d+)\.\.(\d+) produced", log_text):
        produced |= set(range(int(first), int(last) + 1))
    return produced


def test_broker_sigkill_and_collector_restart_lose_nothing(
    request: pytest.FixtureRequest, mosquitto: LocalMosquitto, database_url: str, tmp_path: Path
) -> None:
    """A SIGKILLed broker forgets what it acknowledged since its last snapshot; the outbox covers it."""
    outbox = tmp_path / "outbox.sqlite"
    env = {
        "CW_MQTT_URL": mosquitto.url,
        "CW_DATABASE_URL": database_url,
        "CW_HEALTH_PORT": "0",
        "CW_SENSOR_ID": "brokerkill",
        "CW_PERIOD_SECONDS": "0.1",
        "CW_OUTBOX_PATH": str(outbox),
    }
    watcher = MqttObserver(mosquitto.url, "citizenwatt/_services/#", client_id="status-watch")
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    simulator = None
    try:
        watcher.wait_for(lambda ms: any(p == b"online" for _, p, _ in ms))
        watcher.close()
        simulator = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
        wait_until(lambda: count_rows(database_url) >= 30, message="readings flowing")
        mosquitto.kill()
        wait_until(lambda: outbox_size(outbox) >= 20, message="readings piling up in the outbox")
        # The collector dies too while the broker is away; what it produced is in its outbox on disk.
        simulator.kill()
        last_of_first_run = newest_seq_in(outbox)
        assert last_of_first_run is not None
        simulator = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
        mosquitto.start()
        first = count_rows(database_url)
        wait_until(lambda: count_rows(database_url) >= first + 50, timeout=120, message="flowing again")
        assert simulator.stop() == 0
        second_run = produced_seqs((tmp_path / "sim.log").read_text())
        assert second_run, "the second run did not log what it produced"
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT min(seq) FROM readings").fetchone()
        assert row is not None
        first_run = set(range(int(str(row[0])), last_of_first_run + 1))
        expected = first_run | second_run
        wait_until(
            lambda: set(stored_seqs(database_url)) >= expected, timeout=120, message=f"{len(expected)} readings stored"
        )
    finally:
        if simulator and simulator.running:
            simulator.kill()
        aggregator.stop()
    stored = stored_seqs(database_url)
    assert len(stored) == len(set(stored))
    assert set(stored) == expected
    report(request.node.name, len(expected), len(stored))


def test_read_only_database_is_an_error_not_a_crash(
    request: pytest.FixtureRequest, mosquitto: LocalMosquitto, own_postgres: LocalPostgres, tmp_path: Path
) -> None:
    """What a full disk looks like to a client (writes refused): reported, retried, recovered."""
    port = free_port()
    env = {
        "CW_MQTT_URL": mosquitto.url,
        "CW_DATABASE_URL": own_postgres.url,
        "CW_HEALTH_PORT": str(port),
        "CW_SENSOR_ID": "readonly",
        "CW_PERIOD_SECONDS": "0.1",
    }
    observer = MqttObserver(mosquitto.url, "citizenwatt/#")
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    simulator = None

    def set_read_only(on: bool) -> None:
        with psycopg.connect(own_postgres.url, autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET default_transaction_read_only = {'on' if on else 'off'}")
            conn.execute("SELECT pg_reload_conf()")

    try:
        wait_until(lambda: health(port) == 200, message="aggregator healthy")
        simulator = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
        wait_until(lambda: count_rows(own_postgres.url) >= 20, message="readings flowing")
        set_read_only(True)
        wait_until(lambda: health(port) == 503, message="aggregator reporting unhealthy")
        before = len(published_seqs(observer, "readonly"))
        observer.wait_for(lambda ms: len(published_seqs(observer, "readonly")) >= before + 50)
        assert aggregator.running
        set_read_only(False)
        wait_until(lambda: health(port) == 200, timeout=60, message="healthy again")
        assert simulator.stop() == 0
        published = published_seqs(observer, "readonly")
        wait_until(lambda: count_rows(own_postgres.url) == len(published), timeout=60, message="all stored")
        assert set(stored_seqs(own_postgres.url)) == published
        report(request.node.name, len(published), len(stored_seqs(own_postgres.url)))
    finally:
        if simulator and simulator.running:
            simulator.kill()
        aggregator.stop()
        observer.close()
    log = (tmp_path / "agg.log").read_text()
    assert log.count("database unavailable") == 1  # one clear line per outage, not one per retry
    assert "read-only transaction" in log


def test_broker_unreachable_for_60_seconds_under_a_running_collector(
    request: pytest.FixtureRequest, mosquitto: LocalMosquitto, database_url: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    env = {
        "CW_MQTT_URL": mosquitto.url,
        "CW_DATABASE_URL": database_url,
        "CW_HEALTH_PORT": "0",
        "CW_SENSOR_ID": "away",
        "CW_PERIOD_SECONDS": "0.1",
        "CW_OUTBOX_PATH": str(outbox),
    }
    watcher = MqttObserver(mosquitto.url, "citizenwatt/_services/#", client_id="status-watch")
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    simulator = None
    try:
        watcher.wait_for(lambda ms: any(p == b"online" for _, p, _ in ms))
        watcher.close()
        simulator = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
        wait_until(lambda: count_rows(database_url) >= 20, message="readings flowing")
        mosquitto.stop()
        # Sixty seconds without a broker, counted in readings piling up at 10 per second.
        wait_until(lambda: outbox_size(outbox) >= 600, timeout=120, message="a minute of readings in the outbox")
        mosquitto.start()
        first = count_rows(database_url)
        wait_until(lambda: count_rows(database_url) >= first + 600, timeout=120, message="the backlog delivered")
        assert simulator.stop() == 0
        produced = produced_seqs((tmp_path / "sim.log").read_text())
        wait_until(lambda: set(stored_seqs(database_url)) >= produced, timeout=60, message="everything stored")
    finally:
        if simulator and simulator.running:
            simulator.kill()
        aggregator.stop()
    with psycopg.connect(database_url) as conn:
        by_arrival = [int(str(r[0])) for r in conn.execute("SELECT seq FROM readings ORDER BY id").fetchall()]
    assert set(by_arrival) == produced and len(by_arrival) == len(produced)
    report(request.node.name, len(produced), len(by_arrival))
    assert by_arrival == sorted(by_arrival)  # delivered and stored in the order they were measured
