"""What tests/test_compose_stack.py's fault test needs besides the stack: who watched the broker,
what the database holds, and how a power cut is played on the containers' volumes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from citizenwatt_common.collector.outbox import segment_paths
from tests.dockerstack import ComposeProject
from tests.powercut import TRACE_WRITES_AND_SYNCS, outbox_writes
from tests.services import MqttObserver, wait_until

SENSOR = "simulator"  # docker-compose.yml's default CW_SIMULATOR_ID
# docker-compose.yml's CW_OUTBOX_PATH, inside the simulator-outbox volume (mounted at /var/lib/citizenwatt).
OUTBOX_IN_VOLUME = "outbox"
# docker-compose.yml's CW_JOURNAL_PATH, inside the aggregator-journal volume (mounted there too).
JOURNAL_IN_CONTAINER = Path("/var/lib/citizenwatt/journal")


def sql(stack: ComposeProject, query: str) -> str:
    return stack(
        "exec", "-T", "timescaledb", "psql", "-U", "citizenwatt", "-d", "citizenwatt", "-tAc", query
    ).stdout.strip()


def stored_seqs(stack: ComposeProject) -> list[int]:
    """Every stored reading's seq, duplicates included (a reading stored twice shows twice)."""
    text = sql(stack, "SELECT r.seq FROM readings r JOIN sensors s ON s.id = r.sensor_id ORDER BY r.seq")
    return [int(line) for line in text.splitlines() if line]


def newest_stored(stack: ComposeProject) -> tuple[int, float]:
    """The newest stored reading's seq and measurement time (0, 0 before the first)."""
    row = sql(stack, "SELECT coalesce(max(seq), 0), coalesce(extract(epoch FROM max(ts)), 0) FROM readings")
    seq, ts = row.split("|")
    return int(seq), float(ts)


def seq_runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive seqs, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def broker_password(stack: ComposeProject, account: str) -> str:
    """What secrets-init generated for ``account``, read from the secrets volume on this machine."""
    return (volume_folder(stack, "secrets") / f"{account}.password").read_text().strip()


class ReadingWatch:
    """Home Assistant's broker account, on the host, recording every reading the broker delivers.

    It sees what reached the broker: a reading the collector published while the broker was
    down reaches it later, when the collector sends its outbox again. It reconnects (and
    subscribes again) by itself after the broker is killed.
    """

    def __init__(self, stack: ComposeProject) -> None:
        self.observer = MqttObserver(
            "mqtt://127.0.0.1:1883",
            f"citizenwatt/{SENSOR}/reading",
            client_id=f"fault-watch-{stack.name}",
            username="_homeassistant",
            password=broker_password(stack, "_homeassistant"),
        )

    def readings(self) -> dict[int, float]:
        """Seq -> measurement time of every reading seen."""
        seen: dict[int, float] = {}
        for _, payload, _ in list(self.observer.messages):
            body = json.loads(payload)
            seen[int(body["seq"])] = float(body["ts"])
        return seen

    def newest(self) -> int:
        return max(self.readings(), default=0)

    def wait_for_more(self, count: int, timeout: float = 60) -> None:
        """Until ``count`` readings newer than the newest seen so far have reached the broker."""
        mark = self.newest()
        self.observer.wait_for(lambda _: len([s for s in self.readings() if s > mark]) >= count, timeout=timeout)

    def close(self) -> None:
        self.observer.close()


def wait_stored_past(stack: ComposeProject, seq: int, timeout: float = 120) -> None:
    """Until a reading newer than ``seq`` is stored: the whole path works again."""
    wait_until(lambda: newest_stored(stack)[0] > seq, timeout=timeout, interval=1, message=f"a reading after {seq}")


def volume_folder(stack: ComposeProject, volume: str) -> Path:
    """Where a named volume of the stack lives on this machine (the daemon's data root)."""
    path = stack.daemon.run("volume", "inspect", "-f", "{{.Mountpoint}}", f"{stack.name}_{volume}").stdout.strip()
    return Path(path)


class JournalTrace:
    """strace on the aggregator container's process, seen from this machine (the container's
    processes are ours too), recording its writes and syncs: what its journal would keep at a power
    cut is what it held at its last fdatasync (tests/powercut.py replays them)."""

    def __init__(self, stack: ComposeProject, trace: Path) -> None:
        strace = shutil.which("strace")
        assert strace, "strace is needed (tools/install-system-deps.sh test)"
        pid = int(stack.daemon.run("inspect", "-f", "{{.State.Pid}}", stack.container("aggregator")).stdout)
        self.trace = trace
        # -f with -p: every thread of the process; -y: paths as the process sees them (its mounts).
        self.process = subprocess.Popen([strace, *TRACE_WRITES_AND_SYNCS, "-o", str(trace), "-p", str(pid)])

    def journal_emptied(self) -> bool:
        """A commit emptied the journal since the trace began: from then on it accounts for every byte."""
        text = self.trace.read_text(errors="replace") if self.trace.exists() else ""
        emptied = rf"ftruncate\(\d+<{re.escape(str(JOURNAL_IN_CONTAINER))}>, 0\)"
        return re.search(emptied, text) is not None

    def cut_journal(self, stack: ComposeProject) -> int:
        """Once the container is SIGKILLed: cut its journal (on the volume) back to its last sync;
        returns the bytes cut off."""
        self.process.wait(timeout=30)  # strace ends with its tracee, its last calls recorded
        state = outbox_writes(self.trace, (JOURNAL_IN_CONTAINER,))[JOURNAL_IN_CONTAINER]
        journal = volume_folder(stack, "aggregator-journal") / JOURNAL_IN_CONTAINER.name
        assert journal.stat().st_size == state.size, "the trace does not account for every byte of the journal"
        os.truncate(journal, state.synced)
        return state.size - state.synced

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def cut_unsynced_state(stack: ComposeProject) -> int:
    """After every container was SIGKILLed: take away what a power cut could, on the volumes.

    A SIGKILLed container leaves its files in the kernel's page cache, which a power cut would
    not: the files keep only what was synced. The aggregator's journal is cut back to its last
    fdatasync, as traced (JournalTrace.cut_journal). For the rest the worst case is played, not measured:
    - the simulator's outbox files are emptied (everything since its last fsync, which in steady
      state is never: tests/test_faults.py's power-cut test sees no sync while commits are
      confirmed; emptying them also drops what it had synced, which a real cut would keep);
    - Mosquitto's persistence file is deleted (it snapshots hourly: a snapshot up to an hour old,
      or none, is what a cut leaves).
    PostgreSQL keeps what it committed (fsync and synchronous_commit on), as a real cut would.
    Returns the outbox bytes cut off.
    """
    outbox = volume_folder(stack, "simulator-outbox") / OUTBOX_IN_VOLUME
    cut = 0
    for segment in segment_paths(outbox):
        if segment.exists():
            cut += segment.stat().st_size
            segment.write_bytes(b"")
    for snapshot in volume_folder(stack, "mosquitto-data").glob("mosquitto.db*"):
        snapshot.unlink()
    return cut


def kill(stack: ComposeProject, *services: str) -> float:
    """`docker kill` (SIGKILL) the services' containers in one call; returns when."""
    containers = [stack.container(service) for service in services]
    assert all(containers), f"not all running: {dict(zip(services, containers, strict=True))}"
    stack.daemon.run("kill", *containers)
    return time.time()
