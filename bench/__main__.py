"""`make bench`: prints figures, asserts nothing. Runs on the same real parts as the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from citizenwatt_common.energy import Sample, segments_of, split_by_bucket
from tools.localstack import REPO, LocalMosquitto, LocalPostgres


def bench_energy_arithmetic(samples: int = 200_000) -> None:
    trace = [Sample(1_700_000_000 + 8 * i, 100 + (i % 50), i % 3 == 0) for i in range(samples)]
    start = time.perf_counter()
    buckets = split_by_bucket(segments_of(trace, 300))
    elapsed = time.perf_counter() - start
    print(
        f"energy: {samples} samples -> {len(buckets)} rollup buckets in {elapsed * 1000:.0f} ms "
        f"({samples / elapsed:,.0f} samples/s)"
    )


def bench_aggregator_throughput(readings: int = 20_000) -> None:
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as folder:
        root = Path(folder)
        postgres = LocalPostgres(root / "pg")  # durable: fsync on, as on a Pi
        broker = LocalMosquitto(root / "mq")
        postgres.start()
        broker.start()
        env = {**os.environ, "CW_DATABASE_URL": postgres.url, "CW_MQTT_URL": broker.url, "CW_HEALTH_PORT": "0"}
        aggregator = subprocess.Popen(
            [sys.executable, "-m", "citizenwatt_aggregator"], env=env, cwd=REPO, stderr=subprocess.DEVNULL
        )
        try:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench", protocol=paho.MQTTv5)
            client.max_inflight_messages_set(200)
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            _wait_rows(postgres.url, "SELECT count(*) FROM pg_tables WHERE tablename = 'readings'", 1)
            time.sleep(1)  # let the aggregator subscribe (bench only; tests await its status topic)
            sensors = 4
            t0 = 1_790_000_000.0
            start = time.perf_counter()
            last = None
            for i in range(readings):
                sensor = f"bench-{i % sensors}"
                payload = {
                    "v": 1,
                    "sensor": sensor,
                    "kind": "simulator",
                    "ts": t0 + (i // sensors) * 1.0,
                    "power": 100.0 + i % 97,
                    "seq": i,
                }
                last = client.publish(f"citizenwatt/{sensor}/reading", json.dumps(payload), qos=1)
            assert last is not None
            last.wait_for_publish(60)
            published = time.perf_counter() - start
            _wait_rows(postgres.url, "SELECT count(*) FROM readings", readings)
            stored = time.perf_counter() - start
            print(
                f"aggregator: {readings} readings from {sensors} sensors published in {published:.1f} s, "
                f"all stored with rollups in {stored:.1f} s ({readings / stored:,.0f} readings/s, fsync on)"
            )
            with psycopg.connect(postgres.url) as conn:
                q0 = time.perf_counter()
                conn.execute("SELECT sum(day_wh + night_wh) FROM energy_rollups WHERE sensor_id = 1").fetchone()
                q1 = time.perf_counter()
                rows = conn.execute("SELECT count(*) FROM energy_rollups").fetchone()
            print(
                f"rollups: {rows[0] if rows else 0} rows; one sensor's total from rollups in {(q1 - q0) * 1000:.1f} ms"
            )
            client.loop_stop()
        finally:
            aggregator.terminate()
            aggregator.wait(30)
            broker.stop()
            postgres.stop()


def bench_sigkill_recovery(kills: int = 5, seconds_between: float = 6.0) -> None:
    """The simulator at 10 readings/s while the aggregator is SIGKILLed repeatedly: count what survived."""
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as folder:
        root = Path(folder)
        postgres, broker = LocalPostgres(root / "pg"), LocalMosquitto(root / "mq")
        postgres.start()
        broker.start()
        env = {
            **os.environ,
            "CW_DATABASE_URL": postgres.url,
            "CW_MQTT_URL": broker.url,
            "CW_HEALTH_PORT": "0",
            "CW_SENSOR_ID": "kill-test",
            "CW_PERIOD_SECONDS": "0.1",
        }
        seen: set[int] = set()
        observer = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-observer", protocol=paho.MQTTv5)
        observer.on_message = lambda c, u, m: seen.add(json.loads(m.payload)["seq"])
        observer.connect("127.0.0.1", broker.port)
        observer.subscribe("citizenwatt/kill-test/reading", qos=1)
        observer.loop_start()

        def spawn(module: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen([sys.executable, "-m", module], env=env, cwd=REPO, stderr=subprocess.DEVNULL)

        aggregator = spawn("citizenwatt_aggregator")
        _wait_rows(postgres.url, "SELECT count(*) FROM pg_tables WHERE tablename = 'readings'", 1)
        time.sleep(1)
        simulator = spawn("citizenwatt_simulator")
        for _ in range(kills):
            time.sleep(seconds_between)
            aggregator.kill()
            aggregator.wait()
            aggregator = spawn("citizenwatt_aggregator")
        time.sleep(seconds_between)
        simulator.terminate()
        simulator.wait(30)
        time.sleep(1)
        published = len(seen)
        start = time.perf_counter()
        _wait_rows(postgres.url, "SELECT count(*) FROM readings", published, timeout=120)
        caught_up = time.perf_counter() - start
        with psycopg.connect(postgres.url) as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT seq), max(seq) - min(seq) + 1 FROM readings").fetchone()
        assert row is not None
        stored, distinct, span = (int(v) for v in row)
        print(
            f"sigkill: aggregator killed {kills}x at 10 readings/s: published {published}, stored {stored}, "
            f"distinct seq {distinct}, seq span {span} (lost {published - stored}, duplicates {stored - distinct},"
            f" gaps {span - stored}); caught up {caught_up:.1f} s after the simulator stopped"
        )
        aggregator.terminate()
        aggregator.wait(30)
        observer.loop_stop()
        broker.stop()
        postgres.stop()


def bench_live_latency(events: int = 30) -> None:
    """Seconds from a reading's measurement to its server-sent event reaching a client of the page."""
    import statistics

    import httpx

    from tools.localstack import free_port, wait_for_port

    with tempfile.TemporaryDirectory(prefix="cw-bench-") as folder:
        root = Path(folder)
        postgres, broker = LocalPostgres(root / "pg"), LocalMosquitto(root / "mq")
        postgres.start()
        broker.start()
        port = free_port()
        env = {
            **os.environ,
            "CW_DATABASE_URL": postgres.url,
            "CW_MQTT_URL": broker.url,
            "CW_HEALTH_PORT": "0",
            "CW_API_PORT": str(port),
            "CW_API_HOST": "127.0.0.1",
            "CW_ADMIN_LOGIN": "bench",
            "CW_ADMIN_PASSWORD": "bench-password",
            "CW_SENSOR_ID": "live",
            "CW_PERIOD_SECONDS": "0.5",
        }
        children = [
            subprocess.Popen(
                [sys.executable, "-m", module], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for module in ("citizenwatt_aggregator", "citizenwatt_api", "citizenwatt_simulator")
        ]
        wait_for_port(port, timeout=60)
        delays: list[float] = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            client.post("/api/v2/login", json={"login": "bench", "password": "bench-password"}).raise_for_status()
            with client.stream("GET", "/api/v2/live") as stream:
                for line in stream.iter_lines():
                    if line.startswith("data:"):
                        delays.append(time.time() - json.loads(line[5:])["ts"])
                        if len(delays) > events:
                            break
        delays = delays[1:]  # the first event is the newest stored reading, sent on connection
        print(
            f"live: measurement -> aggregator -> database -> /api/v2/live event, {len(delays)} readings at 2/s: "
            f"median {statistics.median(delays):.2f} s, max {max(delays):.2f} s"
        )
        for child in children:
            child.terminate()
            child.wait(30)
        broker.stop()
        postgres.stop()


def _timescaledb_tree() -> tuple[Path | None, str]:
    """The private PostgreSQL tree with TimescaleDB (built once, then cached), or why not."""
    result = subprocess.run(
        ["bash", str(REPO / "tools" / "build-timescaledb.sh")], capture_output=True, text=True, check=False
    )
    if result.returncode == 0 and result.stdout.strip():
        return Path(result.stdout.strip().splitlines()[-1]), ""
    return None, " | ".join(result.stderr.strip().splitlines()[-3:]) or f"exit code {result.returncode}"


def bench_storage(days: int = 30, period: float = 8.0, runs: int = 5) -> None:
    """Bytes per stored reading, and the API's queries, on a plain table, a TimescaleDB hypertable,
    and the same hypertable once every chunk is compressed (what the policy does to old chunks).

    One sensor, ``days`` of readings every ``period`` seconds from the simulator's household (power
    with noise, voltage, current, seq: what a collector sends), stored through store.py with their
    rollups. Sizes include indexes. Servers run with fsync off: this measures space and reads.
    """
    from zoneinfo import ZoneInfo

    from citizenwatt_api import queries
    from citizenwatt_common.contract import Reading
    from citizenwatt_common.schema import migrate
    from citizenwatt_common.store import delete_readings, load_household, store_readings
    from citizenwatt_simulator.household import SimulatedHousehold

    end = 1_793_491_200.0  # 2026-11-01 00:00 UTC
    start = end - days * 86_400
    house = SimulatedHousehold(seed=1)
    readings: list[Reading] = []
    for k in range(int(days * 86_400 / period)):
        ts = start + k * period
        power = house.power_at(ts)
        readings.append(
            Reading(
                sensor="house",
                kind="simulator",
                ts=ts,
                power=power,
                voltage=230.0,
                current=round(power / 230, 3),
                seq=k,
            )
        )
    zone = ZoneInfo("Europe/Paris")
    lo, hi = start + 1234.5, end - 777.7  # unaligned on the 15-min rollups at both ends
    middle = start + 15 * 86_400

    def rolled_back(action: Any) -> Any:
        def run(conn: psycopg.Connection[Any]) -> Any:
            with conn.transaction():
                result = action(conn)
                raise psycopg.Rollback()
            return result

        return run

    def delete_an_hour(conn: psycopg.Connection[Any]) -> int:
        found = queries.measures_between(conn, 1, middle, middle + 3600)
        return delete_readings(conn, 1, [m.id for m in found], between=(found[0].timestamp, found[-1].timestamp))

    def late_reading(conn: psycopg.Connection[Any]) -> int:
        late = Reading(sensor="house", kind="simulator", ts=middle + 4.0, power=500.0)
        return store_readings(conn, [late], load_household(conn), zone).inserted

    cases: list[tuple[str, Any]] = [
        ("energy of 30 days, unaligned ends", lambda c: queries.energy_in_intervals(c, 1, [(lo, hi)], 300.0)),
        (
            "30 daily buckets, unaligned",
            lambda c: queries.energy_in_intervals(
                c, 1, [(lo + d * 86_400, min(lo + (d + 1) * 86_400, hi)) for d in range(30)], 300.0
            ),
        ),
        (
            "720 hourly buckets, unaligned",
            lambda c: queries.energy_in_intervals(
                c, 1, [(lo + h * 3600, min(lo + (h + 1) * 3600, hi)) for h in range(720)], 300.0
            ),
        ),
        ("last 10 minutes of measures", lambda c: queries.measures_between(c, 1, end - 600, end)),
        ("one measure by id (mid-month)", lambda c: queries.measure_by_id(c, 1, len(readings) // 2)),
        ("newest measure (by_id/-1)", lambda c: queries.measure_by_id(c, 1, -1)),
        ("500 measures by id", lambda c: queries.measures_by_ids(c, 1, len(readings) // 2, len(readings) // 2 + 500)),
        ("a late reading mid-month (rolled back)", rolled_back(late_reading)),
        ("delete an hour mid-month (rolled back)", rolled_back(delete_an_hour)),
    ]

    def load(url: str, timescaledb: bool) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, 300.0, compress_after_days=3)
            if timescaledb:
                # The bench compresses at a moment of its choosing, not when the policy wakes up.
                conn.execute(
                    "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
                    " WHERE proc_name = 'policy_compression'"
                )
            household = load_household(conn)
            per_day = int(86_400 / period)
            for first in range(0, len(readings), per_day):
                with conn.transaction():
                    store_readings(conn, readings[first : first + per_day], household, zone)
            conn.execute("VACUUM ANALYZE")

    def size(url: str, timescaledb: bool) -> int:
        with psycopg.connect(url, autocommit=True) as conn:
            sql = "SELECT hypertable_size('readings')" if timescaledb else "SELECT pg_total_relation_size('readings')"
            row = conn.execute(sql).fetchone()
            return int(row[0]) if row else 0

    def times(url: str) -> list[float]:
        medians = []
        with psycopg.connect(url, autocommit=True) as conn:
            for _, case in cases:
                case(conn)  # warm the caches and psycopg's prepared statements
                elapsed = []
                for _ in range(runs):
                    begin = time.perf_counter()
                    case(conn)
                    elapsed.append(time.perf_counter() - begin)
                medians.append(sorted(elapsed)[len(elapsed) // 2] * 1000)
        return medians

    tree, why = _timescaledb_tree()
    n = len(readings)
    print(f"storage: {days} days of {period:g}-s readings of one sensor ({n:,} readings), sizes with indexes")
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as folder:
        root = Path(folder)
        plain = LocalPostgres(root / "plain", durable=False)
        plain.start()
        try:
            load(plain.url, timescaledb=False)
            plain_size = size(plain.url, timescaledb=False)
            print(f"storage: plain table             {plain_size / n:6.1f} bytes/reading ({plain_size / 1e6:.1f} MB)")
            columns = {"plain": times(plain.url)}
        finally:
            plain.stop("immediate")
        if tree is None:
            print(f"storage: TimescaleDB unavailable ({why}): plain table only")
        else:
            hyper = LocalPostgres(root / "timescaledb", durable=False, bin_dir=tree, timescaledb=True)
            hyper.start()
            try:
                load(hyper.url, timescaledb=True)
                hyper_size = size(hyper.url, timescaledb=True)
                print(
                    f"storage: TimescaleDB hypertable   {hyper_size / n:6.1f} bytes/reading ({hyper_size / 1e6:.1f} MB)"
                )
                columns["hypertable"] = times(hyper.url)
                with psycopg.connect(hyper.url, autocommit=True) as conn:
                    begin = time.perf_counter()
                    row = conn.execute("SELECT count(compress_chunk(c)) FROM show_chunks('readings') c").fetchone()
                    took = time.perf_counter() - begin
                    conn.execute("VACUUM ANALYZE")
                compressed = size(hyper.url, timescaledb=True)
                print(
                    f"storage: compressed hypertable   {compressed / n:6.1f} bytes/reading ({compressed / 1e6:.1f} MB),"
                    f" {hyper_size / compressed:.1f}x smaller; {row[0] if row else 0} chunks compressed in {took:.1f} s"
                )
                columns["compressed"] = times(hyper.url)
            finally:
                hyper.stop("immediate")
    names = list(columns)
    print(f"  {f'query (median of {runs} runs, ms)':<40}" + "".join(f"{name:>12}" for name in names))
    for index, (label, _) in enumerate(cases):
        print(f"  {label:<40}" + "".join(f"{columns[name][index]:12.1f}" for name in names))


def bench_legacy_form_login(requests: int = 40) -> None:
    """A legacy script's POST with login/password form fields against the same POST with a session
    cookie: what the verified-password memo saves (the first form POST pays scrypt once)."""
    import statistics

    from fastapi.testclient import TestClient

    from citizenwatt_api.app import create_app
    from citizenwatt_api.settings import ApiSettings

    credentials = {"login": "owner", "password": "a long kitchen password"}
    with tempfile.TemporaryDirectory(prefix="cw-bench-login-") as folder:
        server = LocalPostgres(Path(folder) / "pg", durable=False)
        server.start()
        try:
            settings = ApiSettings(database_url=server.url, ui_dir="/nonexistent", api_publish_radio_config=False)
            with TestClient(create_app(settings)) as client:
                client.post("/api/v2/install", json=credentials)

                def p50_ms(send: Any) -> float:
                    samples = []
                    for _ in range(requests):
                        started = time.perf_counter()
                        assert send().status_code == 200
                        samples.append((time.perf_counter() - started) * 1000)
                    return statistics.median(samples)

                session = p50_ms(lambda: client.post("/api/sensors"))
                anonymous = TestClient(client.app)
                started = time.perf_counter()
                anonymous.post("/api/sensors", data=credentials)
                first = (time.perf_counter() - started) * 1000
                form = p50_ms(lambda: anonymous.post("/api/sensors", data=credentials))
        finally:
            server.stop("immediate")
    print(
        f"legacy POST /api/sensors, p50 of {requests}: session {session:.2f} ms, login/password fields "
        f"{form:.2f} ms (+{form - session:.2f} ms); the first form POST (full scrypt check) {first:.1f} ms"
    )


def _wait_rows(url: str, sql: str, expected: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url) as conn:
                row = conn.execute(sql).fetchone()
                if row and int(row[0]) >= expected:
                    return
        except psycopg.Error:
            pass
        time.sleep(0.1)
    raise TimeoutError(sql)


def main() -> None:
    """Every benchmark, or those named in CW_BENCH (comma-separated), in this order."""
    from bench import compose_memory, ingest, memory, queries, request_cost, sdcard

    benches: dict[str, Any] = {
        "login": bench_legacy_form_login,
        "queries": queries.run,
        "request-cost": request_cost.run,
        "storage": bench_storage,
        "energy": bench_energy_arithmetic,
        "ingest": ingest.run,
        "aggregator": bench_aggregator_throughput,
        "sigkill": bench_sigkill_recovery,
        "live": bench_live_latency,
        "sdcard": sdcard.run,
        "memory": memory.run,
        "compose-memory": compose_memory.run,
    }
    chosen = [name.strip() for name in os.environ.get("CW_BENCH", ",".join(benches)).split(",") if name.strip()]
    unknown = [name for name in chosen if name not in benches]
    if unknown:
        sys.exit(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(benches)}")
    for name in chosen:
        started = time.perf_counter()
        benches[name]()
        print(f"[{name}: {time.perf_counter() - started:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
