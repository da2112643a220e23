"""What the running stack writes to the SD card, per stored reading, counted at the system call.

`make run`'s stack (durable PostgreSQL, Mosquitto with the shipped broker settings, the
aggregator, the api) with 4 simulator collectors at one reading every 8 s, each with its outbox
on disk. After a warm-up, one ``strace -f`` attaches to every process of it (PostgreSQL's
postmaster and all its children, Mosquitto, the Python services and all their threads) and
records every write and every sync call for ``CW_BENCH_SDCARD_SECONDS`` (default 180). Only
writes to regular files count (``strace -y`` names each descriptor): sockets, pipes and
/dev/null are not the card. /proc/<pid>/io's write_bytes is not used: on these VMs it counts
far more than the processes write.

Before the window, what autovacuum does once in a new cluster (analyze and freeze the catalogs)
is done at once: it would otherwise make PostgreSQL rewrite 160 KB files inside the window, a
one-off of a fresh install. The window starts right after a CHECKPOINT (so every page touched
pays its full-page image in the WAL, the worst case) and a second CHECKPOINT at its end is
counted on its own line: with PostgreSQL's checkpoint interval longer than the window, "with
checkpoint" is an upper bound.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tools.localstack import REPO, LocalMosquitto, LocalPostgres, free_port, wait_for_port
from tools.run_local import service_env

SENSORS = 4
PERIOD_SECONDS = 8.0
_WRITES = ("write", "pwrite64", "writev", "pwritev", "pwritev2")
_SYNCS = ("fsync", "fdatasync", "msync")
_FLUSH_HINTS = ("sync_file_range",)
_FORKS = ("clone", "clone3", "fork", "vfork")
_LINE = re.compile(r"^(\d+)\s+(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_RESULT = re.compile(r"\)\s+=\s+(-?\d+)")
_FD_PATH = re.compile(r"^-?\d+<([^>]*)>")


@dataclass
class Usage:
    bytes: int = 0
    writes: int = 0
    syncs: int = 0  # fsync, fdatasync, msync: each makes the card commit
    flush_hints: int = 0  # sync_file_range: start writeback early (PostgreSQL), no durability wait
    by_file: Counter[str] = field(default_factory=Counter)


def _is_card_file(path: str) -> bool:
    return path.startswith("/") and not path.startswith(("/dev/", "/proc/", "/sys/"))


def parse_trace(lines: Iterable[str], owners: dict[int, str]) -> dict[str, Usage]:
    """Sum strace -f -y output per owner: ``owners`` maps known pids/tids to a label; children
    created during the trace (seen in clone/fork results) inherit their parent's."""
    pending: dict[int, tuple[str, str]] = {}
    events: list[tuple[int, str, str, int]] = []  # pid, syscall, fd path, result
    parents: dict[int, int] = {}
    for raw in lines:
        match = _LINE.match(raw.rstrip("\n"))
        if not match:
            continue
        pid, rest = int(match.group(1)), match.group(2)
        resumed = _RESUMED.match(rest)
        if resumed:
            name, args = pending.pop(pid, (resumed.group(1), ""))
            rest_args = args + resumed.group(2)
        else:
            call = _CALL.match(rest)
            if not call:
                continue
            name, rest_args = call.group(1), call.group(2)
            if rest_args.endswith("<unfinished ...>"):
                pending[pid] = (name, rest_args.removesuffix("<unfinished ...>"))
                continue
        result = _RESULT.search(rest_args)
        if result is None:
            continue
        value = int(result.group(1))
        if name in _FORKS:
            if value > 0:
                parents[value] = pid
            continue
        fd = _FD_PATH.match(rest_args)
        events.append((pid, name, fd.group(1) if fd else "", value))

    def owner(pid: int) -> str:
        seen = set()
        while pid not in owners and pid in parents and pid not in seen:
            seen.add(pid)
            pid = parents[pid]
        return owners.get(pid, "other")

    usage: dict[str, Usage] = defaultdict(Usage)
    for pid, name, path, value in events:
        if value < 0:
            continue
        entry = usage[owner(pid)]
        if name in _WRITES and _is_card_file(path):
            entry.bytes += value
            entry.writes += 1
            entry.by_file[path] += value
        elif name in _SYNCS:
            entry.syncs += 1
        elif name in _FLUSH_HINTS:
            entry.flush_hints += 1
    return dict(usage)


