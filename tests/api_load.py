"""Helpers for the load tests (many live viewers, heavy requests): a real api process with the
production pool size, its memory, and request latencies measured from outside."""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.services import ServiceProcess
from tools.localstack import free_port, wait_for_port
from tools.run_local import MALLOC_ENV


@dataclass
class RunningApi:
    base: str
    cookie: str
    server: ServiceProcess

    def rss_mib(self) -> float:
        """The api process's resident memory (VmRSS), in MiB."""
        assert self.server.process is not None
        for line in Path(f"/proc/{self.server.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS line")


@contextmanager
def running_api(
    database_url: str, log_path: Path, admin: dict[str, str], env: dict[str, str] | None = None
) -> Iterator[RunningApi]:
    """``python -m citizenwatt_api`` with its default settings (pool of 4) and the glibc malloc
    settings of its image (the Dockerfile's, as ``make run`` sets them), ``admin`` logged in."""
    port = free_port()
    full_env = {
        **MALLOC_ENV,
        "PYTHONMALLOC": "malloc",  # as the api's image and make run start it
        "CW_DATABASE_URL": database_url,
        "CW_API_PORT": str(port),
        "CW_API_HOST": "127.0.0.1",
        "CW_ADMIN_LOGIN": admin["login"],
        "CW_ADMIN_PASSWORD": admin["password"],
        "CW_API_PUBLISH_RADIO_CONFIG": "false",
        **(env or {}),
    }
    server = ServiceProcess("citizenwatt_api", full_env, log_path).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, timeout=60)
        login = urllib.request.Request(
            f"{base}/login", data=urllib.parse.urlencode(admin).encode(), headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(login, timeout=10) as response:
            cookie = response.headers["set-cookie"].split(";")[0]
        yield RunningApi(base, cookie, server)
    finally:
        server.stop()


@dataclass
class Latencies:
    """Each request's status and seconds, per path."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, list[int]] = field(default_factory=dict)

    def add(self, path: str, status: int, seconds: float) -> None:
        self.seconds.setdefault(path, []).append(seconds)
        self.statuses.setdefault(path, []).append(status)

    def worst(self, path: str) -> float:
        return max(self.seconds[path])

    def summary(self, path: str) -> str:
        values = self.seconds[path]
        return (
            f"{path}: {len(values)} requests, median {statistics.median(values) * 1000:.1f} ms,"
            f" max {max(values) * 1000:.1f} ms"
        )


async def sample(client: httpx.AsyncClient, paths: list[str], latencies: Latencies, until: asyncio.Event) -> None:
    """Ask each path over and over, one request at a time per path (the paths side by side, so a slow
    one does not keep the others from being asked), until ``until`` is set; at least once each."""

    async def ask(path: str) -> None:
        while True:
            started = time.perf_counter()
            response = await client.get(path)
            latencies.add(path, response.status_code, time.perf_counter() - started)
            if until.is_set():
                return
            await asyncio.sleep(0.05)  # pacing of the sampler (a page polling), not synchronisation

    await asyncio.gather(*(ask(path) for path in paths))
