"""The INA219 collector with a fake chip (the I²C boundary), the real broker and the real database."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from citizenwatt_common.collector import CollectorRuntime, DeviceUnavailable
from citizenwatt_ina219.decoder import Converted, Measurement, MeasurementRejected, convert
from citizenwatt_ina219.service import measure_forever
from citizenwatt_ina219.settings import Ina219Settings
from citizenwatt_ina219.transport import RangeOverflow
from tests.services import aggregator_online, count_rows, wait_until
from tools.localstack import LocalMosquitto

# Its subject is not storage: one backend is enough (the suite runs storage tests on both).
pytestmark = pytest.mark.backends("plain")


def test_units_are_converted() -> None:
    # 12.6 V bus, 1500 mA, 18900 mW -> 18.9 W, 12.6 V, 1.5 A
    assert convert(Measurement(12.6, 1500.0, 18_900.0)) == Converted(18.9, 12.6, 1.5)
    assert isinstance(convert(Measurement(40.0, 1.0, 1.0)), MeasurementRejected)
    assert isinstance(convert(Measurement(float("nan"), 1.0, 1.0)), MeasurementRejected)


class FakeChip:
    def __init__(self, script: Iterator[Measurement | Exception]) -> None:
        self.script = script

    def measure(self) -> Measurement:
        step = next(self.script, None)
        if step is None:
            raise DeviceUnavailable("INA219 at 0x40 on /dev/i2c-1 stopped answering: [Errno 121] Remote I/O error")
        if isinstance(step, Exception):
            raise step
        return step


def test_readings_and_an_overflow_event(mosquitto: LocalMosquitto, database_url: str, tmp_path: Path) -> None:
    script: Iterator[Measurement | Exception] = iter(
        [
            Measurement(12.0, 1500.0, 18_000.0),
            RangeOverflow("Current out of range (overflow)"),
            Measurement(12.5, 2000.0, 25_000.0),
        ]
    )
    opened: list[int] = []

    def open_chip(settings: Ina219Settings) -> FakeChip:
        opened.append(1)
        if len(opened) > 1:
            raise DeviceUnavailable("INA219 at 0x40 on /dev/i2c-1: [Errno 2] No such file; is I²C enabled?")
        return FakeChip(script)

    settings = Ina219Settings(mqtt_url=mosquitto.url, sensor_id="solar", period_seconds=0.1)
    with aggregator_online(mosquitto.url, database_url, tmp_path / "agg.log") as observer:
        runtime = CollectorRuntime(settings, "ina219")
        runtime.publisher.start()
        thread = threading.Thread(target=measure_forever, args=(runtime, open_chip), daemon=True)
        thread.start()
        try:
            wait_until(lambda: count_rows(database_url) == 2, message="two readings")
            # The chip then disappears: offline, and no made-up reading.
            observer.wait_for(lambda ms: [p for t, p, _ in ms if t == "citizenwatt/solar/status"][-1:] == [b"offline"])
        finally:
            runtime.stop_event.set()
            thread.join(10)
            runtime.publisher.stop()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT power, voltage, current FROM readings ORDER BY ts").fetchall()
    assert rows == [(18.0, 12.0, 1.5), (25.0, 12.5, 2.0)]
    events = [json.loads(p) for t, p, _ in observer.messages if t == "citizenwatt/solar/event"]
    assert [e["error"] for e in events] == ["range overflow"]
    assert len([t for t, _, _ in observer.messages if t == "citizenwatt/solar/reading"]) == 2
