"""What keeps the services' memory bounded under a sustained ingest, checked without timings.

bench/memory.py measures the figures (README, On a Raspberry Pi: memory); these tests hold the
bounds those figures rely on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from citizenwatt_aggregator.service import Aggregator
from citizenwatt_aggregator.settings import AggregatorSettings
from citizenwatt_api.db import POOL_MAX_IDLE_SECONDS, open_pool
from tools.localstack import LocalMosquitto, free_port


def _reading(i: int) -> bytes:
    return json.dumps(
        {"v": 1, "sensor": "bounded", "kind": "simulator", "ts": 1_790_000_000 + i, "power": 1.0}
    ).encode()


def test_the_aggregator_holds_at_most_two_batches_whatever_the_backlog(mosquitto: LocalMosquitto) -> None:
    """With the database unreachable nothing is acknowledged, so the broker keeps the backlog and
    hands the aggregator no more than its receive maximum (two batches): its inbox cannot grow with
    the length of an outage or with the ingest rate."""
    batch_size = 10
    settings = AggregatorSettings(
        mqtt_url=mosquitto.url,
        database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/nothing",
        batch_size=batch_size,
        health_port=0,
        ha_discovery=False,
        client_id="bounded-inbox",
    )
    aggregator = Aggregator(settings)
    runner = threading.Thread(target=aggregator.run, daemon=True)
    runner.start()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bounded-publisher", protocol=paho.MQTTv5)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    inbox = aggregator._inbox
    try:
        # Until a first message arrives, the aggregator's subscription may not exist yet.
        sent = 0
        deadline = time.monotonic() + 30
        while inbox.qsize() == 0:
            assert time.monotonic() < deadline, "the aggregator never received a reading"
            client.publish("citizenwatt/bounded/reading", _reading(sent), qos=1).wait_for_publish(5)
            sent += 1
            time.sleep(0.05)
        backlog = [client.publish("citizenwatt/bounded/reading", _reading(sent + i), qos=1) for i in range(500)]
        for info in backlog:
            info.wait_for_publish(10)  # the broker has them all
        deadline = time.monotonic() + 30
        while inbox.qsize() < 2 * batch_size and time.monotonic() < deadline:
            time.sleep(0.1)
        assert inbox.qsize() == 2 * batch_size
        time.sleep(1.0)  # more time lets nothing more in
        assert inbox.qsize() == 2 * batch_size
    finally:
        client.disconnect()
        client.loop_stop()
        aggregator.stop_event.set()
        runner.join(timeout=30)


def test_the_api_pool_gives_back_connections_a_burst_opened(database_url: str) -> None:
    """Connections beyond the first close once unused for a minute, not ten (each is a backend)."""
    pool = open_pool(database_url, 4)
    try:
        assert pool.min_size == 1 and pool.max_size == 4
        assert pool.max_idle == POOL_MAX_IDLE_SECONDS <= 60
    finally:
        pool.close()


def test_a_collector_loads_no_module_it_does_not_use() -> None:
    """sqlite3 (1.3 MB of RSS) only to read an older version's outbox, pydantic-settings (3 MB) never."""
    code = (
        "import sys, citizenwatt_simulator.__main__; print(sorted({'sqlite3', 'pydantic_settings'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
