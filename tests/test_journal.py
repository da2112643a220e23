"""The aggregator's journal (CW_JOURNAL_PATH): its file format, and the service with it on real
processes (Mosquitto, PostgreSQL, the aggregator): messages acknowledged and confirmed once
journaled, stored by PostgreSQL commits CW_COMMIT_SECONDS apart, and nothing lost to a killed
aggregator, a stopped database or a power cut."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from citizenwatt_aggregator.journal import Journal, decode_records, encode_record
from citizenwatt_aggregator.settings import AggregatorSettings
from citizenwatt_common.collector.outbox import segment_paths
from tests.powercut import TRACE_WRITES_AND_SYNCS, WINDOW_SECONDS, outbox_writes, what_a_power_cut_leaves
from tests.services import REPO, MqttObserver, ServiceProcess, count_rows, service, wait_for_exit, wait_until
from tests.test_aggregator import reading, wait_for_aggregator
from tests.test_faults import (
    _descendants,
    health,
    kill_postgres,
    stored_seqs,
)
from tools.localstack import LocalMosquitto, LocalPostgres, free_port

# -- the file ------------------------------------------------------------------------------------


def test_a_record_is_its_length_its_crc_then_the_topic_and_the_payload() -> None:
    # zlib's CRC-32 is the standard one: its check value over "123456789" is 0xCBF43926.
    assert zlib.crc32(b"123456789") == 0xCBF43926
    body = b"\x03\x00" + b"a/b" + b'{"p":1}'  # topic length 3, little-endian
    assert encode_record("a/b", b'{"p":1}') == struct.pack("<II", 12, zlib.crc32(body)) + body
    assert decode_records(encode_record("a/b", b'{"p":1}') + encode_record("c", b"")) == (
        [("a/b", b'{"p":1}'), ("c", b"")],
        12 + 8 + 3 + 8,
    )


def test_a_torn_tail_is_cut_off_and_what_follows_it_is_readable(tmp_path: Path) -> None:
    path = tmp_path / "j" / "journal"
    journal = Journal(path)
    journal.append([("t/1", b"one"), ("t/2", b"two"), ("t/3", b"three")])
    journal.sync()
    journal.close()
    whole = path.stat().st_size
    os.truncate(path, whole - 2)  # the last record lost its last two bytes: a power cut mid-write
    journal = Journal(path)
    assert journal.read() == [("t/1", b"one"), ("t/2", b"two")]
    assert path.stat().st_size == whole - (8 + 2 + 3 + 5) == journal.size
    journal.append([("t/4", b"four")])
    journal.close()
    assert Journal(path).read() == [("t/1", b"one"), ("t/2", b"two"), ("t/4", b"four")]


def test_a_damaged_record_ends_the_journal_there(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    journal = Journal(path)
    journal.append([("t/1", b"one"), ("t/2", b"two"), ("t/3", b"three")])
    journal.close()
    data = bytearray(path.read_bytes())
    data[8 + 2 + 3 + 3 + 8 + 2 + 1] ^= 0xFF  # a bit of the second record's topic
    path.write_bytes(bytes(data))
    assert Journal(path).read() == [("t/1", b"one")]


def test_cleared_it_reads_empty(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.append([("t/1", b"one")])
    journal.clear()
    assert (journal.size, journal.read()) == (0, [])


# -- the service -----------------------------------------------------------------------------------


@pytest.fixture
def observer(mosquitto: LocalMosquitto) -> Iterator[MqttObserver]:
    obs = MqttObserver(mosquitto.url, "#")
    yield obs
    obs.close()


def journal_env(broker: LocalMosquitto, database_url: str, journal: Path, **extra: str) -> dict[str, str]:
    return {
        "CW_MQTT_URL": broker.url,
        "CW_DATABASE_URL": database_url,
        "CW_HEALTH_PORT": "0",
        "CW_JOURNAL_PATH": str(journal),
        **extra,
    }


def confirmed(observer: MqttObserver, sensor: str) -> set[int]:
    """Every seq the aggregator told the sensor's collector it keeps (its committed topic)."""
    seqs: set[int] = set()
    for topic, payload, _ in observer.messages:
        if topic == f"citizenwatt/{sensor}/committed":
            for first, last in json.loads(payload)["seqs"]:
                seqs.update(range(first, last + 1))
    return seqs


