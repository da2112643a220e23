"""Two different readings of one sensor less than a microsecond apart (the storage's resolution):
the first is stored, the second is kept in rejected_messages with its reason and logged, never
counted as a harmless redelivery (which would confirm it to its collector as if it were stored)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.services import MqttObserver, count_rows, service, wait_until
from tests.test_aggregator import env_for, wait_for_aggregator
from tools.localstack import LocalMosquitto


@pytest.fixture
def observer(mosquitto: LocalMosquitto) -> Iterator[MqttObserver]:
    obs = MqttObserver(mosquitto.url, "#")
    yield obs
    obs.close()


def reading(ts: float, power: float, seq: int) -> bytes:
    return json.dumps({"v": 1, "sensor": "oven", "kind": "simulator", "ts": ts, "power": power, "seq": seq}).encode()


def test_a_second_reading_in_the_same_microsecond_is_rejected_with_its_reason(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, observer: MqttObserver
) -> None:
    # A whole second plus 0.1 µs and plus 0.4 µs: both round to the same stored microsecond.
    base = float(int(time.time()) - 60)
    with service("citizenwatt_aggregator", env_for(mosquitto, database_url), tmp_path / "agg.log") as agg:
        wait_for_aggregator(observer)
        observer.publish("citizenwatt/oven/reading", reading(base + 1e-7, 2000.0, 1))
        observer.publish("citizenwatt/oven/reading", reading(base + 4e-7, 2100.0, 2))
        observer.publish("citizenwatt/oven/reading", reading(base + 1e-7, 2000.0, 1))  # a true redelivery
        observer.publish("citizenwatt/oven/reading", reading(base + 8, 1900.0, 3))
        wait_until(lambda: count_rows(database_url, "SELECT count(*) FROM rejected_messages") == 1)
        wait_until(lambda: count_rows(database_url) == 2, message="the first and the last reading")
        assert agg.running
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT power, seq FROM readings ORDER BY ts").fetchall()
        rejected = conn.execute("SELECT payload, reason FROM rejected_messages").fetchall()
    assert stored == [(2000.0, 1), (1900.0, 3)]
    assert json.loads(bytes(rejected[0][0]))["seq"] == 2
    assert "same microsecond" in rejected[0][1]
    assert "same microsecond" in agg.log()
