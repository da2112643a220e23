"""`make run` heals like the compose stack: PostgreSQL, the broker and every service that dies is
started again, and readings keep being stored; Ctrl-C (SIGTERM here) still stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import psycopg
import pytest

from tests.services import wait_until
from tools.localstack import REPO, LocalPostgres, free_port

pytestmark = pytest.mark.backends("plain")


def children_of(pid: int) -> dict[str, int]:
    """The direct children of a process, by the module they run (``-m citizenwatt_api``)."""
    found: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"-m" in argv:
                found[argv[argv.index(b"-m") + 1].decode()] = int(child)
    return found


def stored(url: str) -> int:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:  # not up yet, or not migrated yet
        return -1


class RunLocal:
    def __init__(self, data: Path) -> None:
        self.pg_port, self.mqtt_port, self.api_port, health = (free_port() for _ in range(4))
        self.env = {
            **os.environ,
            "CW_DATA_DIR": str(data),
            "CW_RUN_PG_PORT": str(self.pg_port),
            "CW_RUN_MQTT_PORT": str(self.mqtt_port),
            "CW_API_PORT": str(self.api_port),
            "CW_HEALTH_PORT": str(health),
            "CW_BACKFILL_DAYS": "0",
            "CW_PERIOD_SECONDS": "0.5",
            # make run's aggregator journals readings and commits them a minute later; what is
            # tested here is that everything comes back, so the journal is committed sooner.
            "CW_COMMIT_SECONDS": "5",
        }
        self.postgres = LocalPostgres(data / "postgres", self.pg_port)
        self.log = data / "run.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tools.run_local"], env=self.env, cwd=REPO, stdout=out, stderr=out
            )

    def more_readings_than(self, count: int) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log.read_text()
        return stored(self.postgres.url) > count


@pytest.fixture
def run_local(tmp_path: Path) -> Iterator[RunLocal]:
    run = RunLocal(tmp_path)
    run.start()
    yield run
    if run.process is not None and run.process.poll() is None:
        # As Ctrl-C: the launcher stops what it started (its children run in sessions of their own,
        # so killing it alone would leave them running).
        run.process.send_signal(signal.SIGTERM)
        try:
            run.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.process.wait()
    run.postgres.stop("immediate")


def test_make_run_brings_back_whatever_is_killed(run_local: RunLocal) -> None:
    assert run_local.process is not None
    url = run_local.postgres.url
    wait_until(lambda: run_local.more_readings_than(3), timeout=120, message="readings stored by make run")

    # PostgreSQL killed outright (what a panic looks like to its supervisor).
    old_postmaster = run_local.postgres.postmaster_pid()
    assert old_postmaster is not None
    os.kill(old_postmaster, signal.SIGKILL)
    wait_until(
        lambda: run_local.postgres.postmaster_pid() not in (None, old_postmaster),
        timeout=60,
        message="a new PostgreSQL",
    )
    before = stored(url)
    wait_until(
        lambda: run_local.more_readings_than(before + 3), timeout=60, message="readings after PostgreSQL's return"
    )

    # The aggregator, then the broker, killed.
    process = run_local.process
    for module in ("citizenwatt_aggregator", "mosquitto"):
        victim = _alive_child(process, module)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        wait_until(partial(_replaced, process, module, victim), timeout=60, message=f"{module} back")
        before = stored(url)
        wait_until(partial(run_local.more_readings_than, before + 3), timeout=90, message=f"readings after {module}")

    run_local.process.send_signal(signal.SIGTERM)
    assert run_local.process.wait(timeout=90) == 0
    assert run_local.postgres.postmaster_pid() is None
    log = run_local.log.read_text()
    assert "PostgreSQL restarted" in log and "aggregator restarted" in log and "Mosquitto restarted" in log
    # Its aggregator journaled what it acknowledged (README, Reliability), and emptied the journal
    # into PostgreSQL when stopped.
    journal = run_local.log.parent / "aggregator-journal"
    assert journal.exists() and journal.stat().st_size == 0


def _replaced(process: subprocess.Popen[bytes], module: str, old: int) -> bool:
    return _alive_child(process, module) not in (None, old)


def _broker_pid(parent: int) -> int:
    for task in Path(f"/proc/{parent}/task").iterdir():
        for child in (task / "children").read_text().split():
            if Path(f"/proc/{child}/comm").read_text().strip() == "mosquitto":
                return int(child)
    raise LookupError("no mosquitto child")


def _alive_child(process: subprocess.Popen[bytes], module: str) -> int | None:
    if module == "mosquitto":
        try:
            return _broker_pid(process.pid)
        except LookupError:
            return None
    return children_of(process.pid).get(module)
