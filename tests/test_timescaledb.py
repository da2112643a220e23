"""Storage modes on real servers: plain PostgreSQL, TimescaleDB 2.28.3, and TimescaleDB installed
but not preloaded (what a misconfigured Pi looks like); the compression policy; deletes that must
decompress more rows than TimescaleDB allows a statement by default."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient

from citizenwatt_api.app import create_app
from citizenwatt_api.settings import ApiSettings
from citizenwatt_common.contract import Reading
from citizenwatt_common.schema import StorageError, migrate
from citizenwatt_common.store import load_household, store_readings
from tests.conftest import TEMPLATE_COMPRESS_AFTER_DAYS, Backend, compress_all_chunks
from tests.services import MqttObserver, ServiceProcess, count_rows, wait_until
from tools.localstack import LocalMosquitto, LocalPostgres, free_port

PARIS = ZoneInfo("Europe/Paris")
SCHEMA_LOGGER = "citizenwatt_common.schema"
TIMESCALEDB_LINE = (
    f"storage: TimescaleDB 2.28.3 hypertable (7-day chunks), compression after {TEMPLATE_COMPRESS_AFTER_DAYS} days"
)
NOT_PRELOADED = "the timescaledb extension is installed but not in shared_preload_libraries"

only_timescaledb = pytest.mark.backends("timescaledb")


def storage_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.getMessage().startswith("storage:")]


def store(conn: psycopg.Connection[Any], points: list[tuple[float, float]], sensor: str = "meter") -> int:
    with conn.transaction():
        readings = [Reading(sensor=sensor, kind="simulator", ts=ts, power=p) for ts, p in points]
        return store_readings(conn, readings, load_household(conn), PARIS).inserted


def healthy(port: int) -> dict[str, Any] | None:
    """The aggregator's /healthz JSON once it answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return dict(json.loads(response.read()))
    except (urllib.error.HTTPError, OSError):
        return None


def test_the_storage_mode_is_logged_once_at_start(
    backend: Backend, db: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SCHEMA_LOGGER)
    mode = migrate(db, 300.0, compress_after_days=TEMPLATE_COMPRESS_AFTER_DAYS)
    if backend.timescaledb:
        assert storage_lines(caplog) == [(logging.INFO, TIMESCALEDB_LINE)]
        assert (mode.timescaledb, mode.compress_after_days) == ("2.28.3", TEMPLATE_COMPRESS_AFTER_DAYS)
        row = db.execute("SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables")
        assert row.fetchall() == [("readings", True)]
    else:
        # Debian's PostgreSQL has no TimescaleDB at all: a choice, not a problem.
        line = "storage: plain PostgreSQL tables (the timescaledb extension is not installed on the server)"
        assert storage_lines(caplog) == [(logging.INFO, line)]
        assert mode.timescaledb is None


