"""What one request can cost at the API's limits: CPU seconds of the api process and of the
database, wall time, and the api's memory, on a year of 8-s readings of one sensor (plain
PostgreSQL, or compressed TimescaleDB with ``CW_BENCH_COST_STORAGE=compressed``). The bound the
README states for "any request within the limits" comes from here.

Each request runs alone (after one warm-up of the same kind), so its CPU is what it costs, not
what the machine's load makes of it: CPU time is read from /proc for the api process and for
every process of the PostgreSQL server before and after, and the api's resident memory (VmRSS)
is sampled every 20 ms during the request, its peak printed with what is left 2 s later. The
bytes of temporary files PostgreSQL wrote for it (sorts and hashes beyond work_mem: SD-card
writes for a read) come from pg_stat_database.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from bench import history
from bench.queries import DAY, END, ApiServer
from tools.localstack import LocalPostgres

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _postgres_pids(postmaster: int) -> list[int]:
    """The postmaster and its children (backends, background workers)."""
    pids = [postmaster]
    for task in Path(f"/proc/{postmaster}/task").iterdir():
        pids += [int(child) for child in (task / "children").read_text().split()]
    return pids


def _database_cpu(postmaster: int) -> float:
    total = 0.0
    for pid in _postgres_pids(postmaster):
        with contextlib.suppress(OSError):  # a backend that ended meanwhile
            total += _cpu_seconds(pid)
    return total


def _temp_bytes(url: str) -> int:
    # Read 2 s after the request: a backend reports its counters when idle, at most once a second.
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT sum(temp_bytes)::bigint FROM pg_stat_database").fetchone()
    return int(row[0] or 0) if row else 0


def _requests() -> list[tuple[str, str, str]]:
    zone = ZoneInfo(history.ZONE)
    today = datetime.fromtimestamp(END, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    year0 = END - 365 * DAY
    first = (today - timedelta(days=365)).date().isoformat()
    legacy = "/api/1/get"
    return [
        ("year at the bucket cap (10 000 x 52.6 min, W)", "GET", f"{legacy}/watts/by_time/{year0}/{END}/3153.6"),
        ("35 days at 5 min, unaligned (10 000, W)", "GET", f"{legacy}/watts/by_time/{END - 35 * DAY}/{END}/302.4"),
        ("6.9 days at 1 min (10 000, W)", "GET", f"{legacy}/watts/by_time/{END - 600_000}/{END}/60"),
        ("22.2 h at 8 s (10 000, W)", "GET", f"{legacy}/watts/by_time/{END - 80_000}/{END}/8"),
        ("by_id: 500 measures (the cap)", "GET", f"{legacy}/watts/by_id/-500/-1"),
        ("v2 costs: a year by hour (8 784)", "GET", f"/api/v2/costs?sensor=all&start={first}&bucket=hour&count=8784"),
        ("v2 energy: 1 000 hours (the cap)", "GET", f"/api/v2/energy?sensor=all&start={first}&bucket=hour&count=1000"),
        ("energy.csv: a year by hour", "GET", f"/api/v2/export/energy.csv?start={first}&bucket=hour&count=8784"),
        ("readings.csv: a year (3.9 M rows)", "GET", f"/api/v2/export/readings.csv?start={first}&end={today.date()}"),
    ]


def run() -> None:
    from bench.__main__ import _timescaledb_tree
    from bench.queries import _compress_old_chunks
    from citizenwatt_common.schema import migrate

    # CW_BENCH_COST_STORAGE=compressed: TimescaleDB with every chunk older than 3 days compressed,
    # as the Pi's stack keeps its readings (default: plain PostgreSQL, as `make run`).
    compressed = os.environ.get("CW_BENCH_COST_STORAGE", "plain") == "compressed"
    tree, why = _timescaledb_tree() if compressed else (None, "")
    if compressed and tree is None:
        print(f"request-cost: TimescaleDB unavailable ({why})")
        return
    with tempfile.TemporaryDirectory(prefix="cw-bench-cost-") as folder:
        server = LocalPostgres(Path(folder) / "pg", durable=False, bin_dir=tree, timescaledb=compressed)
        server.start()
        api = None
        try:
            with psycopg.connect(server.url, autocommit=True) as conn:
                migrate(conn, history.MAX_GAP, compress_after_days=3 if compressed else 0)
                if compressed:  # compressed below, at once: not by the policy's job in the middle
                    conn.execute(
                        "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
                        " WHERE proc_name = 'policy_compression'"
                    )
                ids = history.prepare(conn, 1)
                started = time.perf_counter()
                history.grow(conn, ids, END - 365 * DAY, END)
                conn.execute("VACUUM ANALYZE")
                rows = conn.execute("SELECT count(*) FROM readings").fetchone()
            if compressed:
                _compress_old_chunks(server.url)
            storage = "TimescaleDB, compressed" if compressed else "plain PostgreSQL"
            print(
                f"request-cost: {rows[0] if rows else 0:,} readings loaded in {time.perf_counter() - started:.0f} s"
                f" ({storage})"
            )
            postmaster = server.postmaster_pid()
            assert postmaster is not None
            api = ApiServer(server.url)
            pid = api.process.pid
            print(f"request-cost: api idle {_rss_mb(pid):.1f} MB")
            print(
                "| request | answer | wall s | api CPU s | database CPU s | api RSS peak / 2 s after (MB)"
                " | temporary files (MB) |"
            )
            print("|---|---|---|---|---|---|---|")
            worst = 0.0
            for label, method, path in _requests():
                api.send(method, path)  # warm-up
                time.sleep(1.0)  # let the warm-up's memory settle before the baseline
                peak = [_rss_mb(pid)]
                done = threading.Event()

                def sample(peak: list[float] = peak, done: threading.Event = done) -> None:
                    while not done.wait(0.02):
                        peak[0] = max(peak[0], _rss_mb(pid))

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                temp = _temp_bytes(server.url)
                api_cpu, db_cpu, wall = _cpu_seconds(pid), _database_cpu(postmaster), time.perf_counter()
                answer = api.send(method, path)
                wall = time.perf_counter() - wall
                api_cpu, db_cpu = _cpu_seconds(pid) - api_cpu, _database_cpu(postmaster) - db_cpu
                done.set()
                sampler.join()
                time.sleep(2.0)
                temp = _temp_bytes(server.url) - temp
                worst = max(worst, api_cpu + db_cpu)
                print(
                    f"| {label} | {answer.status_code}, {len(answer.content) / 1e6:.2f} MB | {wall:.2f} |"
                    f" {api_cpu:.2f} | {db_cpu:.2f} | {peak[0]:.1f} / {_rss_mb(pid):.1f} | {temp / 1e6:.1f} |",
                    flush=True,
                )
            print(f"request-cost: the costliest request took {worst:.2f} s of CPU (api + database)")
        finally:
            if api is not None:
                api.close()
            server.stop()