def _children_of(pid: int) -> list[int]:
    """``pid`` and all its descendants now, from /proc."""
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent_of[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [pid], [pid]
    while frontier:
        current = frontier.pop()
        kids = [child for child, parent in parent_of.items() if parent == current]
        found += kids
        frontier += kids
    return found


def _threads_of(pid: int) -> list[int]:
    try:
        return [int(t.name) for t in (Path("/proc") / str(pid) / "task").iterdir()]
    except OSError:
        return []


def _traced(tid: int) -> bool:
    try:
        status = (Path("/proc") / str(tid) / "status").read_text()
    except OSError:
        return True  # gone: nothing to wait for
    return not re.search(r"^TracerPid:\s+0$", status, re.M)


class Tracer:
    """One strace attached to a set of labelled processes (and everything they start)."""

    def __init__(self, roots: dict[str, list[int]], output: Path) -> None:
        self.owners: dict[int, str] = {}
        for label, pids in roots.items():
            for pid in pids:
                for tid in _threads_of(pid):
                    self.owners[tid] = label
        self.output = output
        calls = ",".join((*_WRITES, *_SYNCS, *_FLUSH_HINTS, *_FORKS))
        attach = [arg for pid in sorted({p for ps in roots.values() for p in ps}) for arg in ("-p", str(pid))]
        binary = shutil.which("strace")
        if binary is None:
            raise RuntimeError("strace is missing: bash tools/apt-install.sh strace")
        options = [binary, "-f", "-y", "-qq", "-s", "0", "-e", f"trace={calls}", "-e", "signal=none", "-o", str(output)]
        self.process = subprocess.Popen(
            [*options, *attach],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not all(_traced(tid) for tid in self.owners):
            if time.monotonic() > deadline:
                raise TimeoutError("strace did not attach to every process")
            time.sleep(0.05)

    def stop(self) -> dict[str, Usage]:
        self.process.send_signal(signal.SIGINT)  # detaches from every tracee, which run on
        self.process.wait(timeout=60)
        with self.output.open(errors="replace") as handle:
            return parse_trace(handle, self.owners)


def _measured_between(url: str, start: float, end: float, wait: float) -> int:
    """Readings measured in [start, end), once the database holds them all (with a journal, the
    last ones reach it up to CW_COMMIT_SECONDS later): counted by time, not by what a commit
    happened to carry by the end of the window."""
    deadline = time.monotonic() + wait
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE ts >= to_timestamp(%s) AND ts < to_timestamp(%s)),"
                " coalesce(max(extract(epoch FROM ts)), 0) FROM readings",
                (start, end),
            ).fetchone()
            assert row is not None
            if float(row[1]) >= end or time.monotonic() > deadline:
                return int(row[0])
            time.sleep(1.0)


