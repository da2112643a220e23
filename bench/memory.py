"""Memory of the whole stack, idle and under a sustained ingest (issue 11, item 4).

``run()`` starts the stack as ``make run`` does (PostgreSQL and Mosquitto from tools/localstack.py,
the services with tools/run_local.py's environment, on free ports and in a temporary folder),
waits until the simulator's readings are stored and the stack is idle, and prints each process's
memory. Then it publishes valid readings at a steady rate (QoS 1, 20 sensors), with one page
following ``/api/v2/live`` and asking ``/api/v2/sensors`` every few seconds, samples every process
meanwhile, and prints first, last and highest figures and the growth slope per process.

Two figures per process, from ``/proc/<pid>/smaps_rollup``:

- RSS, what the issue's targets are checked against (stack idle <= 200 MB summed, each collector
  <= 30 MB). For PostgreSQL it is the sum over the postmaster and all its children, so the shared
  buffers a process touched count once per process that touched them: an upper bound.
- PSS, each shared page divided among the processes mapping it: what the processes really cost the
  machine together (sums of PSS add up; sums of RSS overcount).

Settings (environment): CW_BENCH_MEMORY_SECONDS (load duration, default 120), CW_BENCH_MEMORY_RATE
(readings/s, default 200), CW_BENCH_MEMORY_SAMPLE_SECONDS (default 5), CW_BENCH_MEMORY_SETTLE_SECONDS
(idle wait after the first stored reading, default 150: the api's pool shrinks back to one
connection after 60 s unused), CW_BENCH_MEMORY_COLLECTORS (0: skip the
hardware collectors' idle figures), CW_BENCH_MEMORY_COLLECTOR_SECONDS (how long they run before
being measured, default 15). ``python -m bench.memory`` runs it alone.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from tools.localstack import LocalMosquitto, LocalPostgres, free_port, wait_for_port
from tools.run_local import service_env, spawn, wait_healthy

RSS_TARGET_MB = 200.0
COLLECTOR_TARGET_MB = 30.0
LOAD_SENSORS = 20
_ADMIN = ("bench", "bench-memory-password")
# The hardware collectors, started without their device: each retries with backoff, which is how
# one idles on a Pi whose sensor is unplugged; what it costs once connected differs by the device
# library's own buffers only.
_COLLECTORS = {
    "collector-nrf24": ("citizenwatt_nrf24", {"CW_NRF24_CE_PIN": "22"}),
    "collector-ina219": ("citizenwatt_ina219", {}),
    "collector-acs712": ("citizenwatt_acs712", {"CW_ACS712_PORT": "/dev/nonexistent-citizenwatt-bench"}),
    "collector-awox": ("citizenwatt_awox", {"CW_AWOX_ADDRESS": "00:11:22:33:44:55"}),
}


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class Usage:
    rss_kb: int
    pss_kb: int

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.rss_kb + other.rss_kb, self.pss_kb + other.pss_kb)


ZERO = Usage(0, 0)


def process_usage(pid: int) -> Usage | None:
    """RSS and PSS of one process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("Rss:", "Pss:"):
            values[parts[0]] = int(parts[1])
    if "Rss:" not in values:
        return None  # a zombie, or a kernel without smaps_rollup
    return Usage(values["Rss:"], values.get("Pss:", values["Rss:"]))


def children_of(pid: int) -> list[int]:
    """Direct children, from /proc (PostgreSQL's backends and auxiliary processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def group_usage(pids: list[int]) -> tuple[Usage, int]:
    """Summed usage of the processes still alive, and how many there were."""
    total, alive = ZERO, 0
    for pid in pids:
        usage = process_usage(pid)
        if usage is not None:
            total, alive = total + usage, alive + 1
    return total, alive


def postmaster_pid(data: Path) -> int:
    return int((data / "postmaster.pid").read_text().split()[0])


@dataclass
class Series:
    """One process's samples: (seconds since the load started, usage)."""

    points: list[tuple[float, Usage]] = field(default_factory=list)

    def slope_mb_per_hour(self, since_fraction: float = 0.0) -> float:
        """Least-squares slope of RSS over the samples from ``since_fraction`` of the run on."""
        if not self.points:
            return 0.0
        t_end = self.points[-1][0]
        pts = [(t, u.rss_kb / 1024) for t, u in self.points if t >= since_fraction * t_end]
        if len(pts) < 2:
            return 0.0
        mean_t = sum(t for t, _ in pts) / len(pts)
        mean_m = sum(m for _, m in pts) / len(pts)
        var = sum((t - mean_t) ** 2 for t, _ in pts)
        if var == 0:
            return 0.0
        return sum((t - mean_t) * (m - mean_m) for t, m in pts) / var * 3600