def stored(database_url: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        return [int(r[0]) for r in conn.execute("SELECT seq FROM readings ORDER BY seq").fetchall()]


@pytest.mark.backends("plain")
def test_journaled_messages_are_confirmed_before_any_commit_and_stored_by_the_next_run(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, observer: MqttObserver
) -> None:
    """An hour between commits: 20 readings are confirmed to their collector (and acknowledged to
    the broker) with none in the database. SIGKILLed, the aggregator comes back under another
    MQTT client id, so the broker has nothing to redeliver to it: the 20 readings reach the
    database from the journal alone, each once, and the journal is emptied."""
    journal = tmp_path / "state" / "journal"
    env = journal_env(mosquitto, database_url, journal, CW_COMMIT_SECONDS="3600")
    aggregator = ServiceProcess("citizenwatt_aggregator", env, tmp_path / "agg.log").start()
    try:
        wait_for_aggregator(observer)
        now = time.time()
        for seq in range(1, 21):
            observer.publish("citizenwatt/cellar/reading", reading("cellar", now - 40 + seq, 50.0 + seq, seq=seq))
        observer.wait_for(lambda _: confirmed(observer, "cellar") == set(range(1, 21)))
        assert count_rows(database_url) == 0
        assert len(Journal(journal).read()) == 20
        (writer,) = aggregator.children()
        aggregator.kill()
        wait_for_exit(writer, timeout=30)  # it exits with its parent (writer.py)
    finally:
        aggregator.stop()
    again = {**env, "CW_CLIENT_ID": "citizenwatt-aggregator-2", "CW_COMMIT_SECONDS": "0.5"}
    with service("citizenwatt_aggregator", again, tmp_path / "agg2.log") as second:
        wait_until(lambda: count_rows(database_url) == 20, message="the journaled readings stored")
        wait_until(lambda: journal.stat().st_size == 0, message="the journal emptied")
        assert "storing 20 messages the last run journaled" in second.log()
    assert stored(database_url) == list(range(1, 21))


@pytest.mark.backends("plain")
def test_a_full_batch_is_committed_at_once_and_not_journaled(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, observer: MqttObserver
) -> None:
    """A backlog comes in full batches (CW_BATCH_SIZE, 10 here): each is committed before it is
    acknowledged, as without a journal, and never written to the journal; smaller ones are
    journaled and wait for the commit an hour later. 23 readings in one burst: at least two full
    batches, so at least 20 readings in the database, the rest in the journal alone, each once."""
    journal = tmp_path / "state" / "journal"
    env = journal_env(mosquitto, database_url, journal, CW_COMMIT_SECONDS="3600", CW_BATCH_SIZE="10")
    with service("citizenwatt_aggregator", env, tmp_path / "agg.log"):
        wait_for_aggregator(observer)
        now = time.time()
        for seq in range(1, 24):
            observer.publish("citizenwatt/attic/reading", reading("attic", now - 60 + seq, 10.0 * seq, seq=seq))
        observer.wait_for(lambda _: confirmed(observer, "attic") == set(range(1, 24)))
        in_database = stored(database_url)
        in_journal = [json.loads(payload)["seq"] for _, payload in Journal(journal).read()]
        assert len(in_database) >= 20
        assert sorted(in_database + in_journal) == list(range(1, 24))


@pytest.mark.backends("plain")
def test_a_stopped_database_leaves_the_messages_in_the_journal_until_it_is_back(
    mosquitto: LocalMosquitto, own_postgres: LocalPostgres, tmp_path: Path, observer: MqttObserver
) -> None:
    """PostgreSQL stopped: readings are still journaled and confirmed (the collectors need not
    keep them), the commits fail and are tried again, and once the database is back each reading
    is stored once. Then a SIGTERM commits what is pending before the aggregator exits."""
    journal = tmp_path / "journal"
    port = free_port()
    env = journal_env(mosquitto, own_postgres.url, journal, CW_COMMIT_SECONDS="0.5", CW_HEALTH_PORT=str(port))
    with service("citizenwatt_aggregator", env, tmp_path / "agg.log") as aggregator:
        # Connected to both (a database down at start is waited for before any message is taken).
        wait_until(lambda: health(port) == 200, message="aggregator healthy")
        own_postgres.stop()
        now = time.time()
        for seq in range(1, 11):
            observer.publish("citizenwatt/loft/reading", reading("loft", now - 30 + seq, 10.0 * seq, seq=seq))
        observer.wait_for(lambda _: confirmed(observer, "loft") == set(range(1, 11)))
        wait_until(lambda: "messages in the journal" in aggregator.log(), message="a failed commit")
        own_postgres.start()
        wait_until(lambda: count_rows(own_postgres.url) == 10, timeout=60, message="stored once back")
        assert stored(own_postgres.url) == list(range(1, 11))
    long_wait = {**env, "CW_COMMIT_SECONDS": "3600"}
    with service("citizenwatt_aggregator", long_wait, tmp_path / "agg2.log") as aggregator:
        for seq in range(11, 16):
            observer.publish("citizenwatt/loft/reading", reading("loft", now - 5 + seq - 10, 7.0, seq=seq))
        observer.wait_for(lambda _: confirmed(observer, "loft") >= set(range(11, 16)))
        assert count_rows(own_postgres.url) == 10
        assert aggregator.stop() == 0
    assert stored(own_postgres.url) == list(range(1, 16))
    assert journal.stat().st_size == 0


def traced(strace: str, trace: Path, env: dict[str, str], log: Path, module: str) -> subprocess.Popen[bytes]:
    """``python -m module`` under strace, recording its writes and syncs (tests/test_faults.py)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                *(strace, *TRACE_WRITES_AND_SYNCS, "-o", str(trace), sys.executable, "-m", module),
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.backends("plain")
def test_a_power_cut_with_the_journal_loses_at_most_the_documented_window(
    mosquitto: LocalMosquitto, own_postgres: LocalPostgres, tmp_path: Path
) -> None:
    """tests/test_faults.py's power cut, with a journal and commits 30 s apart: every process
    SIGKILLed at once, PostgreSQL keeping what it committed, the broker losing everything, and
    the journal and the collector's outbox cut back to what their own fsync calls made durable
    (strace around the real processes). Readings older than WINDOW_SECONDS at the cut that were
    not in PostgreSQL then (the journal's alone) must all be stored after the restart."""
    strace = shutil.which("strace")
    assert strace, "strace is needed (tools/install-system-deps.sh test)"
    journal, outbox, port = tmp_path / "journal", tmp_path / "outbox", free_port()
    env = {
        "CW_MQTT_URL": mosquitto.url,
        "CW_DATABASE_URL": own_postgres.url,
        "CW_HEALTH_PORT": str(port),
        "CW_SENSOR_ID": "cut",
        "CW_PERIOD_SECONDS": "0.25",
        "CW_OUTBOX_PATH": str(outbox),
        "CW_JOURNAL_PATH": str(journal),
        "CW_COMMIT_SECONDS": "30",
        # The window is proven with the shipped batch pacing, not the tests' quick one.
        "CW_BATCH_DELAY_SECONDS": str(AggregatorSettings.model_fields["batch_delay_seconds"].default),
    }
    observer = MqttObserver(mosquitto.url, "citizenwatt/cut/reading", client_id="cut-watch")

    def observed() -> dict[int, float]:
        return {json.loads(p)["seq"]: float(json.loads(p)["ts"]) for _, p, _ in observer.messages}

    aggregator_trace, collector_trace = tmp_path / "aggregator.trace", tmp_path / "collector.trace"
    aggregator = traced(strace, aggregator_trace, env, tmp_path / "agg.log", "citizenwatt_aggregator")
    collector = None
    try:
        wait_until(lambda: health(port) == 200, timeout=60, message="aggregator healthy")
        collector = traced(strace, collector_trace, env, tmp_path / "sim.log", "citizenwatt_simulator")
        # Steady state: one commit made, and the next one's readings journaled for 25 s.
        wait_until(lambda: count_rows(own_postgres.url) > 0, timeout=60, message="a first commit")
        first_commit = time.time()
        observer.wait_for(
            lambda _: max(observed(), default=0) and max(observed().values()) >= first_commit + 25, timeout=60
        )
        in_database = set(stored_seqs(own_postgres.url))
        # The power cut: the services first (strace's children: killing strace alone would only
        # detach them), then strace, which has recorded their last calls; then the servers.
        for process in (collector, aggregator):
            for pid in _descendants(process.pid):
                os.kill(pid, signal.SIGKILL)
        cut_at = time.time()
        for process in (collector, aggregator):
            process.wait(10)
        kill_postgres(own_postgres)
        mosquitto.kill()
    finally:
        for left in (collector, aggregator):
            if left is not None and left.poll() is None:
                left.kill()
    files = {**outbox_writes(aggregator_trace, (journal,)), **outbox_writes(collector_trace, segment_paths(outbox))}
    cut_off = what_a_power_cut_leaves(files, mosquitto)
    seen = observed()
    assert sorted(seen) == list(range(min(seen), max(seen) + 1)), "the observer missed readings"
    must_survive = {seq for seq, ts in seen.items() if ts < cut_at - WINDOW_SECONDS}
    journal_only = must_survive - in_database
    assert len(journal_only) >= 20, "the cut came when the database had (nearly) everything: nothing proven"

    mosquitto.start()
    own_postgres.start()
    again = {**env, "CW_COMMIT_SECONDS": "1"}
    with service("citizenwatt_aggregator", again, tmp_path / "agg.log"):
        collector_again = ServiceProcess("citizenwatt_simulator", env, tmp_path / "sim.log").start()
        try:
            wait_until(
                lambda: set(stored_seqs(own_postgres.url)) >= must_survive,
                timeout=120,
                message=f"the {len(must_survive)} readings older than the window stored",
            )
        finally:
            assert collector_again.stop() == 0
    kept = stored_seqs(own_postgres.url)
    assert len(kept) == len(set(kept)), "a reading stored twice"
    lost = {seq: cut_at - ts for seq, ts in seen.items() if seq not in set(kept)}
    assert all(age <= WINDOW_SECONDS for age in lost.values())
    print(
        f"\nPOWER CUT with the journal: {len(seen)} readings published, {len(must_survive)} older than"
        f" {WINDOW_SECONDS:g} s all stored ({len(journal_only)} of them only in the journal at the cut);"
        f" lost {len(lost)}, all measured in the last {max(lost.values(), default=0):.1f} s;"
        f" {cut_off} unsynced bytes cut off"
    )
    assert lost, "the power cut took nothing away"


@pytest.mark.backends("plain")
def test_with_a_journal_the_state_topic_follows_the_readings_not_the_commits(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, observer: MqttObserver
) -> None:
    """The sensor's retained state (what Home Assistant reads) moves with each journaled reading,
    its energy figures staying those of the last commit, while nothing is committed for an hour.

    By hand: 100 W then 300 W 8 s apart is (100 + 300) / 2 x 8 = 1 600 J = 0.000444 kWh."""
    journal = tmp_path / "journal"
    quick = journal_env(mosquitto, database_url, journal, CW_COMMIT_SECONDS="0.2")
    now = time.time()

    def states() -> list[dict[str, Any]]:
        return [json.loads(p) for t, p, _ in observer.messages if t == "citizenwatt/hall/state"]

    with service("citizenwatt_aggregator", quick, tmp_path / "agg.log"):
        wait_for_aggregator(observer)
        observer.publish("citizenwatt/hall/reading", reading("hall", now - 60, 100.0, seq=1))
        observer.publish("citizenwatt/hall/reading", reading("hall", now - 52, 300.0, seq=2))
        observer.wait_for(lambda _: any(s["power"] == 300.0 for s in states()))
    committed = [s for s in states() if s["power"] == 300.0][-1]
    assert committed["energy_kwh"] == 0.000444
    slow = {**quick, "CW_COMMIT_SECONDS": "3600"}
    with service("citizenwatt_aggregator", slow, tmp_path / "agg2.log"):
        observer.publish("citizenwatt/hall/reading", reading("hall", now - 44, 500.0, seq=3))
        observer.wait_for(lambda _: any(s["power"] == 500.0 for s in states()))
        live = [s for s in states() if s["power"] == 500.0][-1]
        assert count_rows(database_url) == 2
    assert live == {**committed, "ts": now - 44, "power": 500.0, "rate": committed["rate"]}
