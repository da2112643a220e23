"""The collector publisher keeps readings while the broker is away and delivers them in order."""

from __future__ import annotations

import json
import time
from pathlib import Path

from citizenwatt_common.collector.publisher import ReadingPublisher
from citizenwatt_common.contract import Reading
from citizenwatt_common.settings import MqttSettings
from tests.services import MqttObserver
from tools.localstack import LocalMosquitto, free_port


def readings(sensor: str, count: int, start_seq: int = 1) -> list[Reading]:
    now = time.time()
    return [
        Reading(sensor=sensor, kind="simulator", ts=now + i, power=float(i), seq=start_seq + i) for i in range(count)
    ]


def test_buffered_while_the_broker_is_down_then_delivered_in_order(tmp_path: Path) -> None:
    port = free_port()
    publisher = ReadingPublisher(MqttSettings(mqtt_url=f"mqtt://127.0.0.1:{port}"), "porch", buffer_size=100)
    publisher.start()
    try:
        for r in readings("porch", 20):
            publisher.submit(r)
        assert publisher.wait_for(lambda s: s.buffered == 20, timeout=10)
        assert not publisher.stats().connected
        broker = LocalMosquitto(tmp_path / "mq", port)
        broker.start()
        observer = MqttObserver(broker.url, "citizenwatt/porch/reading")
        # The publisher reconnects on its own backoff (at most 60 s).
        assert publisher.wait_for(lambda s: s.acknowledged == 20, timeout=90)
        observer.wait_for(lambda ms: len(ms) == 20)
        assert [json.loads(p)["seq"] for _, p, _ in observer.messages] == list(range(1, 21))
        assert publisher.stats().dropped == 0
        observer.close()
    finally:
        publisher.stop(drain_seconds=1)
    broker.stop()


def test_a_full_buffer_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    port = free_port()
    publisher = ReadingPublisher(MqttSettings(mqtt_url=f"mqtt://127.0.0.1:{port}"), "shed", buffer_size=5)
    publisher.start()
    try:
        for r in readings("shed", 8):
            publisher.submit(r)
        assert publisher.wait_for(lambda s: s.dropped == 3 and s.buffered == 5, timeout=10)
        broker = LocalMosquitto(tmp_path / "mq", port)
        broker.start()
        observer = MqttObserver(broker.url, "citizenwatt/shed/reading")
        assert publisher.wait_for(lambda s: s.acknowledged == 5, timeout=90)
        observer.wait_for(lambda ms: len(ms) == 5)
        assert [json.loads(p)["seq"] for _, p, _ in observer.messages] == [4, 5, 6, 7, 8]
        observer.close()
    finally:
        publisher.stop(drain_seconds=1)
    broker.stop()
