"""Every view of the page and of legacy clients, timed through a real api server, as history grows.

One sensor sending every 8 s, on plain PostgreSQL and on TimescaleDB with every chunk older than
three days compressed (what the policy does), at 1 month, 1 year and 3 years of history; then
4 sensors over a year. Each request goes over HTTP to `python -m citizenwatt_api` (uvicorn), with
a session cookie as the page has, or with login/password form fields as legacy scripts send them.
Figures are the median (p50) of CW_BENCH_RUNS runs after one warm-up, in ms.

CW_BENCH_HISTORY picks the sizes (default "1m,1y,3y,1y*4"; e.g. "1m" for a quick look).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg

from bench import floors, history
from tools.localstack import REPO, LocalPostgres, free_port, wait_for_port
from tools.run_local import MALLOC_ENV

END = 1_793_491_200.0  # 2026-11-01 00:00 UTC: "now" for every view
DAY = 86_400
SIZES = {"1m": 30, "1y": 365, "3y": 3 * 365}
CREDENTIALS = {"login": "owner", "password": "a long kitchen password"}


def _views() -> list[tuple[str, str, str]]:
    """(label, method, path): the page's views, then the fine steps up to the bucket cap."""
    zone = ZoneInfo(history.ZONE)
    now = datetime.fromtimestamp(END, zone)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day0 = (today - timedelta(days=1)).timestamp()
    month0 = today.replace(day=1).timestamp()  # local midnight, 1 October
    year0 = END - 365 * DAY
    legacy = "/api/1/get"
    return [
        ("now: last 30 min, 8-s steps (W)", "GET", f"{legacy}/watts/by_time/{END - 1800}/{END}/8"),
        ("day by hour (kWh)", "GET", f"{legacy}/kwatthours/by_time/{day0}/{day0 + DAY}/3600"),
        ("week by day (kWh)", "GET", f"{legacy}/kwatthours/by_time/{END - 7 * DAY}/{END}/86400"),
        ("month by day (kWh)", "GET", f"{legacy}/kwatthours/by_time/{month0}/{END}/86400"),
        ("month by day (euros)", "GET", f"{legacy}/euros/by_time/{month0}/{END}/86400"),
        ("year total (kWh)", "GET", f"{legacy}/kwatthours/by_time/{year0}/{END}"),
        ("year by 30 days (kWh)", "GET", f"{legacy}/kwatthours/by_time/{year0}/{END}/2592000"),
        ("year by day (kWh)", "GET", f"{legacy}/kwatthours/by_time/{year0}/{END}/86400"),
        ("v2: year by month", "GET", "/api/v2/energy?sensor=1&start=2025-11-01&bucket=month&count=12"),
        ("v2: year by day", "GET", "/api/v2/energy?sensor=1&start=2025-11-01&bucket=day&count=365"),
        ("v2: year by day, all sensors", "GET", "/api/v2/energy?sensor=all&start=2025-11-01&bucket=day&count=365"),
        ("day at 5 min (288, W)", "GET", f"{legacy}/watts/by_time/{day0}/{day0 + DAY}/300"),
        ("day at 1 min (1440, W)", "GET", f"{legacy}/watts/by_time/{day0}/{day0 + DAY}/60"),
        ("week at 5 min (2016, W)", "GET", f"{legacy}/watts/by_time/{END - 7 * DAY}/{END}/300"),
        # As a script asks it, from time.time(): every edge off the minute.
        (
            "week at 5 min, off the minute (2016, W)",
            "GET",
            f"{legacy}/watts/by_time/{END - 7 * DAY - 0.37}/{END - 0.37}/300",
        ),
        (
            "year at the cap, off the minute (10000, kWh)",
            "GET",
            f"{legacy}/kwatthours/by_time/{END - 365 * DAY - 0.37}/{END - 0.37}/3153.6",
        ),
        ("22.2 h at 8 s (10000, W)", "GET", f"{legacy}/watts/by_time/{END - 80_000}/{END}/8"),
        ("6.9 days at 1 min (10000, W)", "GET", f"{legacy}/watts/by_time/{END - 600_000}/{END}/60"),
        (
            "6.9 days at 1 min, off the minute (10000, W)",
            "GET",
            f"{legacy}/watts/by_time/{END - 600_000 - 0.37}/{END - 0.37}/60",
        ),
        ("35 days at 5 min (10000, W)", "GET", f"{legacy}/watts/by_time/{END - 35 * DAY}/{END}/302.4"),
        ("newest 100 measures by id", "GET", f"{legacy}/watts/by_id/-100/0"),
        ("  the same, form-field POST", "FORM", f"{legacy}/watts/by_id/-100/0"),
        ("month by day, form-field POST", "FORM", f"{legacy}/kwatthours/by_time/{month0}/{END}/86400"),
    ]


class ApiServer:
    """`python -m citizenwatt_api` on a free port, as the README starts it."""

    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        env = {
            **MALLOC_ENV,
            "PYTHONMALLOC": "malloc",  # the api as its image and make run start it
            **os.environ,
            "CW_DATABASE_URL": database_url,
            "CW_API_PORT": str(self.port),
            "CW_API_HOST": "127.0.0.1",
            "CW_API_PUBLISH_RADIO_CONFIG": "false",
            "CW_ADMIN_LOGIN": CREDENTIALS["login"],
            "CW_ADMIN_PASSWORD": CREDENTIALS["password"],
            "CW_LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "citizenwatt_api"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=60)
        self.session = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120)
        self.anonymous = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120)
        answer = self.session.post("/api/v2/login", json=CREDENTIALS)
        answer.raise_for_status()

    def send(self, method: str, path: str) -> httpx.Response:
        if method == "FORM":
            return self.anonymous.post(path, data=CREDENTIALS)
        return self.session.request(method, path)

    def close(self) -> None:
        self.session.close()
        self.anonymous.close()
        self.process.terminate()
        self.process.wait(30)


