"""The modern API: calendar buckets in a time zone, sensors' health, and the live stream."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from citizenwatt_api.app import create_app
from citizenwatt_api.settings import ApiSettings
from citizenwatt_api.v2 import calendar_buckets
from tests.conftest import ALL_BACKENDS, BACKENDS
from tests.services import ServiceProcess
from tests.test_api_legacy import ADMIN, DAY_KWH, NIGHT_KWH, SAME_ORIGIN, T0, TRACE, approx, store
from tools.localstack import free_port, wait_for_port

PARIS = ZoneInfo("Europe/Paris")
# On timescaledb-compressed, the client fixture's readings are compressed before each test.
pytestmark = pytest.mark.backends(*ALL_BACKENDS)


def test_calendar_buckets_follow_the_local_calendar() -> None:
    ((start, end),) = calendar_buckets(date(2026, 3, 29), "day", 1, PARIS)
    assert end.timestamp() - start.timestamp() == 82_800  # the spring DST day has 23 hours
    assert len(calendar_buckets(date(2026, 3, 29), "hour", 23, PARIS)) == 23
    assert calendar_buckets(date(2026, 3, 29), "hour", 23, PARIS)[-1][1] == end
    ((monday, next_monday),) = calendar_buckets(date(2026, 11, 25), "week", 1, PARIS)  # a Wednesday
    assert (monday.date(), next_monday.date()) == (date(2026, 11, 23), date(2026, 11, 30))
    ((feb, march),) = calendar_buckets(date(2026, 2, 14), "month", 1, PARIS)
    assert (feb.date(), march.date()) == (date(2026, 2, 1), date(2026, 3, 1))


@pytest.fixture
def client(database_url: str, compress: Callable[[str], int]) -> Iterator[TestClient]:
    # No broker in these tests: the radio settings publisher would only wait for one at shutdown.
    settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
    with TestClient(create_app(settings)) as test_client:
        test_client.post("/install", data=ADMIN)
        test_client.post("/settings/night-window", data={"start": "22:00", "end": "06:00"}, headers=SAME_ORIGIN)
        store(database_url, "a", [(T0 + offset, power) for offset, power in TRACE])
        store(database_url, "b", [(T0 + offset, power) for offset, power in TRACE])
        compress(database_url)
        yield test_client


def test_energy_by_local_day_for_one_sensor_and_for_all(client: TestClient) -> None:
    one = client.get("/api/v2/energy", params={"sensor": "1", "start": "2026-01-15", "count": 2}).json()
    # The trace of the legacy tests, all on 2026-01-15 (local): 0.0833 kWh, nothing the next day.
    first, second = one["buckets"]
    assert (first["kwh"], first["day_kwh"], first["night_kwh"]) == (
        approx(DAY_KWH + NIGHT_KWH),
        approx(DAY_KWH),
        approx(NIGHT_KWH),
    )
    # Euros from the tariff in force on that date (a fresh install is on the seeded Base, whose
    # version of 2025-08-01 is 0.1952 EUR/kWh): one price, all of it in its only period ("day").
    assert first["euros"] == approx((DAY_KWH + NIGHT_KWH) * 0.1952)
    assert (first["day_euros"], first["night_euros"]) == (approx((DAY_KWH + NIGHT_KWH) * 0.1952), 0)
    assert first["start"] == "2026-01-15T00:00:00+01:00" and second["kwh"] is None
    both = client.get("/api/v2/energy", params={"sensor": "all", "start": "2026-01-15"}).json()
    assert both["total_kwh"] == approx(2 * (DAY_KWH + NIGHT_KWH))
    assert client.get("/api/v2/energy", params={"start": "2026-01-15", "tz": "Mars/Olympus"}).status_code == 400
    assert client.get("/api/v2/energy", params={"start": "2026-13-01"}).status_code == 400


def test_sensors_with_their_health(client: TestClient) -> None:
    sensors = client.get("/api/v2/sensors").json()
    assert [(s["key"], s["kind"], s["power"], s["online"], s["readings_today"]) for s in sensors] == [
        ("a", "simulator", 500.0, False, 0),
        ("b", "simulator", 500.0, False, 0),
    ]  # heard from in January
    assert sensors[0]["last_seen"] == approx(T0 + 660)


@pytest.mark.backends(*BACKENDS)  # nothing stored before: nothing to compress
def test_the_live_stream_sends_new_readings(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "CW_DATABASE_URL": database_url,
        "CW_API_PORT": str(port),
        "CW_API_HOST": "127.0.0.1",
        "CW_ADMIN_LOGIN": ADMIN["login"],
        "CW_ADMIN_PASSWORD": ADMIN["password"],
    }
    server = ServiceProcess("citizenwatt_api", env, tmp_path / "api.log").start()
    try:
        wait_for_port(port, timeout=60)
        token_page = urllib.request.Request(
            f"http://127.0.0.1:{port}/login",
            data=urllib.parse.urlencode(ADMIN).encode(),
            headers={"Accept": "application/json"},
        )
        with urllib.request.urlopen(token_page, timeout=10) as response:
            cookie = response.headers["set-cookie"].split(";")[0]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/live", headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=10) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.readline() == b"retry: 2000\n"
            now = time.time()
            store(database_url, "live", [(now, 321.0)])
            event: dict[str, Any] = {}
            for raw in stream:  # each read waits for the server (10 s socket timeout), no sleeping here
                line = raw.decode().strip()
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    if event["power"] == 321.0:
                        break
        assert event["power"] == 321.0 and event["ts"] == approx(now)
    finally:
        server.stop()
