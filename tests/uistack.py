"""The real stack the browser tests drive: the api (serving the page), the aggregator and simulated
sensors, on a test's broker and database. Each process is handed back, for the tests that stop one.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.services import MqttObserver, ServiceProcess, service
from tools.localstack import free_port, wait_for_port


@dataclass(frozen=True)
class Simulated:
    """One simulator process: a sensor of the simulated household."""

    name: str
    seed: int
    period_seconds: float = 1.0
    env: dict[str, str] = field(default_factory=dict)  # more settings (a backfill, say)


@dataclass
class RunningStack:
    url: str
    api: ServiceProcess
    aggregator: ServiceProcess


@contextmanager
def running_stack(
    broker_url: str,
    database_url: str,
    logs: Path,
    simulators: Sequence[Simulated],
    aggregator_env: dict[str, str] | None = None,
    api_env: dict[str, str] | None = None,
) -> Iterator[RunningStack]:
    """The api on a free port, the aggregator (online on the broker) and ``simulators``, all stopped
    on leaving."""
    port = free_port()
    common = {"CW_DATABASE_URL": database_url, "CW_MQTT_URL": broker_url, "CW_TIMEZONE": "Europe/Paris"}
    api_settings = {**common, "CW_API_PORT": str(port), "CW_API_HOST": "127.0.0.1", **(api_env or {})}
    aggregator_settings = {**common, "CW_HEALTH_PORT": "0", **(aggregator_env or {})}
    observer = MqttObserver(broker_url, "citizenwatt/_services/#", client_id=f"observer-{logs.name}")
    with ExitStack() as running:
        running.callback(observer.close)
        api = running.enter_context(service("citizenwatt_api", api_settings, logs / "api.log"))
        aggregator = running.enter_context(service("citizenwatt_aggregator", aggregator_settings, logs / "agg.log"))
        observer.wait_for(
            lambda ms: ("citizenwatt/_services/aggregator/status", b"online") in [(t, p) for t, p, _ in ms]
        )
        for sim in simulators:
            env = {
                **common,
                "CW_SENSOR_ID": sim.name,
                "CW_PERIOD_SECONDS": str(sim.period_seconds),
                "CW_SEED": str(sim.seed),
                "CW_OUTBOX_PATH": str(logs / f"{sim.name}.sqlite"),
                **sim.env,
            }
            running.enter_context(service("citizenwatt_simulator", env, logs / f"{sim.name}.log"))
        wait_for_port(port, timeout=60)
        yield RunningStack(f"http://127.0.0.1:{port}", api, aggregator)


@contextmanager
def page_api(broker_url: str, database_url: str, logs: Path, install: tuple[str, str] | None = None) -> Iterator[str]:
    """The api alone on a free port, serving the page, for browser tests that store their readings
    themselves; with ``install``, its first administrator is created as a first visit does
    (``POST /api/v2/install``). Yields the page's URL; the api stops on leaving."""
    port = free_port()
    env = {
        "CW_DATABASE_URL": database_url,
        "CW_MQTT_URL": broker_url,
        "CW_TIMEZONE": "Europe/Paris",
        "CW_API_PORT": str(port),
        "CW_API_HOST": "127.0.0.1",
    }
    with service("citizenwatt_api", env, logs / "api.log"):
        wait_for_port(port, timeout=60)
        url = f"http://127.0.0.1:{port}"
        if install is not None:
            request = urllib.request.Request(
                f"{url}/api/v2/install",
                data=json.dumps({"login": install[0], "password": install[1]}).encode(),
                headers={"Content-Type": "application/json", "Origin": url},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 201
        yield url