def _time_views(server: ApiServer, runs: int) -> list[float]:
    medians = []
    for _, method, path in _views():
        answer = server.send(method, path)  # warm-up: caches, prepared statements, the password memo
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:200]}")
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            server.send(method, path).raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
        medians.append(statistics.median(samples))
    return medians


def _compress_old_chunks(url: str) -> None:
    """What the compression policy does three days after a chunk's end, done now."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('readings', older_than => %s) c",
            (datetime.fromtimestamp(END - 3 * DAY, ZoneInfo("UTC")),),
        )
        conn.execute("VACUUM ANALYZE")


def _database_bytes(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0


def _plan(spec: str) -> list[tuple[int, list[int]]]:
    """ "1m,1y,3y,1y*4" -> [(1, [30, 365, 1095]), (4, [365])]: sensors, then sizes grown in turn."""
    plan: dict[int, list[int]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        size, _, sensors = item.partition("*")
        plan.setdefault(int(sensors or 1), []).append(SIZES[size])
    return [(sensors, sorted(days)) for sensors, days in plan.items()]


def run() -> None:
    from bench.__main__ import _timescaledb_tree
    from citizenwatt_common.schema import migrate

    runs = int(os.environ.get("CW_BENCH_RUNS", "5"))
    plan = _plan(os.environ.get("CW_BENCH_HISTORY", "1m,1y,3y,1y*4"))
    tree, why = _timescaledb_tree()
    backends: list[tuple[str, Callable[[Path], LocalPostgres]]] = [
        ("plain", lambda folder: LocalPostgres(folder, durable=False))
    ]
    if tree is not None:
        backends.append(
            ("compressed", lambda folder: LocalPostgres(folder, durable=False, bin_dir=tree, timescaledb=True))
        )
    else:
        print(f"queries: TimescaleDB unavailable ({why}): plain PostgreSQL only")
    columns: dict[str, list[float]] = {}
    floor_columns: dict[str, dict[str, tuple[float, str]]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for sensors, days_list in plan:
        for name, make in backends:
            with tempfile.TemporaryDirectory(prefix="cw-bench-queries-") as folder:
                server = make(Path(folder) / "pg")
                server.start()
                api = None
                try:
                    with psycopg.connect(server.url, autocommit=True) as conn:
                        migrate(conn, history.MAX_GAP, compress_after_days=3 if name == "compressed" else 0)
                        if name == "compressed":
                            conn.execute(
                                "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
                                " WHERE proc_name = 'policy_compression'"
                            )
                        ids = history.prepare(conn, sensors)
                    grown = END
                    for days in days_list:
                        started = time.perf_counter()
                        with psycopg.connect(server.url, autocommit=True) as conn:
                            history.grow(conn, ids, END - days * DAY, grown)
                            conn.execute("VACUUM ANALYZE")
                        grown = END - days * DAY
                        if name == "compressed":
                            _compress_old_chunks(server.url)
                        label = f"{name} {days}d" + (f" x{sensors}" if sensors > 1 else "")
                        with psycopg.connect(server.url, autocommit=True) as conn:
                            row = conn.execute("SELECT count(*) FROM readings").fetchone()
                        sizes[label] = (int(row[0]) if row else 0, _database_bytes(server.url))
                        print(
                            f"queries: {label}: {sizes[label][0]:,} readings, database {sizes[label][1] / 1e6:.0f} MB"
                            f" (loaded in {time.perf_counter() - started:.0f} s)",
                            flush=True,
                        )
                        if api is None:
                            api = ApiServer(server.url)
                        columns[label] = _time_views(api, runs)
                        floor_columns[label] = floors.measure(server.url, ids[0], END, runs)
                finally:
                    if api is not None:
                        api.close()
                    server.stop("immediate")
    labels = list(columns)
    print(f"queries: p50 of {runs} requests over HTTP, ms (one sensor every {history.PERIOD:g} s; x4: four sensors)")
    width = max(len(view) for view, _, _ in _views()) + 2
    print(f"  {'view':<{width}}" + "".join(f"{label:>20}" for label in labels))
    for index, (view, _, _) in enumerate(_views()):
        print(f"  {view:<{width}}" + "".join(f"{columns[label][index]:20.1f}" for label in labels))
    print(f"  {'database size, MB':<{width}}" + "".join(f"{sizes[label][1] / 1e6:20.0f}" for label in labels))
    print(f"queries: floors under a request at the bucket cap, best of {runs}, ms (bench/floors.py)")
    names = list(floor_columns[labels[0]]) if labels else []
    cells = {
        (name, label): f"{floor_columns[label][name][0]:.1f} ({floor_columns[label][name][1]})"
        for name in names
        for label in labels
    }
    # Columns as wide as the widest figure: the notes differ in length ("3.20 us a key").
    name_width = max((len(name) for name in names), default=0) + 2
    cell_width = max((len(cell) for cell in cells.values()), default=0) + 2
    for name in names:
        print(f"  {name:<{name_width}}" + "".join(f"{cells[name, label]:>{cell_width}}" for label in labels))


if __name__ == "__main__":
    run()
