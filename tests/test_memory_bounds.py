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
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from citizenwatt_aggregator.service import Aggregator
from citizenwatt_aggregator.settings import AggregatorSettings
from citizenwatt_api.db import POOL_MAX_IDLE_SECONDS, open_pool
from tests.services import count_rows, wait_until
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


def test_the_aggregator_inbox_stays_bounded_when_the_broker_ignores_the_receive_maximum(
    mosquitto: LocalMosquitto, database_url: str
) -> None:
    """QoS 0 messages are outside MQTT's flow control: the broker pushes them as fast as it can
    (Mosquitto also overran the receive maximum at full ingest in a tester's run). With the
    database stalled (the readings table locked by another session), 20 000 readings flooded at
    QoS 0 must never take the inbox past two batches (2 x 10), and once the lock goes all of
    them are stored: the excess waited at the broker and in TCP buffers, not in our memory."""
    batch_size, flood = 10, 20_000
    settings = AggregatorSettings(
        mqtt_url=mosquitto.url,
        database_url=database_url,
        batch_size=batch_size,
        batch_delay_seconds=0.2,
        health_port=0,
        ha_discovery=False,
        alert_interval_seconds=0,
        client_id="bounded-flood",
    )
    aggregator = Aggregator(settings)
    runner = threading.Thread(target=aggregator.run, daemon=True)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="flood-publisher", protocol=paho.MQTTv5)
    client.max_queued_messages_set(0)
    with psycopg.connect(database_url) as locker:
        runner.start()
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        try:
            wait_until(lambda: aggregator.mqtt_connected and aggregator.db_ok, message="aggregator up")
            # A first reading stored: the schema and the aggregator's subscription exist.
            client.publish("citizenwatt/bounded/reading", _reading(-1_000_000), qos=1).wait_for_publish(10)
            wait_until(lambda: count_rows(database_url) == 1, message="the first reading stored")
            locker.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
            infos = [client.publish("citizenwatt/bounded/reading", _reading(i), qos=0) for i in range(flood)]
            for info in infos:
                info.wait_for_publish(60)  # all handed to the broker
            wait_until(lambda: aggregator._inbox.full(), message="the inbox filled")
            assert aggregator.inbox_peak <= 2 * batch_size
            locker.rollback()  # the lock goes; everything flows
            wait_until(lambda: count_rows(database_url) > flood, timeout=300, message="every reading stored")
            assert aggregator.inbox_peak <= 2 * batch_size
            assert aggregator.health()["inbox_limit"] == 2 * batch_size
        finally:
            client.disconnect()
            client.loop_stop()
            aggregator.stop_event.set()
            runner.join(timeout=30)
    assert count_rows(database_url) == flood + 1


def test_the_api_pool_gives_back_connections_a_burst_opened(database_url: str) -> None:
    """Connections beyond the first close once unused for a minute, not ten (each is a backend)."""
    pool = open_pool(database_url, 4)
    try:
        assert pool.min_size == 1 and pool.max_size == 4
        assert pool.max_idle == POOL_MAX_IDLE_SECONDS <= 60
        # Its connections sort and hash a 10 000-bucket answer in memory, not in temporary files on
        # the SD card (the server's own work_mem, which the suite's PostgreSQL has as a Pi, is 2 MB).
        with pool.connection() as conn:
            assert conn.execute("SHOW work_mem").fetchone() == ("4MB",)
            conn.execute("RESET work_mem")
            assert conn.execute("SHOW work_mem").fetchone() == ("2MB",)
    finally:
        pool.close()


def test_a_collector_loads_no_module_it_does_not_use() -> None:
    """sqlite3 (1.3 MB of RSS) only to read an older version's outbox, pydantic-settings (3 MB) never."""
    code = (
        "import sys, citizenwatt_simulator.__main__; print(sorted({'sqlite3', 'pydantic_settings'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
