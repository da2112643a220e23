"""Backup and restore as the README tells a ``make run`` user to do it, on real servers (no Docker).

A database with two sensors' readings (two days, one a minute), an account and settings is dumped
with ``pg_dump --format=custom``; a second server, a new machine's, already holding a database of
its own (a first ``make run``), has that database dropped, created again and filled by
``pg_restore``. Every reading, rollup, account and setting must come back, the energy totals must
be the same, and the restored database must take new readings. On TimescaleDB (the Pi's
database) the chunks are compressed before the dump and the restore is wrapped in
``timescaledb_pre_restore()`` / ``timescaledb_post_restore()``, as tools/restore-database.sh does.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from citizenwatt_api.auth import create_user
from citizenwatt_api.queries import energy_in_intervals
from citizenwatt_common.contract import Reading
from citizenwatt_common.schema import migrate
from citizenwatt_common.store import load_household, store_readings
from tests.conftest import Backend

pytestmark = pytest.mark.backends("plain", "timescaledb-compressed")
PARIS = ZoneInfo("Europe/Paris")
# 2026-03-10T00:00Z, then one reading a minute for two days: 2 880 per sensor.
T0 = datetime(2026, 3, 10, tzinfo=UTC).timestamp()
N = 2880
# Sensor "flat" draws 250 W throughout: 2 879 one-minute segments x 60 s x 250 W = 43 185 000 J
# = 11 995.833 Wh. Sensor "steps" draws 100, 110, ... 590 W in turns of 50 minutes.
FLAT_WH = 2879 * 60 * 250 / 3600


def _steps(i: int) -> float:
    return 100.0 + (i % 50) * 10


def _readings() -> list[Reading]:
    return [
        Reading(sensor=key, kind="simulator", ts=T0 + 60 * i, power=power(i), voltage=230.0, seq=i)
        for key, power in (("flat", lambda i: 250.0), ("steps", _steps))
        for i in range(N)
    ]


def _tool(backend: Backend, name: str) -> str:
    return str((backend.bin_dir or Path("/usr/lib/postgresql/15/bin")) / name)


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{command[0]} failed: {result.stderr}"


def _libpq_args(url: str) -> list[str]:
    # make run's server: 127.0.0.1:<port>, user citizenwatt, no password (trust on loopback).
    rest = url.removeprefix("postgresql://")
    user, _, location = rest.partition("@")
    hostport, _, database = location.partition("/")
    host, _, port = hostport.partition(":")
    return ["-h", host, "-p", port, "-U", user, database]


def _snapshot(url: str) -> dict[str, Any]:
    """Everything the restore must bring back, in a comparable form."""
    with psycopg.connect(url, autocommit=True) as conn:
        day = 86_400.0
        ids = [int(r[0]) for r in conn.execute("SELECT id FROM sensors ORDER BY id").fetchall()]
        intervals = [(T0 - day, T0), (T0, T0 + day), (T0 + day, T0 + 2 * day), (T0 + 3600.5, T0 + 7299.25)]
        household = load_household(conn)
        return {
            "readings": conn.execute(
                "SELECT r.id, s.key, extract(epoch FROM r.ts)::float8, r.power, r.night_rate, r.voltage, r.seq"
                " FROM readings r JOIN sensors s ON s.id = r.sensor_id ORDER BY s.key, r.ts"
            ).fetchall(),
            "rollups": conn.execute(
                "SELECT sensor_id, bucket, day_wh, night_wh FROM energy_rollups ORDER BY sensor_id, bucket"
            ).fetchall(),
            "sensors": conn.execute("SELECT id, key, kind, energy_total_wh FROM sensors ORDER BY id").fetchall(),
            "users": conn.execute("SELECT login, password_hash, is_admin FROM users ORDER BY id").fetchall(),
            "household": conn.execute("SELECT * FROM household").fetchall(),
            "energy": {
                sensor: [e.total_wh for e in energy_in_intervals(conn, sensor, intervals, household.max_gap_seconds)]
                for sensor in ids
            },
        }


def test_a_dump_restored_on_a_new_server_has_every_reading(
    backend: Backend, database_url: str, compress: Callable[[str], int], tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE household SET night_start_minute = 22 * 60, night_end_minute = 6 * 60")
        conn.execute("UPDATE household SET provider_id = 2")
        create_user(conn, "alice", "a long password", is_admin=True)
        with conn.transaction():
            store_readings(conn, _readings(), load_household(conn), PARIS)
    compress(database_url)
    before = _snapshot(database_url)
    assert len(before["readings"]) == 2 * N
    flat_id = next(sensor_id for sensor_id, key, _, _ in before["sensors"] if key == "flat")
    # The two full days and the ragged hour, against the hand-worked figure for the flat sensor.
    assert sum(before["energy"][flat_id][1:3]) == pytest.approx(FLAT_WH, rel=1e-12)

    dump = tmp_path / "citizenwatt.dump"
    _run(_tool(backend, "pg_dump"), "--format=custom", f"--file={dump}", *_libpq_args(database_url))

    # The new machine: its own server, whose first `make run` made a database with a reading in it.
    target = backend.server(tmp_path / "new-machine", durable=False)
    url = target.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, default_max_gap_seconds=300.0, compress_after_days=3)
            store_readings(
                conn, [Reading(sensor="simulator", kind="simulator", ts=T0, power=1.0)], load_household(conn), PARIS
            )
        server, database = _libpq_args(url)[:-1], _libpq_args(url)[-1]
        # The README's steps: drop, create, restore (TimescaleDB: wrapped in its pre/post calls).
        _run(_tool(backend, "dropdb"), *server, "--force", database)
        _run(_tool(backend, "createdb"), *server, database)
        if backend.timescaledb:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                conn.execute("SELECT timescaledb_pre_restore()")
        _run(_tool(backend, "pg_restore"), "--no-owner", "--exit-on-error", *server, "-d", database, str(dump))
        if backend.timescaledb:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SELECT timescaledb_post_restore()")

        after = _snapshot(url)
        for part in before:
            assert after[part] == before[part], f"{part} differs after the restore"
        # The restored database goes on: migrations find it current, new readings get new ids.
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, default_max_gap_seconds=300.0, compress_after_days=3)
            later = Reading(sensor="flat", kind="simulator", ts=T0 + 60 * N, power=250.0)
            with conn.transaction():
                store_readings(conn, [later], load_household(conn), PARIS)
            row = conn.execute("SELECT max(id), count(*) FROM readings").fetchone()
            assert row is not None
            assert (row[0], row[1]) == (max(r[0] for r in before["readings"]) + 1, 2 * N + 1)
            total = conn.execute("SELECT energy_total_wh FROM sensors WHERE key = 'flat'").fetchone()
            assert total is not None and total[0] == pytest.approx(FLAT_WH + 250 * 60 / 3600, rel=1e-12)
    finally:
        target.stop("immediate")
