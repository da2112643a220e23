"""Faults with real processes: every test ends by counting stored rows against published ones.

Each runs on Debian's PostgreSQL and on TimescaleDB with its chunks compressed once readings flow
(``timescaledb-compressed``, tests/conftest.py): what each fault sends late (a backlog, the
collector's outbox sent again, a batch redelivered) then lands in a compressed chunk, where the
``(sensor, ts)`` key must still turn repeats away; each test checks at its end that some did land
there (``assert_late_readings_in_compressed_chunks``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from citizenwatt_aggregator.settings import AggregatorSettings
from citizenwatt_common.collector.outbox import newest_seq_in, records_in, segment_paths
from tests.conftest import Backend
from tests.powercut import TRACE_WRITES_AND_SYNCS, WINDOW_SECONDS, outbox_writes, what_a_power_cut_leaves
from tests.services import REPO, MqttObserver, ServiceProcess, count_rows, wait_until
from tools.localstack import LocalMosquitto, LocalPostgres, free_port

pytestmark = pytest.mark.backends("plain", "timescaledb-compressed")


def compress_while_flowing(backend: Backend, database_url: str) -> None:
    """On ``timescaledb-compressed``, compress every chunk of readings now, while the aggregator
    goes on storing (so not conftest's ``compress``, which insists every chunk is still fully
    compressed afterwards: the next batch may already have landed in one)."""
    if not backend.compressed:
        return
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(compress_chunk(c, if_not_compressed => TRUE)) FROM show_chunks('readings') AS c"
        ).fetchone()
    assert row is not None and row[0] >= 1, "no chunk to compress: no reading stored yet"


def assert_late_readings_in_compressed_chunks(backend: Backend, database_url: str) -> None:
    """On ``timescaledb-compressed``: some chunk was compressed (status bit 1) and then took rows
    (bit 8, partly compressed), so the readings the fault delayed met compressed data."""
    if not backend.compressed:
        return
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM _timescaledb_catalog.chunk c"
            " JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id"
            " WHERE h.table_name = 'readings' AND c.status & 9 = 9"
        ).fetchone()
    assert row is not None and row[0] >= 1, "no reading arrived in a compressed chunk after the fault"


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
    request: pytest.FixtureRequest,
    mosquitto: LocalMosquitto,
    own_postgres: LocalPostgres,
    tmp_path: Path,
    backend: Backend,
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
        compress_while_flowing(backend, own_postgres.url)
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
        assert_late_readings_in_compressed_chunks(backend, own_postgres.url)
    finally:
        if simulator and simulator.running:
            simulator.kill()
        aggregator.stop()
        observer.close()


def test_broker_restarted_with_sigterm_mid_stream(
    request: pytest.FixtureRequest,
    mosquitto: LocalMosquitto,
    database_url: str,
    tmp_path: Path,
    backend: Backend,
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
        compress_while_flowing(backend, database_url)
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
    assert_late_readings_in_compressed_chunks(backend, database_url)


def written_after(path: Path, seq: int | None) -> int:
    """Readings newer than ``seq`` in the outbox's files (confirmed or not: confirmations are not written)."""
    return sum(1 for s, _ in records_in(path) if seq is None or s > seq)


def produced_seqs(log_text: str) -> set[int]:
    produced: set[int] = set()
    for first, last in re.findall(r"seq (\d+)\.\.(\d+) produced", log_text):
        produced |= set(range(int(first), int(last) + 1))
    return produced


def test_broker_sigkill_and_collector_restart_lose_nothing(
    request: pytest.FixtureRequest,
    mosquitto: LocalMosquitto,
    database_url: str,
    tmp_path: Path,
    backend: Backend,
) -> None:
    """A SIGKILLed broker forgets what it acknowledged since its last snapshot; the outbox covers it."""
    outbox = tmp_path / "outbox"
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
        compress_while_flowing(backend, database_url)
        mosquitto.kill()
        mark = newest_seq_in(outbox)
        wait_until(lambda: written_after(outbox, mark) >= 20, message="readings piling up in the outbox")
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
    assert_late_readings_in_compressed_chunks(backend, database_url)


# Big enough for a cluster (with TimescaleDB) and its first WAL segments, small enough to fill at once.
SMALL_DISK_MB = 256


