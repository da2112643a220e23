"""Memory of the Pi's stack as Docker counts it: `docker compose up` idle on the simulator.

The issue's target for the whole stack (<= 200 MB) may be read as the sum of RSS (bench/memory.py,
the `make run` stack) or as the sum of each container's cgroup memory. This is the second: the
real docker-compose.yml (with tests/compose/docker-compose.ci.yml for what this machine cannot
have, as the compose test runs it), every image built from ./Dockerfile on a Docker daemon of our
own (tests/dockerstack.py), left idle, then `docker stats` per container. Docker's figure is the
container's cgroup usage without its reclaimable page cache; a page shared by several processes of
one container (PostgreSQL's shared buffers, the Python interpreter's libraries) counts once, which
is why it is lower than the same processes' summed RSS, printed beside it.

Then the four hardware collectors are started beside the stack by their compose profiles, each in
its own container with its device missing (bench/compose-collectors.yml: /dev/null where the device
node would be, an AWOX address nobody answers), logged in to the broker with their own accounts:
each retries with backoff, which is how one idles on a Pi whose sensor is unplugged. Their memory is
printed apart (the issue's bound: <= 30 MB each), as cgroup usage and as the process's RSS.

Settings (environment): CW_BENCH_COMPOSE_SETTLE_SECONDS (idle time after the first stored
readings, default 150: the api's pool shrinks back after 60 s unused), CW_BENCH_COMPOSE_SAMPLES
(default 3, 10 s apart; the last is printed, with the highest), CW_BENCH_COMPOSE_COLLECTOR_SECONDS
(how long the collectors run before being measured, default 30). Needs host ports 1883, 8080 and
8081 free. ``python -m bench.compose_memory`` runs it alone.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
import uuid
from pathlib import Path

from tests.dockerstack import OVERRIDE, REPO, ComposeProject, DockerDaemon, build_base_images, wait_healthy
from tools.localstack import free_port

SERVICES = ("mosquitto", "timescaledb", "aggregator", "api", "simulator")
COLLECTORS = {
    "nrf24": "collector-nrf24",
    "ina219": "collector-ina219",
    "acs712": "collector-acs712",
    "awox": "collector-awox",
}
COLLECTOR_TARGET_MB = 30.0
# Where each hardware collector's device would be: nothing answers there (bench/compose-collectors.yml).
COLLECTORS_OVERRIDE = Path(__file__).resolve().parent / "compose-collectors.yml"
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "MB": 1000**2, "GB": 1000**3}
_AMOUNT = re.compile(r"^\s*([\d.]+)\s*([A-Za-z]+)")


def parse_amount(text: str) -> int:
    """``"22.46MiB / 23.54GiB"`` (docker stats' MemUsage) -> bytes of the first amount."""
    match = _AMOUNT.match(text)
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"not a docker amount: {text!r}")
    return round(float(match.group(1)) * _UNITS[match.group(2)])


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _cgroup_bytes(daemon: DockerDaemon, containers: dict[str, str]) -> dict[str, int]:
    lines = daemon.run("stats", "--no-stream", "--format", "{{.ID}}\t{{.MemUsage}}", *containers.values()).stdout
    by_id = {cid[:12]: name for name, cid in containers.items()}
    found: dict[str, int] = {}
    for line in lines.splitlines():
        cid, usage = line.split("\t", 1)
        found[by_id[cid[:12]]] = parse_amount(usage)
    return found


def _rss_bytes(daemon: DockerDaemon, container: str) -> int:
    """Summed RSS of the container's processes (KiB from ps, through docker top)."""
    lines = daemon.run("top", container, "-o", "pid,rss").stdout.splitlines()[1:]
    return sum(int(line.split()[1]) * 1024 for line in lines if len(line.split()) > 1)


def _stored(stack: ComposeProject) -> int:
    out = stack(
        "exec",
        "-T",
        "timescaledb",
        "psql",
        "-U",
        "citizenwatt",
        "-d",
        "citizenwatt",
        "-tAc",
        "SELECT count(*) FROM readings",
    ).stdout
    return int(out.strip() or 0)


