"""`make bench`: prints figures, asserts nothing. Runs on the same real parts as the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


if __name__ == "__main__":
    bench_energy_arithmetic()
    bench_aggregator_throughput()
    bench_sigkill_recovery()
    bench_live_latency()