def _checkpoint(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def _settle(postgres: LocalPostgres) -> None:
    """Do now what autovacuum does once in a new cluster: analyze and freeze every database's
    catalogs, after which every new backend rewrites its 160 KB relation cache file. A one-off of
    a fresh install (or of a schema change), not the steady state of a running Pi."""
    server = postgres.url.rsplit("/", 1)[0]
    for database in ("template1", "postgres", postgres.database):
        with psycopg.connect(f"{server}/{database}", autocommit=True) as conn:
            conn.execute("VACUUM (FREEZE, ANALYZE)")
    for database in ("template1", "postgres", postgres.database):
        with psycopg.connect(f"{server}/{database}", autocommit=True) as conn:
            conn.execute("SELECT 1")  # a new backend: writes the relation cache file again, once


def _wait_healthy(port: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the aggregator did not report healthy")


def _postmaster_pid(postgres: LocalPostgres) -> int:
    return int((postgres.data / "postmaster.pid").read_text().split()[0])


def _postgres_roles(postmaster: int) -> dict[str, list[int]]:
    """PostgreSQL's processes by role ("walwriter", "checkpointer", "backend", ...), labelled
    "postgres:<role>", from their process titles, so the table can say which one writes."""
    roles: dict[str, list[int]] = defaultdict(list)
    for pid in _children_of(postmaster):
        try:
            title = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        role = title.removeprefix("postgres: ").split(" ")[0] if title.startswith("postgres: ") else "postmaster"
        if role not in {"checkpointer", "background", "walwriter", "autovacuum", "logical", "postmaster"}:
            role = "backend"  # "user database host state"
        roles[f"postgres:{role}"].append(pid)
    return dict(roles)


_WAL_STATS = (
    "SELECT wal_records, wal_fpi, wal_bytes::float8, wal_write, wal_sync,"
    " (SELECT sum(xact_commit) FROM pg_stat_database)::float8 FROM pg_stat_wal"
)
_WAL_LABELS = ("WAL records", "full-page images", "WAL record bytes", "WAL writes", "WAL syncs", "commits")


def _wal_stats(url: str) -> tuple[float, ...]:
    """PostgreSQL's own WAL counters (pg_stat_wal), cumulative since the cluster started."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(_WAL_STATS).fetchone()
    return tuple(float(v) for v in row) if row else (0.0,) * len(_WAL_LABELS)


def _merge_postgres(usage: dict[str, Usage]) -> dict[str, Usage]:
    """Fold the "postgres:<role>" entries into one "postgres" entry."""
    merged: dict[str, Usage] = {}
    for label, entry in usage.items():
        key = "postgres" if label.startswith("postgres:") else label
        into = merged.setdefault(key, Usage())
        into.bytes += entry.bytes
        into.writes += entry.writes
        into.syncs += entry.syncs
        into.flush_hints += entry.flush_hints
        into.by_file.update(entry.by_file)
    return merged


def _print_table(title: str, usage: dict[str, Usage], readings: int, labels: list[str]) -> None:
    print(f"  {title}: {readings} readings stored")
    print(f"    {'process':<12} {'bytes/reading':>14} {'syncs/reading':>14} {'sync_file_range/reading':>24}")
    total = Usage()
    for label in [*labels, *sorted(set(usage) - set(labels))]:
        entry = usage.get(label, Usage())
        total.bytes += entry.bytes
        total.syncs += entry.syncs
        total.flush_hints += entry.flush_hints
        total.by_file.update(entry.by_file)
        print(
            f"    {label:<12} {entry.bytes / readings:>14,.0f} {entry.syncs / readings:>14.3f}"
            f" {entry.flush_hints / readings:>24.3f}"
        )
    print(
        f"    {'TOTAL':<12} {total.bytes / readings:>14,.0f} {total.syncs / readings:>14.3f}"
        f" {total.flush_hints / readings:>24.3f}"
    )
    kinds: Counter[str] = Counter()
    for path, count in total.by_file.items():
        kinds[_kind_of(path)] += count
    for kind, count in kinds.most_common():
        print(f"      {count / readings:>10,.0f} B/reading  {kind}")


def _kind_of(path: str) -> str:
    """What a written file is, for the breakdown (temporary names and numbers folded)."""
    name = Path(path).name
    if "/pg_wal/" in path:
        return "PostgreSQL WAL"
    if name.startswith("pg_internal.init"):
        return "PostgreSQL relation cache files (written after catalog changes)"
    if "/base/" in path or "/global/" in path:
        return "PostgreSQL tables and indexes (checkpoints, background writer)"
    if "/pg_data/" in path or "/data/" in path:
        return f"PostgreSQL {Path(path).parent.name}/ files"
    if name.startswith("mosquitto.db"):
        return "Mosquitto snapshot"
    if name.startswith("outbox"):
        return "collectors' outboxes"
    if name in ("journal", "aggregator-journal"):  # docker-compose.yml's, make run's
        return "aggregator's journal"
    return path


def run() -> None:
    """Print bytes written and sync calls per stored reading, per process and in total."""
    seconds = float(os.environ.get("CW_BENCH_SDCARD_SECONDS", "180"))
    warmup = float(os.environ.get("CW_BENCH_SDCARD_WARMUP_SECONDS", "120"))
    # As shipped (docker-compose.yml, make run), the aggregator journals what it acknowledges
    # (CW_JOURNAL_PATH) and commits every CW_COMMIT_SECONDS (its default unless set);
    # CW_BENCH_SDCARD_JOURNAL=0: without a journal, every batch committed before its acknowledgement.
    journal = os.environ.get("CW_BENCH_SDCARD_JOURNAL", "1") not in ("", "0")
    with tempfile.TemporaryDirectory(prefix="cw-sdcard-") as folder:
        root = Path(folder)
        postgres = LocalPostgres(root / "pg")  # durable, as on the Pi
        broker = LocalMosquitto(root / "mq")
        postgres.start()
        broker.start()
        health_port, api_port = free_port(), free_port()
        # make run's environment (tools/run_local.py), so the bench measures what ships.
        env = {
            **service_env(postgres.url, broker.url, str(api_port), root),
            "CW_HEALTH_PORT": str(health_port),
            "CW_API_HOST": "127.0.0.1",
            "CW_PERIOD_SECONDS": str(PERIOD_SECONDS),
        }
        if not journal:
            env["CW_JOURNAL_PATH"] = ""  # empty: no journal
        services: dict[str, subprocess.Popen[bytes]] = {}

        def spawn(label: str, module: str, extra: dict[str, str] | None = None) -> None:
            # Logs go nowhere: in the containers they go to Docker's log driver, not our processes.
            services[label] = subprocess.Popen(
                [sys.executable, "-m", module],
                env={**env, **(extra or {})},
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        try:
            spawn("aggregator", "citizenwatt_aggregator")
            spawn("api", "citizenwatt_api")
            wait_for_port(api_port, timeout=60)
            _wait_healthy(health_port)
            for i in range(SENSORS):
                if i:
                    # Spread over the period as independent sensors would be, not all at one instant
                    # (which would let every commit carry one reading of each).
                    time.sleep(PERIOD_SECONDS / SENSORS)
                spawn(
                    f"collector-{i}",
                    "citizenwatt_simulator",
                    {"CW_SENSOR_ID": f"sd{i}", "CW_SEED": str(i + 1), "CW_OUTBOX_PATH": str(root / f"outbox-{i}")},
                )
            _settle(postgres)
            # Steady state: every service connected, every sensor registered, the autovacuum
            # visits that follow _settle done.
            time.sleep(warmup)
            _checkpoint(postgres.url)
            roots: dict[str, list[int]] = {
                **_postgres_roles(_postmaster_pid(postgres)),
                "mosquitto": [broker.process.pid] if broker.process else [],
            }
            for label, child in services.items():
                # With their own children (the aggregator's writer process).
                roots.setdefault("collectors" if label.startswith("collector") else label, []).extend(
                    _children_of(child.pid)
                )
            window_start = time.time()
            wal_before = _wal_stats(postgres.url)
            tracer = Tracer(roots, root / "steady.trace")
            started = time.monotonic()
            time.sleep(seconds)  # the measurement window itself
            by_role = tracer.stop()
            elapsed = time.monotonic() - started
            window_end = time.time()
            commit_wait = float(env.get("CW_COMMIT_SECONDS", "60")) + 30 if journal else 30.0
            readings = _measured_between(postgres.url, window_start, window_end, commit_wait)
            wal = [after - ahead for after, ahead in zip(_wal_stats(postgres.url), wal_before, strict=True)]
            steady = _merge_postgres(by_role)
            tracer = Tracer({"postgres": _children_of(_postmaster_pid(postgres))}, root / "checkpoint.trace")
            _checkpoint(postgres.url)
            checkpoint = tracer.stop()
        finally:
            for child in services.values():
                child.terminate()
            for child in services.values():
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
            broker.stop()
            postgres.stop()
    labels = ["postgres", "mosquitto", "aggregator", "collectors", "api"]
    print(
        f"sdcard: {SENSORS} sensors at one reading per {PERIOD_SECONDS:g} s, {elapsed:.0f} s measured after"
        f" {warmup:.0f} s of warm-up, strace on every process (regular files only)"
        + (f"; aggregator with a journal, commits {env.get('CW_COMMIT_SECONDS', '60')} s apart" if journal else "")
    )
    if readings <= 0:
        print("  no reading stored during the window: nothing to divide by")
        return
    _print_table("steady state (window starts after a checkpoint)", steady, readings, labels)
    print("    PostgreSQL by process (bytes/reading, syncs/reading):")
    for label in sorted(k for k in by_role if k.startswith("postgres:")):
        entry = by_role[label]
        print(f"      {label:<24} {entry.bytes / readings:>10,.0f} {entry.syncs / readings:>8.3f}")
    print("    pg_stat_wal over the window, per reading (the count after the commits):")
    print("      " + ", ".join(f"{name} {value / readings:,.2f}" for name, value in zip(_WAL_LABELS, wal, strict=True)))
    _print_table("one checkpoint at the end of the window", checkpoint, readings, ["postgres"])
    both = dict(steady)
    pg = both.get("postgres", Usage())
    extra = checkpoint.get("postgres", Usage())
    both["postgres"] = Usage(
        pg.bytes + extra.bytes,
        pg.writes + extra.writes,
        pg.syncs + extra.syncs,
        pg.flush_hints + extra.flush_hints,
        pg.by_file + extra.by_file,
    )
    _print_table("steady state + that checkpoint (upper bound)", both, readings, labels)


if __name__ == "__main__":
    run()
