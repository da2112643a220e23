"""`make run`: the whole system on this machine, without Docker, on the simulator.

Starts PostgreSQL and Mosquitto with their data in ./var (kept between runs), then the
aggregator, the api (http://localhost:8080) and the simulator collector. Ctrl-C stops
everything in reverse order.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tools.localstack import REPO, LocalMosquitto, LocalPostgres, wait_for_port

# glibc malloc settings for every Python service, the same as the Dockerfile's (a value already in
# the environment wins). Fixing the mmap threshold at glibc's initial 128 KiB keeps blocks that large
# in mappings of their own, given back to the kernel when freed; by default glibc raises the threshold
# after the first such block is freed, and the next ones then come from the heap and stay resident:
# one scrypt password check (16 MB) left the api 16 MB larger for good. Two arenas instead of up to
# 8 per core bound what C libraries (libpq, OpenSSL) allocating from many threads may keep: a bound,
# not a measured saving (Python's own objects live in pymalloc's arenas; no difference on bench/memory.py).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_ARENA_MAX": "2"}


def main() -> int:
    data = Path(os.environ.get("CW_DATA_DIR", REPO / "var")).resolve()
    pg_port = int(os.environ.get("CW_RUN_PG_PORT", "55432"))
    mqtt_port = int(os.environ.get("CW_RUN_MQTT_PORT", "1883"))
    api_port = os.environ.get("CW_API_PORT", "8080")
    postgres = LocalPostgres(data / "postgres", pg_port)
    broker = LocalMosquitto(data / "mosquitto", mqtt_port)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        print(f"PostgreSQL  {postgres.start()}  (data in {postgres.data})", flush=True)
        print(f"Mosquitto   {broker.start()}", flush=True)
        env = service_env(postgres.url, broker.url, api_port, data)
        # The api with glibc's allocator for Python's objects too, as in its image (Dockerfile).
        api_env = {"PYTHONMALLOC": "malloc", **env}
        launched = {
            "aggregator": ("citizenwatt_aggregator", env),
            "api": ("citizenwatt_api", api_env),
        }
        children.append(("aggregator", spawn("citizenwatt_aggregator", env)))
        children.append(("api", spawn("citizenwatt_api", api_env)))
        wait_for_port(int(api_port), timeout=60)
        # The simulator comes last: the aggregator's subscription must exist before readings flow.
        wait_healthy(f"http://127.0.0.1:{env.get('CW_HEALTH_PORT', '8081')}/healthz")
        # A newcomer's first run shows a month of simulated history at once (CW_BACKFILL_DAYS=0: none).
        sim_env = {
            "CW_SENSOR_ID": "simulator",
            "CW_OUTBOX_PATH": str(data / "outbox-simulator.sqlite"),
            "CW_BACKFILL_DAYS": "30",
            **env,
        }
        launched["simulator"] = ("citizenwatt_simulator", sim_env)
        children.append(("simulator", spawn("citizenwatt_simulator", sim_env)))
        print(f"\nCitizenWatt is running: http://localhost:{api_port}  (Ctrl-C to stop)\n", flush=True)
        # Like compose's "restart: unless-stopped": whatever dies comes back, with a growing pause
        # between attempts while it keeps failing (PostgreSQL after a panic on a full disk comes
        # back once there is space again). Nothing is lost meanwhile: collectors keep readings in
        # their outboxes and the broker keeps what the aggregator has not acknowledged.
        backoff = Backoff()
        while not stopping:
            if not postgres.running():
                backoff.attempt("PostgreSQL", postgres.start)
            if broker.process is None or broker.process.poll() is not None:
                backoff.attempt("Mosquitto", broker.start)
            for index, (name, child) in enumerate(children):
                if child.poll() is not None:
                    module, child_env = launched[name]
                    backoff.attempt(name, partial(_replace, children, index, name, module, child_env))
            time.sleep(0.5)
    finally:
        for name, child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    print(f"{name} did not stop in 20 s; killing it", flush=True)
                    child.kill()
        broker.stop()
        postgres.stop()
        print("stopped", flush=True)
    return 0


class Backoff:
    """Restart attempts per component: at once the first time, then after 1, 2, 4 ... 30 s while
    attempts keep failing or the component keeps dying within a minute of its restart."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._pause: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def attempt(self, name: str, restart: Callable[[], object]) -> None:
        now = time.monotonic()
        if now < self._next.get(name, 0.0):
            return
        stable = now - self._started.get(name, -math.inf) > 60
        pause = 0.0 if stable else min(30.0, max(1.0, 2 * self._pause.get(name, 0.5)))
        self._pause[name], self._started[name] = pause, now
        self._next[name] = now + pause
        print(f"{name} is down; restarting it", flush=True)
        try:
            restart()
            print(f"{name} restarted", flush=True)
        except Exception as exc:  # a failed attempt is retried after the pause, never fatal
            print(f"{name} could not restart ({exc}); next attempt in {max(pause, 1.0):.0f} s", flush=True)
            self._next[name] = now + max(pause, 1.0)


def _replace(
    children: list[tuple[str, subprocess.Popen[bytes]]], index: int, name: str, module: str, env: dict[str, str]
) -> None:
    children[index] = (name, spawn(module, env))


def service_env(database_url: str, mqtt_url: str, api_port: str, data: Path) -> dict[str, str]:
    """The environment every service of ``make run`` gets (bench/memory.py starts them the same way).

    As docker-compose.yml: the aggregator journals what it acknowledges in ``data`` and commits
    it a minute later, and the live page reads the broker (README, Reliability)."""
    return {
        **MALLOC_ENV,
        "CW_JOURNAL_PATH": str(data / "aggregator-journal"),
        "CW_API_LIVE_FROM_BROKER": "true",
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "CW_DATABASE_URL": database_url,
        "CW_MQTT_URL": mqtt_url,
        "CW_API_PORT": api_port,
    }


def wait_healthy(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own loopback URL)
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the aggregator did not report healthy at {url} within {timeout} s")


def spawn(module: str, env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    """``python -m module``; its output goes to ``log`` when given (bench), else to ours (make run)."""
    # Children ignore the terminal's Ctrl-C themselves (new process group) so that we stop them in order.
    if log is None:
        return subprocess.Popen([sys.executable, "-m", module], env=env, cwd=REPO, start_new_session=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], env=env, cwd=REPO, start_new_session=True, stdout=out, stderr=out
        )


if __name__ == "__main__":
    sys.exit(main())