class Stack:
    """PostgreSQL, Mosquitto, the aggregator, the api and the simulator, as ``make run`` starts them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.postgres = LocalPostgres(root / "postgres")  # durable, as make run's
        self.broker = LocalMosquitto(root / "mosquitto")
        self.api_port = free_port()
        self.health_port = free_port()
        self.services: dict[str, subprocess.Popen[bytes]] = {}
        self.env: dict[str, str] = {}

    def start(self) -> None:
        self.postgres.start()
        self.broker.start()
        self.env = {
            **service_env(self.postgres.url, self.broker.url, str(self.api_port), self.root),
            "CW_HEALTH_PORT": str(self.health_port),
            "CW_ADMIN_LOGIN": _ADMIN[0],
            "CW_ADMIN_PASSWORD": _ADMIN[1],
        }
        self.start_service("aggregator", "citizenwatt_aggregator", self.env)
        self.start_service("api", "citizenwatt_api", self.env)
        wait_for_port(self.api_port, timeout=60)
        wait_healthy(f"http://127.0.0.1:{self.health_port}/healthz")
        sim_env = {"CW_SENSOR_ID": "simulator", "CW_OUTBOX_PATH": str(self.root / "outbox-simulator.sqlite")}
        self.start_service("simulator", "citizenwatt_simulator", {**self.env, **sim_env})

    def start_service(self, name: str, module: str, env: dict[str, str]) -> None:
        self.services[name] = spawn(module, env, log=self.root / f"{name}.log")

    def stop_service(self, name: str) -> None:
        child = self.services.pop(name)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def stop(self) -> None:
        for name in reversed(list(self.services)):
            self.stop_service(name)
        self.broker.stop()
        self.postgres.stop()

    def pids(self) -> dict[str, list[int]]:
        """Every process to measure, by the name it is reported under."""
        groups: dict[str, list[int]] = {}
        postmaster = postmaster_pid(self.postgres.data)
        groups["postgresql"] = [postmaster, *children_of(postmaster)]
        assert self.broker.process is not None
        groups["mosquitto"] = [self.broker.process.pid]
        for name, child in self.services.items():
            groups[name] = [child.pid, *children_of(child.pid)]  # the aggregator's writer process
        return groups

    def sample(self) -> dict[str, tuple[Usage, int]]:
        return {name: group_usage(pids) for name, pids in self.pids().items()}

    def check_alive(self) -> None:
        for name, child in self.services.items():
            if child.poll() is not None:
                log = (self.root / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {child.returncode}:\n{log}")

    def stored(self, sensors_like: str = "%") -> int:
        """Readings stored, of the sensors whose key matches ``sensors_like`` (SQL LIKE)."""
        with psycopg.connect(self.postgres.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM readings r JOIN sensors s ON s.id = r.sensor_id WHERE s.key LIKE %s",
                (sensors_like,),
            ).fetchone()
        return int(row[0]) if row else 0


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} within {timeout:.0f} s")


def _mb(kb: int) -> str:
    return f"{kb / 1024:6.1f}"


def print_usage(title: str, usage: dict[str, tuple[Usage, int]]) -> Usage:
    print(f"{title}\n  {'process':<18} {'RSS MB':>7} {'PSS MB':>7}")
    total = ZERO
    for name, (u, count) in usage.items():
        label = f"{name} ({count})" if count > 1 else name
        print(f"  {label:<18} {_mb(u.rss_kb):>7} {_mb(u.pss_kb):>7}")
        total = total + u
    verdict = "within" if total.rss_kb / 1024 <= RSS_TARGET_MB else "OVER"
    print(
        f"  {'total':<18} {_mb(total.rss_kb):>7} {_mb(total.pss_kb):>7}   "
        f"(target: sum of RSS <= {RSS_TARGET_MB:.0f} MB: {verdict})",
        flush=True,
    )
    return total


class Browser:
    """A logged-in page: one ``/api/v2/live`` stream read to the end, ``/api/v2/sensors`` now and then."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.events = 0
        self.requests = 0
        self._stop = threading.Event()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        body = json.dumps({"login": _ADMIN[0], "password": _ADMIN[1]}).encode()
        request = urllib.request.Request(  # noqa: S310 (our own loopback URL)
            f"{base}/api/v2/login", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with self._opener.open(request, timeout=10):
            pass
        self._threads = [
            threading.Thread(target=self._follow_live, daemon=True),
            threading.Thread(target=self._poll_sensors, daemon=True),
        ]

    def visit(self, seconds: float = 10.0) -> None:
        """What opening the page does: the sensors, today's energy, then the live stream for a while."""
        today = time.strftime("%Y-%m-%d")
        for path in ("/api/v2/sensors", "/api/v2/settings", f"/api/v2/energy?start={today}&bucket=hour&count=24"):
            with self._opener.open(f"{self.base}{path}", timeout=30) as response:
                response.read()
        deadline = time.monotonic() + seconds
        with contextlib.suppress(OSError), self._opener.open(f"{self.base}/api/v2/live", timeout=3) as stream:
            for _ in stream:
                if time.monotonic() > deadline:
                    break

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _follow_live(self) -> None:
        with contextlib.suppress(OSError), self._opener.open(f"{self.base}/api/v2/live", timeout=30) as stream:
            for line in stream:
                if line.startswith(b"event: reading"):
                    self.events += 1
                if self._stop.is_set():
                    return

    def _poll_sensors(self) -> None:
        while not self._stop.wait(5.0):
            with contextlib.suppress(OSError), self._opener.open(f"{self.base}/api/v2/sensors", timeout=30) as r:
                r.read()
                self.requests += 1


class Publisher:
    """Valid readings (contract v1) from ``sensors`` sensors at ``rate`` readings/s in total, QoS 1."""

    def __init__(self, port: int, sensors: int) -> None:
        self.sensors = sensors
        self.published = 0
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-memory", protocol=paho.MQTTv5)
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._t0 = time.time()

    def publish_up_to(self, count: int, rate: float) -> None:
        """Publish readings number ``published`` .. ``count - 1``; reading i is stamped t0 + i / rate."""
        while self.published < count:
            i = self.published
            sensor = f"load-{i % self.sensors:02d}"
            payload = {
                "v": 1,
                "sensor": sensor,
                "kind": "simulator",
                "ts": round(self._t0 + i / rate, 6),
                "power": 100.0 + i % 997,
                "seq": i // self.sensors,
            }
            self.client.publish(f"citizenwatt/{sensor}/reading", json.dumps(payload), qos=1)
            self.published += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def measure_collectors(stack: Stack) -> None:
    """Each hardware collector's RSS, started alone beside the stack, idle without its device."""
    names = list(_COLLECTORS)
    for name in names:
        module, extra = _COLLECTORS[name]
        sensor = name.removeprefix("collector-")
        stack.start_service(name, module, {**stack.env, "CW_SENSOR_ID": sensor, **extra})
    time.sleep(_env_float("CW_BENCH_MEMORY_COLLECTOR_SECONDS", 15))
    print("hardware collectors, idle without their device (retrying with backoff)")
    for name in names:
        child = stack.services[name]
        usage = process_usage(child.pid) if child.poll() is None else None
        if usage is None:
            print(f"  {name:<18} exited with {child.returncode}: see its log")
        else:
            verdict = "within" if usage.rss_kb / 1024 <= COLLECTOR_TARGET_MB else "OVER"
            print(
                f"  {name:<18} RSS {_mb(usage.rss_kb)} MB, PSS {_mb(usage.pss_kb)} MB"
                f"   (target <= {COLLECTOR_TARGET_MB:.0f} MB RSS: {verdict})"
            )
        stack.stop_service(name)


@contextlib.contextmanager
def running_stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="cw-bench-memory-") as folder:
        root = Path(folder)
        root.chmod(0o755)  # PostgreSQL and Mosquitto run as their own users under root
        stack = Stack(root)
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()


