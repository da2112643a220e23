"""Run CitizenWatt services as real child processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent


# The aggregator commits every 8 s by default (an SD card's friend), so a test awaiting a stored row
# would wait that long at each step: service tests commit after a quarter of a second instead,
# unless they set the delay themselves, as the power-cut test does with the production default.
TEST_BATCH_DELAY = {"CW_BATCH_DELAY_SECONDS": "0.25"}


class ServiceProcess:
    def __init__(self, module: str, env: dict[str, str], log_path: Path) -> None:
        self.module = module
        self.env = {**TEST_BATCH_DELAY, **env} if module == "citizenwatt_aggregator" else env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def children(self) -> list[int]:
        """The pids of this process's own child processes (the aggregator's writer, for one)."""
        assert self.process is not None
        return children_of(self.process.pid)


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name, in parentheses, may hold spaces: the parent pid follows the last ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def wait_for_exit(pid: int, timeout: float) -> None:
    """Wait for any process (not only a child of ours) to exit, on the kernel's own event (a pidfd)."""
    import select

    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone
    try:
        ready, _, _ = select.select([handle], [], [], timeout)
    finally:
        os.close(handle)
    if not ready:
        raise TimeoutError(f"process {pid} still running after {timeout} s")


@contextmanager
def service(module: str, env: dict[str, str], log_path: Path) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(module, env, log_path).start()
    try:
        yield proc
    finally:
        if proc.running:
            proc.stop()


def wait_until(
    condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, message: str = "condition"
) -> Any:
    """Poll ``condition`` until it returns something truthy (for state in another process)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} not reached after {timeout} s")
        time.sleep(interval)


def count_rows(database_url: str, sql: str = "SELECT count(*) FROM readings", params: Any = None) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0


class MqttObserver:
    """A real MQTT subscriber that records what the broker delivers, for tests to await."""

    def __init__(
        self,
        url: str,
        topic: str,
        client_id: str = "test-observer",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        from urllib.parse import urlsplit

        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        parts = urlsplit(url)
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            client.subscribe(topic, qos=1)

        def on_subscribe(client: Any, userdata: Any, mid: Any, reasons: Any, props: Any) -> None:
            self._subscribed.set()

        def on_message(client: Any, userdata: Any, message: Any) -> None:
            with self._changed:
                self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
                self._changed.notify_all()

        if username:
            self._client.username_pw_set(username, password)
        self._client.on_connect = on_connect
        self._client.on_subscribe = on_subscribe
        self._client.on_message = on_message
        self._client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("observer could not subscribe")

    def wait_for(self, predicate: Callable[[list[tuple[str, bytes, bool]]], Any], timeout: float = 30) -> Any:
        with self._changed:
            result = self._changed.wait_for(lambda: predicate(self.messages), timeout)
        if not result:
            raise TimeoutError(f"expected MQTT messages not seen after {timeout} s; got {len(self.messages)}")
        return result

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextmanager
def aggregator_online(
    broker_url: str, database_url: str, log_path: Path, topic: str = "#", extra_env: dict[str, str] | None = None
) -> Iterator[MqttObserver]:
    """A running aggregator process, and an observer on ``topic`` that saw it come online."""
    observer = MqttObserver(broker_url, topic, client_id=f"observer-{log_path.parent.name}")
    env = {"CW_MQTT_URL": broker_url, "CW_DATABASE_URL": database_url, "CW_HEALTH_PORT": "0", **(extra_env or {})}
    try:
        with service("citizenwatt_aggregator", env, log_path):
            observer.wait_for(
                lambda ms: ("citizenwatt/_services/aggregator/status", b"online") in [(t, p) for t, p, _ in ms]
            )
            yield observer
    finally:
        observer.close()


@contextmanager
def api_with_one_connection(
    database_url: str, log_path: Path, admin: dict[str, str]
) -> Iterator[tuple[str, str, ServiceProcess]]:
    """A real api server (`python -m citizenwatt_api`) whose pool holds a single connection, with
    ``admin`` created at start and logged in: (base URL, session cookie, process). For the tests that
    prove a stream does not keep a pooled connection."""
    import urllib.parse
    import urllib.request

    from tools.localstack import free_port, wait_for_port

    port = free_port()
    env = {
        "CW_DATABASE_URL": database_url,
        "CW_API_PORT": str(port),
        "CW_API_HOST": "127.0.0.1",
        "CW_ADMIN_LOGIN": admin["login"],
        "CW_ADMIN_PASSWORD": admin["password"],
        "CW_POOL_SIZE": "1",
        "CW_API_PUBLISH_RADIO_CONFIG": "false",
    }
    server = ServiceProcess("citizenwatt_api", env, log_path).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, timeout=60)
        login = urllib.request.Request(
            f"{base}/login", data=urllib.parse.urlencode(admin).encode(), headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(login, timeout=10) as response:
            cookie = response.headers["set-cookie"].split(";")[0]
        yield base, cookie, server
    finally:
        server.stop()