@pytest.fixture
def postgres_on_a_small_disk(tmp_path: Path, backend: Backend) -> Iterator[tuple[LocalPostgres, Path]]:
    """A PostgreSQL server whose whole cluster (tables and WAL) is on a filesystem of its own: a
    tmpfs of SMALL_DISK_MB mounted for this test (mounting needs root, as CI runs)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_MB}m,mode=0755", "cw-small-disk", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a small filesystem for a full disk: {mounted.stderr.strip()}"
        if os.environ.get("CW_TESTS_SKIP_UNAVAILABLE") == "1":
            pytest.skip(reason)
        pytest.fail(f"{reason} (CW_TESTS_SKIP_UNAVAILABLE=1 skips it)")
    server = backend.server(disk / "pg")
    try:
        server.start()
        yield server, disk
    finally:
        server.stop("immediate")
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its filesystem has no byte left (ENOSPC); returns the file."""
    ballast = folder / "ballast"
    block = bytes(1 << 20)
    with ballast.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)  # a short write near the end, then ENOSPC
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return ballast


def checkpointer_pid(server: LocalPostgres) -> int:
    with psycopg.connect(server.url) as conn:
        row = conn.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'").fetchone()
    assert row is not None
    return int(str(row[0]))


def test_disk_full_is_an_error_not_a_crash(
    request: pytest.FixtureRequest,
    mosquitto: LocalMosquitto,
    postgres_on_a_small_disk: tuple[LocalPostgres, Path],
    tmp_path: Path,
    backend: Backend,
) -> None:
    """A real full disk under PostgreSQL (its filesystem filled by a file, not simulated): the
    writes that need a new page fail with ENOSPC ("could not extend file", SQLSTATE 53100); the
    aggregator reports it in one line, answers 503 and holds its batch; once the file is deleted
    everything published meanwhile is stored, and PostgreSQL itself never stopped."""
    server, disk = postgres_on_a_small_disk
    port = free_port()
    env = {
        "CW_MQTT_URL": mosquitto.url,
        "CW_DATABASE_URL": server.url,
        "CW_HEALTH_PORT": str(port),
        "CW_SENSOR_ID": "diskfull",
        "CW_PERIOD_SECONDS": "0.1",
    }
    observer = MqttObserver(mosquitto.url, "citizenwatt/#")
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    simulator = None
    try:
        wait_until(lambda: health(port) == 200, message="aggregator healthy")
        simulator = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
        wait_until(lambda: count_rows(server.url) >= 20, message="readings flowing")
        compress_while_flowing(backend, server.url)
        checkpointer = checkpointer_pid(server)
        ballast = fill(disk)
        wait_until(lambda: health(port) == 503, timeout=60, message="aggregator reporting unhealthy")
        before = len(published_seqs(observer, "diskfull"))
        observer.wait_for(lambda ms: len(published_seqs(observer, "diskfull")) >= before + 50)
        assert aggregator.running
        ballast.unlink()
        wait_until(lambda: health(port) == 200, timeout=60, message="healthy again")
        # After a PANIC the postmaster would restart every child process, the checkpointer included.
        assert checkpointer_pid(server) == checkpointer, "PostgreSQL crashed and restarted on the full disk"
        assert simulator.stop() == 0
        published = published_seqs(observer, "diskfull")
        wait_until(lambda: count_rows(server.url) == len(published), timeout=60, message="all stored")
        assert set(stored_seqs(server.url)) == published
        report(request.node.name, len(published), len(stored_seqs(server.url)))
        assert_late_readings_in_compressed_chunks(backend, server.url)
    finally:
        if simulator and simulator.running:
            simulator.kill()
        aggregator.stop()
        observer.close()
    log = (tmp_path / "agg.log").read_text()
    assert log.count("database unavailable") == 1  # one clear line per outage, not one per retry
    assert "No space left on device" in log


# Between the collector and the broker: the database is not involved until the end, so one backend
# is enough (60 s of CI time each).
@pytest.mark.backends("plain")
def test_broker_unreachable_for_60_seconds_under_a_running_collector(
    request: pytest.FixtureRequest,
    mosquitto: LocalMosquitto,
    database_url: str,
    tmp_path: Path,
    backend: Backend,
) -> None:
    outbox = tmp_path / "outbox"
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
        compress_while_flowing(backend, database_url)
        mosquitto.stop()
        mark = newest_seq_in(outbox)
        # Sixty seconds without a broker, counted in readings piling up at 10 per second.
        wait_until(
            lambda: written_after(outbox, mark) >= 600, timeout=120, message="a minute of readings in the outbox"
        )
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
    assert_late_readings_in_compressed_chunks(backend, database_url)