@only_timescaledb
def test_the_compression_policy_follows_the_setting_and_survives_restarts(
    db: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    def policies() -> list[tuple[int, str]]:
        rows = db.execute(
            "SELECT job_id, config->>'compress_after' FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_compression'"
        ).fetchall()
        return [(int(job), str(after)) for job, after in rows]

    ((template_job, after),) = policies()
    assert after == f"{TEMPLATE_COMPRESS_AFTER_DAYS} days"
    # A restart with the same setting touches nothing; the api (no setting) neither.
    assert migrate(db, 300.0, TEMPLATE_COMPRESS_AFTER_DAYS).compress_after_days == TEMPLATE_COMPRESS_AFTER_DAYS
    assert migrate(db, 300.0, None).compress_after_days == TEMPLATE_COMPRESS_AFTER_DAYS
    assert policies() == [(template_job, f"{TEMPLATE_COMPRESS_AFTER_DAYS} days")]
    # A new setting replaces the policy, once.
    caplog.set_level(logging.INFO, logger=SCHEMA_LOGGER)
    assert migrate(db, 300.0, 10).describe().endswith("compression after 10 days")
    assert migrate(db, 300.0, 10).compress_after_days == 10
    ((job, after),) = policies()
    assert after == "10 days" and job != template_job
    ten_days = TIMESCALEDB_LINE.replace(f"after {TEMPLATE_COMPRESS_AFTER_DAYS} days", "after 10 days")
    assert [m for _, m in storage_lines(caplog)] == [ten_days, ten_days]
    # 0: no policy at all (chunks compressed so far stay so).
    mode = migrate(db, 300.0, 0)
    assert mode.compress_after_days is None and mode.describe().endswith("no compression policy")
    assert policies() == []
    assert migrate(db, 300.0, 0).compress_after_days is None


@only_timescaledb
def test_the_policy_compresses_chunks_older_than_its_delay_and_nothing_changes(
    db: psycopg.Connection[Any],
) -> None:
    now = datetime.now(UTC).replace(microsecond=0).timestamp()
    old = now - 30 * 86_400
    # Two stretches of 100 W every 60 s for 10 minutes: 11 readings, 10 segments of 6000 J each.
    assert store(db, [(old + 60 * k, 100.0) for k in range(11)] + [(now - 600 + 60 * k, 100.0) for k in range(11)])
    row = db.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression'")
    job = row.fetchone()
    assert job is not None
    db.execute("CALL run_job(%s)", (job[0],))
    chunks = db.execute(
        "SELECT range_end < now() - make_interval(days => %s), is_compressed FROM timescaledb_information.chunks"
        " WHERE hypertable_name = 'readings'",
        (TEMPLATE_COMPRESS_AFTER_DAYS,),
    ).fetchall()
    # Compressed exactly when the whole chunk is older than the delay: the month-old one (or two,
    # if the stretch crosses a chunk edge), not the current one.
    assert {bool(old_enough) for old_enough, _ in chunks} == {True, False}
    assert all(old_enough == compressed for old_enough, compressed in chunks)
    totals = db.execute("SELECT count(*), sum(power) FROM readings").fetchone()
    assert totals == (22, 2200.0)
    rollup = db.execute("SELECT sum(day_wh + night_wh) FROM energy_rollups").fetchone()
    assert rollup is not None and rollup[0] == pytest.approx(2 * 10 * 6000 / 3600)


@pytest.mark.backends("timescaledb-compressed")
def test_deleting_more_compressed_readings_than_timescaledb_decompresses_by_default(
    database_url: str, compress: Any
) -> None:
    """TimescaleDB refuses, by default, a statement decompressing over 100 000 rows: the legacy
    delete route must still delete 10 days of 8-s readings (108 000) in one call."""
    t0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    per_day = 86_400 // 8  # 10 800 readings
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert store(conn, [(t0 + 8 * k, 100.0) for k in range(12 * per_day)]) == 12 * per_day
    compress(database_url)
    settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
    credentials = {"login": "admin", "password": "correct horse battery"}
    with TestClient(create_app(settings)) as client:
        assert client.post("/install", data=credentials, follow_redirects=False).status_code == 303
        deleted = client.post(f"/api/1/delete/by_time/{t0 + 86_400}/{t0 + 11 * 86_400}", data=credentials)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["data"] == 10 * per_day
        # Left: day 0 and day 11, each 10 800 readings of 100 W, 10 799 segments of 800 J; the
        # 10-day hole between them is a gap, worth nothing. 2 * 10 799 * 800 J = 4.79955... kWh.
        energy = client.post(f"/api/1/get/kwatthours/by_time/{t0}/{t0 + 12 * 86_400}", data=credentials)
        assert energy.json()["data"]["value"] == pytest.approx(2 * 10_799 * 800 / 3.6e6, rel=1e-9)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (2 * per_day,)
        rollups = conn.execute("SELECT sum(day_wh + night_wh) FROM energy_rollups").fetchone()
        assert rollups is not None and rollups[0] == pytest.approx(2 * 10_799 * 800 / 3600, rel=1e-9)


# -- TimescaleDB installed, not preloaded -------------------------------------------------------------
@pytest.fixture
def not_preloaded(backend: Backend, tmp_path: Path) -> Iterator[LocalPostgres]:
    """A server from the TimescaleDB tree, without shared_preload_libraries: CREATE EXTENSION on it
    answers FATAL and closes the connection."""
    server = LocalPostgres(tmp_path / "pg", durable=False, bin_dir=backend.bin_dir, timescaledb=False)
    server.start()
    yield server
    server.stop("immediate")


@only_timescaledb
def test_without_the_preload_create_extension_kills_the_connection(not_preloaded: LocalPostgres) -> None:
    """Why migrate() checks shared_preload_libraries first, rather than trying and catching."""
    conn = psycopg.connect(not_preloaded.url, autocommit=True)
    try:
        with pytest.raises(psycopg.Error, match="must be preloaded"):
            conn.execute("CREATE EXTENSION timescaledb")
        assert conn.closed or conn.broken
    finally:
        conn.close()


@only_timescaledb
def test_without_the_preload_the_aggregator_warns_once_and_stores_in_plain_tables(
    not_preloaded: LocalPostgres, mosquitto: LocalMosquitto, tmp_path: Path
) -> None:
    port = free_port()
    env = {"CW_MQTT_URL": mosquitto.url, "CW_DATABASE_URL": not_preloaded.url, "CW_HEALTH_PORT": str(port)}
    observer = MqttObserver(mosquitto.url, "citizenwatt/_services/#", client_id="not-preloaded-watch")
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    try:
        observer.wait_for(lambda ms: any(p == b"online" for _, p, _ in ms))
        health = wait_until(lambda: healthy(port), message="aggregator healthy")
        assert health["storage"]["backend"] == "plain"
        assert NOT_PRELOADED in health["storage"]["description"]
        base = 1_790_000_000.0
        for k in range(3):
            body = {"v": 1, "sensor": "kitchen", "kind": "simulator", "ts": base + 8 * k, "power": 100.0 * (k + 1)}
            observer.publish("citizenwatt/kitchen/reading", json.dumps(body))
        wait_until(lambda: count_rows(not_preloaded.url) == 3, message="three readings stored")
    finally:
        aggregator.stop()
        observer.close()
    log = aggregator.log()
    warnings = [line for line in log.splitlines() if "WARNING" in line and "storage:" in line]
    assert len(warnings) == 1 and NOT_PRELOADED in warnings[0] and "shared_preload_libraries = 'timescaledb'" in log
    assert "database unavailable" not in log and "cannot reach the database" not in log
    # Three readings 8 s apart: 100 -> 200 -> 300 W, (150 + 250) W * 8 s = 3200 J.
    assert count_rows(not_preloaded.url, "SELECT round(energy_total_wh * 3600) FROM sensors") == 3200


@only_timescaledb
def test_plain_history_moves_into_the_hypertable_and_losing_the_preload_later_is_refused(
    backend: Backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A household that ran without the preload fixes its configuration: its readings move into
    the hypertable. If the preload goes missing again, readings in compressed chunks would be
    invisible (seen: a SELECT misses them, an INSERT lands outside every chunk): refuse to run."""
    server = LocalPostgres(tmp_path / "pg", durable=False, bin_dir=backend.bin_dir, timescaledb=False)
    server.start()
    try:
        t0 = datetime(2026, 3, 3, 12, tzinfo=UTC).timestamp()  # a Tuesday noon: far from a chunk edge
        points = [(t0 + 60 * k, 100.0 + k) for k in range(30)]
        with psycopg.connect(server.url, autocommit=True) as conn:
            assert migrate(conn, 300.0, 3).timescaledb is None
            store(conn, points)
        server.stop()
        server.timescaledb = True
        server.start()
        with psycopg.connect(server.url, autocommit=True) as conn:
            mode = migrate(conn, 300.0, 3)
            assert mode.timescaledb == "2.28.3"
            assert conn.execute("SELECT count(*) FROM readings").fetchone() == (30,)
            assert compress_all_chunks(conn) == 1
            assert conn.execute("SELECT count(*), min(power), max(power) FROM readings").fetchone() == (30, 100, 129)
        server.stop()
        server.timescaledb = False
        server.start()
        with (
            psycopg.connect(server.url, autocommit=True) as conn,
            pytest.raises(StorageError, match="shared_preload_libraries = 'timescaledb'"),
        ):
            migrate(conn, 300.0, 3)
        aggregator = ServiceProcess(
            "citizenwatt_aggregator",
            {"CW_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}", "CW_DATABASE_URL": server.url, "CW_HEALTH_PORT": "0"},
            tmp_path / "agg.log",
        ).start()
        assert aggregator.process is not None
        assert aggregator.process.wait(timeout=60) == 2  # stops by itself, saying why
        assert "CRITICAL" in aggregator.log() and "does not preload it" in aggregator.log()
    finally:
        server.stop("immediate")
