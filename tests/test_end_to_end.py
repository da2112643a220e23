"""The whole chain as a household runs it: simulator -> Mosquitto -> aggregator -> PostgreSQL -> legacy API."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.services import MqttObserver, count_rows, service, wait_until
from tools.localstack import LocalMosquitto, free_port, wait_for_port

CREDENTIALS = {"login": "owner", "password": "e2e-password-1"}


def api_post(port: int, path: str) -> Any:
    body = urllib.parse.urlencode(CREDENTIALS).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", data=body, timeout=10) as response:
        return json.loads(response.read())


def test_simulated_power_comes_out_of_the_legacy_api(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "CW_MQTT_URL": mosquitto.url,
        "CW_DATABASE_URL": database_url,
        "CW_HEALTH_PORT": "0",
        "CW_API_PORT": str(port),
        "CW_ADMIN_LOGIN": CREDENTIALS["login"],
        "CW_ADMIN_PASSWORD": CREDENTIALS["password"],
        "CW_SENSOR_ID": "house",
        "CW_PERIOD_SECONDS": "0.2",
    }
    watcher = MqttObserver(mosquitto.url, "citizenwatt/_services/#", client_id="e2e-watch")
    with (
        service("citizenwatt_aggregator", env, tmp_path / "agg.log"),
        service("citizenwatt_api", env, tmp_path / "api.log"),
    ):
        watcher.wait_for(lambda ms: any(p == b"online" for _, p, _ in ms))
        wait_for_port(port, timeout=60)
        start = time.time()
        with service("citizenwatt_simulator", env, tmp_path / "sim.log"):
            wait_until(lambda: count_rows(database_url) >= 40, message="40 readings stored")
        sensors = api_post(port, "/api/sensors")["data"]
        assert sensors == [{"id": 1, "name": "house", "type": "electricity", "type_id": 1}]
        end = time.time() + 1
        buckets = api_post(port, f"/api/1/get/watts/by_time/{start}/{end}/2")["data"]
        covered = [b for b in buckets if b is not None]
        assert len(covered) >= 3
        # The simulated house never draws less than its standby load, nor more than all appliances at once.
        assert all(50 < b["value"] < 10_000 for b in covered)
        energy = api_post(port, f"/api/1/get/kwatthours/by_time/{start}/{end}")["data"]
        assert energy["value"] > 0 and energy["value"] == energy["day_rate"] + energy["night_rate"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert b"<title>CitizenWatt</title>" in page.read()
        newest = api_post(port, "/api/1/get/watts/by_id/-1")
        assert newest["data"]["sensor_id"] == 1 and newest["rate"] is None
    watcher.close()