def run() -> None:
    load_seconds = _env_float("CW_BENCH_MEMORY_SECONDS", 120)
    rate = _env_float("CW_BENCH_MEMORY_RATE", 200)
    sample_every = _env_float("CW_BENCH_MEMORY_SAMPLE_SECONDS", 5)
    settle = _env_float("CW_BENCH_MEMORY_SETTLE_SECONDS", 150)
    with running_stack() as stack:
        # The aggregator's journal is committed a minute after its first reading (CW_COMMIT_SECONDS).
        _wait(lambda: stack.stored() > 0, 150, "no reading of the simulator was stored")
        time.sleep(settle)
        stack.check_alive()
        idle = f"memory, stack idle with the simulator ({settle:.0f} s after its first stored reading)"
        print_usage(idle, stack.sample())
        Browser(f"http://127.0.0.1:{stack.api_port}").visit()
        time.sleep(10)
        print_usage(
            "memory, idle again after one visit of the page (login, sensors, energy, 10 s live)", stack.sample()
        )
        if os.environ.get("CW_BENCH_MEMORY_COLLECTORS", "1") != "0":
            measure_collectors(stack)
        _load(stack, load_seconds, rate, sample_every)


def _load(stack: Stack, seconds: float, rate: float, sample_every: float) -> None:
    load = "load-%"  # the simulator goes on meanwhile: count the load's readings only
    browser = Browser(f"http://127.0.0.1:{stack.api_port}")
    browser.start()
    publisher = Publisher(stack.broker.port, LOAD_SENSORS)
    series: dict[str, Series] = {}
    counts: dict[str, int] = {}
    start = time.monotonic()
    next_sample = start
    try:
        while (now := time.monotonic()) < start + seconds:
            publisher.publish_up_to(int((now - start) * rate), rate)
            if now >= next_sample:
                stack.check_alive()
                for name, (usage, count) in stack.sample().items():
                    series.setdefault(name, Series()).points.append((now - start, usage))
                    counts[name] = max(counts.get(name, 0), count)
                next_sample += sample_every
            time.sleep(0.01)
        published = publisher.published
        backlog_at_end = published - stack.stored(load)
        drain_start = time.monotonic()
        _wait(lambda: stack.stored(load) >= published, 300, "the published readings were not all stored")
        drained = time.monotonic() - drain_start
    finally:
        publisher.close()
        browser.stop()
    print(
        f"\nmemory under load: {published} readings from {LOAD_SENSORS} sensors at {rate:.0f}/s for {seconds:.0f} s"
        f" (QoS 1), one page following /api/v2/live ({browser.events} events) and asking /api/v2/sensors"
        f" ({browser.requests} times); {backlog_at_end} readings not yet stored when it ended, all stored"
        f" {drained:.1f} s later; RSS sampled every {sample_every:.0f} s"
    )
    print(
        f"  {'process':<18} {'RSS: first':>10} {'last':>6} {'max':>6}  {'slope MB/h':>10} {'2nd half':>9}"
        f"   {'PSS: first':>10} {'last':>6}"
    )
    for name, s in series.items():
        label = f"{name} ({counts[name]})" if counts[name] > 1 else name
        rss = [u.rss_kb for _, u in s.points]
        pss = [u.pss_kb for _, u in s.points]
        print(
            f"  {label:<18} {_mb(rss[0]):>10} {_mb(rss[-1])} {_mb(max(rss))}  "
            f"{s.slope_mb_per_hour():10.1f} {s.slope_mb_per_hour(0.5):9.1f}   {_mb(pss[0]):>10} {_mb(pss[-1])}"
        )
    print(
        "  (MB of RSS; PostgreSQL summed over its processes. A slope over a few minutes includes warm-up:"
        " caches filling, shared buffers touched; the second half's is the closer to a steady state.)",
        flush=True,
    )


if __name__ == "__main__":
    run()