def kill_postgres(server: LocalPostgres) -> None:
    """SIGKILL the postmaster and every process it started, as the kernel's OOM killer or a crash would."""
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    victims = [postmaster, *_descendants(postmaster)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not any(_alive(pid) for pid in victims), message="PostgreSQL's processes gone")
    # Dead, but maybe not yet reaped by this machine's init, and PostgreSQL takes a zombie's pid for
    # a running server. A restarted machine or container has no such process: its start finds the
    # lock files stale and removes them, as we do here.
    (server.data / "postmaster.pid").unlink()
    for lock in server.folder.glob(f".s.PGSQL.{server.port}*"):
        lock.unlink()


def _descendants(pid: int) -> list[int]:
    parent_of = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parent_of[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [child for child, parent in parent_of.items() if parent == current]
        found += kids
        frontier += kids
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie holds no file and no memory: it is gone for our purpose


def test_postgres_sigkilled_mid_stream_loses_nothing(
    request: pytest.FixtureRequest,
    mosquitto: LocalMosquitto,
    own_postgres: LocalPostgres,
    tmp_path: Path,
    backend: Backend,
) -> None:
    """Every PostgreSQL process SIGKILLed (no shutdown checkpoint): crash recovery, then everything stored."""
    port = free_port()
    env = {
        "CW_MQTT_URL": mosquitto.url,
        "CW_DATABASE_URL": own_postgres.url,
        "CW_HEALTH_PORT": str(port),
        "CW_SENSOR_ID": "pgkill",
        "CW_PERIOD_SECONDS": "0.1",
        "CW_OUTBOX_PATH": str(tmp_path / "outbox"),
    }
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    simulator = None
    try:
        wait_until(lambda: health(port) == 200, message="aggregator healthy")
        simulator = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
        wait_until(lambda: count_rows(own_postgres.url) >= 20, message="readings flowing")
        compress_while_flowing(backend, own_postgres.url)
        kill_postgres(own_postgres)
        wait_until(lambda: health(port) == 503, message="aggregator reporting unhealthy")
        own_postgres.start()  # crash recovery from the WAL
        wait_until(lambda: health(port) == 200, timeout=60, message="aggregator healthy again")
        first = count_rows(own_postgres.url)
        wait_until(lambda: count_rows(own_postgres.url) >= first + 20, timeout=60, message="flowing again")
        assert simulator.stop() == 0
        produced = produced_seqs((tmp_path / "sim.log").read_text())
        assert produced
        wait_until(lambda: set(stored_seqs(own_postgres.url)) >= produced, timeout=60, message="everything stored")
    finally:
        if simulator and simulator.running:
            simulator.kill()
        aggregator.stop()
    stored = stored_seqs(own_postgres.url)
    assert sorted(stored) == sorted(produced)
    report(request.node.name, len(produced), len(stored))
    assert_late_readings_in_compressed_chunks(backend, own_postgres.url)


# -- a power cut -----------------------------------------------------------------------------------


# On TimescaleDB the power cut is the compose stack's (tests/test_compose_stack.py), on the Pi's
# own images: one backend here (a minute of CI time each).
@pytest.mark.backends("plain")
def test_power_cut_loses_at_most_the_documented_window(
    request: pytest.FixtureRequest,
    mosquitto: LocalMosquitto,
    own_postgres: LocalPostgres,
    tmp_path: Path,
    backend: Backend,
) -> None:
    """Steady state writes no sync; then the aggregator is SIGKILLed and, 25 s later, the power goes.

    The power cut, on real processes: every process is SIGKILLed at once; PostgreSQL keeps what it
    committed (fsync and synchronous_commit on: its own guarantee, not re-proven here); the broker
    loses everything (its persistence file deleted: worse than a snapshot taken up to an hour
    earlier); the collector's outbox files are cut back to what its own fsync calls had made
    durable, as recorded by strace around the real collector process. Then everything restarts,
    and every reading measured more than WINDOW_SECONDS before the cut must be stored.
    """
    strace = shutil.which("strace")
    assert strace, "strace is needed (tools/install-system-deps.sh test)"
    outbox = tmp_path / "outbox"
    port = free_port()
    env = {
        "CW_MQTT_URL": mosquitto.url,
        "CW_DATABASE_URL": own_postgres.url,
        "CW_HEALTH_PORT": str(port),
        "CW_SENSOR_ID": "powercut",
        "CW_PERIOD_SECONDS": "0.25",
        "CW_OUTBOX_PATH": str(outbox),
        # The window is proven with the shipped commit pacing, not the tests' quick one.
        "CW_BATCH_DELAY_SECONDS": str(AggregatorSettings.model_fields["batch_delay_seconds"].default),
    }
    observer = MqttObserver(mosquitto.url, "citizenwatt/powercut/reading", client_id="powercut-watch")

    def observed() -> dict[int, float]:
        return {json.loads(p)["seq"]: float(json.loads(p)["ts"]) for _, p, _ in observer.messages}

    trace = tmp_path / "collector.trace"
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    collector = None
    try:
        wait_until(lambda: health(port) == 200, message="aggregator healthy")
        with (tmp_path / "sim.log").open("ab") as log:
            collector = subprocess.Popen(
                [
                    *(strace, *TRACE_WRITES_AND_SYNCS, "-o", str(trace), sys.executable, "-m", "citizenwatt_simulator"),
                ],
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # Steady state: a few batches committed and confirmed (the aggregator commits every 8 s).
        wait_until(lambda: count_rows(own_postgres.url) >= 60, timeout=60, message="readings flowing")
        compress_while_flowing(backend, own_postgres.url)
        aggregator.kill()
        killed_at = time.time()
        # 25 s of readings nobody confirms: the outbox must sync them (at 9 s) on its own.
        observer.wait_for(lambda ms: max(observed().values()) >= killed_at + 25, timeout=60)
        # The power cut: everything at once. The collector itself first (strace's child: killing
        # strace alone would only detach it), then strace, which has recorded its last call.
        for pid in _descendants(collector.pid):
            os.kill(pid, signal.SIGKILL)
        cut_at = time.time()
        collector.wait(10)
        kill_postgres(own_postgres)
        mosquitto.kill()
    finally:
        if collector is not None and collector.poll() is None:
            collector.kill()
        aggregator.stop()
    files = outbox_writes(trace, segment_paths(outbox))
    fsyncs = sorted(at for state in files.values() for at in state.fsyncs)
    assert not [at for at in fsyncs if at < killed_at], "the outbox synced while the aggregator confirmed everything"
    assert fsyncs, "the outbox never synced readings nobody confirmed"
    cut_off = what_a_power_cut_leaves(files, mosquitto)
    seen = observed()
    assert sorted(seen) == list(range(min(seen), max(seen) + 1)), "the observer missed readings"

    # Power back: everything starts again, the collector from what is left of its outbox.
    mosquitto.start()
    own_postgres.start()
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    collector_again = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
    try:
        must_survive = {seq for seq, ts in seen.items() if ts < cut_at - WINDOW_SECONDS}
        wait_until(
            lambda: set(stored_seqs(own_postgres.url)) >= must_survive,
            timeout=120,
            message=f"the {len(must_survive)} readings older than the window stored",
        )
        assert collector_again.stop() == 0
    finally:
        aggregator.stop()
    stored = set(stored_seqs(own_postgres.url))
    lost = {seq: cut_at - ts for seq, ts in seen.items() if seq not in stored}
    assert all(age <= WINDOW_SECONDS for age in lost.values())
    print(
        f"\nPOWER CUT: {len(seen)} readings published, {len(must_survive)} older than {WINDOW_SECONDS:g} s all stored;"
        f" lost {len(lost)}, all measured in the last {max(lost.values(), default=0):.1f} s;"
        f" outbox syncs {len(fsyncs)} in {cut_at - killed_at:.0f} s unconfirmed, none before;"
        f" {cut_off} unsynced bytes cut off"
    )
    # The cut must have bitten, or this test could not tell a missing sync from a working one.
    assert cut_off > 0 and lost, "the power cut took nothing away"
    report(request.node.name, len(must_survive), len(must_survive & stored))
    assert_late_readings_in_compressed_chunks(backend, own_postgres.url)
