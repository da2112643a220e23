"""Faults with real processes: every test ends by counting stored rows against published ones."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.services import MqttObserver, ServiceProcess, count_rows, wait_until
from tools.localstack import LocalMosquitto, LocalPostgres, free_port


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[LocalPostgres]:
    """A PostgreSQL server of this test's own, since the test stops it."""
    server = LocalPostgres(tmp_path / "pg")
    server.start()
    yield server
    server.stop("immediate")


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


def test_database_down_for_30_seconds(mosquitto: LocalMosquitto, own_postgres: LocalPostgres, tmp_path: Path) -> None:
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
    finally:
        if simulator and simulator.running:
            simulator.kill()
        aggregator.stop()
        observer.close()


def test_broker_restarted_with_sigterm_mid_stream(mosquitto: LocalMosquitto, database_url: str, tmp_path: Path) -> None:
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
    assert len(seqs) == len(produced)