def run() -> None:
    settle = float(os.environ.get("CW_BENCH_COMPOSE_SETTLE_SECONDS", "150"))
    collector_seconds = float(os.environ.get("CW_BENCH_COMPOSE_COLLECTOR_SECONDS", "30"))
    samples = int(os.environ.get("CW_BENCH_COMPOSE_SAMPLES", "3"))
    busy = [port for port in (1883, 8080, 8081) if _port_in_use(port)]
    if busy:
        print(f"compose memory: skipped, host ports {busy} are taken")
        return
    daemon = DockerDaemon()
    daemon.start()
    stack = ComposeProject(
        daemon,
        f"cwbench{uuid.uuid4().hex[:8]}",
        [REPO / "docker-compose.yml", OVERRIDE, COLLECTORS_OVERRIDE],
        {"CW_TEST_PGPORT": str(free_port()), "COMPOSE_DOCKER_CLI_BUILD": "0", "CW_ACS712_DEVICE": "/dev/null"},
    )
    profiles = [arg for profile in COLLECTORS for arg in ("--profile", profile)]
    try:
        with tempfile.TemporaryDirectory(prefix="cw-bench-compose-") as folder:
            build_base_images(daemon, Path(folder) / "timescaledb-context")
        stack(*profiles, "build", "--parallel", *SERVICES, *COLLECTORS.values())
        stack("up", "-d", *SERVICES)
        wait_healthy(stack, "timescaledb", "aggregator", "api")
        deadline = time.monotonic() + 120
        while _stored(stack) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("no simulated reading stored within 120 s")
            time.sleep(1)
        time.sleep(settle)
        containers = {name: stack.container(name) for name in SERVICES}
        rounds: list[dict[str, int]] = []
        for index in range(samples):
            if index:
                time.sleep(10)
            rounds.append(_cgroup_bytes(daemon, containers))
        rss = {name: _rss_bytes(daemon, cid) for name, cid in containers.items()}
        stack(*profiles, "up", "-d", "--no-recreate", *COLLECTORS.values())
        time.sleep(collector_seconds)
        collectors = {name: stack.container(name) for name in COLLECTORS.values()}
        collector_cgroup = _cgroup_bytes(daemon, collectors)
        collector_rss = {name: _rss_bytes(daemon, cid) for name, cid in collectors.items()}
    finally:
        stack("down", "-v", "--remove-orphans", check=False)
        daemon.stop()
    last = rounds[-1]
    print(
        f"compose memory: docker-compose.yml idle on the simulator, {settle:.0f} s after the first stored"
        f" readings; docker stats (cgroup, without page cache) and the summed RSS of each container's processes"
    )
    print(f"  {'container':<14} {'cgroup MiB':>11} {'highest':>9} {'RSS MB':>8}")
    for name in SERVICES:
        highest = max(r.get(name, 0) for r in rounds)
        print(f"  {name:<14} {last.get(name, 0) / 2**20:>11.1f} {highest / 2**20:>9.1f} {rss[name] / 1e6:>8.1f}")
    total = sum(last.values())
    print(f"  {'TOTAL':<14} {total / 2**20:>11.1f} {'':>9} {sum(rss.values()) / 1e6:>8.1f}")
    print(
        f"compose memory: the hardware collectors, each in its container with its device missing, after"
        f" {collector_seconds:.0f} s (bound: {COLLECTOR_TARGET_MB:.0f} MB each)"
    )
    print(f"  {'container':<18} {'cgroup MiB':>11} {'RSS MB':>8}")
    for name in COLLECTORS.values():
        flag = "" if collector_rss[name] / 1e6 <= COLLECTOR_TARGET_MB else "  OVER"
        print(f"  {name:<18} {collector_cgroup.get(name, 0) / 2**20:>11.1f} {collector_rss[name] / 1e6:>8.1f}{flag}")


if __name__ == "__main__":
    run()
