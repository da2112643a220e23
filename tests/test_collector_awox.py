"""The AWOX collector end to end with a fake BLE link (the hardware boundary) and the real broker and database."""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from citizenwatt_awox.decoder import STATUS_REQUEST, SWITCH_OFF, SWITCH_ON, encode_command
from citizenwatt_awox.service import run_plug
from citizenwatt_awox.settings import AwoxSettings
from citizenwatt_common.collector import CollectorRuntime
from tests.services import aggregator_online, count_rows, wait_until
from tools.localstack import LocalMosquitto

# Its subject is not storage: one backend is enough (the suite runs storage tests on both).
pytestmark = pytest.mark.backends("plain")


def status_frame(relay_on: bool, milliwatts: int, volts: int) -> bytes:
    # Payload: 04 00, relay, unused, power (big-endian mW), volts, five zero bytes.
    return encode_command(
        bytes([0x04, 0x00, int(relay_on), 0x00]) + struct.pack(">I", milliwatts) + bytes([volts]) + bytes(5)
    )


class FakePlug:
    """Answers like the plug: status split over two notifications, switch confirmations, one dropped link."""

    def __init__(self) -> None:
        self.relay_on = False
        self.sent: list[bytes] = []
        self.connections = 0
        self.polls = 0
        self.on_chunk: Callable[[bytes], None] | None = None

    async def connect(self, on_chunk: Callable[[bytes], None]) -> None:
        self.connections += 1
        self.on_chunk = on_chunk

    async def send(self, frame: bytes) -> None:
        assert self.on_chunk is not None
        self.sent.append(frame)
        if frame == STATUS_REQUEST:
            self.polls += 1
            if self.polls == 4:
                raise ConnectionError("link lost mid-poll")  # the plug went out of range
            if self.polls == 6:
                self.on_chunk(bytes.fromhex("0f0f04" + "00" * 13 + "99ffff"))  # checksum should be 05
            frame_bytes = status_frame(self.relay_on, 1_500_000 if self.relay_on else 2_000, 231)
            self.on_chunk(frame_bytes[:7])
            self.on_chunk(frame_bytes[7:])
        elif frame in (SWITCH_ON, SWITCH_OFF):
            self.relay_on = frame == SWITCH_ON
            self.on_chunk(bytes.fromhex("0f0403000004ffff"))

    async def disconnect(self) -> None:
        self.on_chunk = None


def test_plug_readings_relay_switching_and_a_lost_link(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path
) -> None:
    plug = FakePlug()
    settings = AwoxSettings(
        mqtt_url=mosquitto.url, sensor_id="plug", period_seconds=0.2, awox_address="AA:BB:CC:DD:EE:FF"
    )
    with aggregator_online(mosquitto.url, database_url, tmp_path / "agg.log") as observer:
        runtime = CollectorRuntime(settings, "awox")
        runtime.publisher.start()
        thread = threading.Thread(target=run_plug, args=(runtime, lambda address: plug), daemon=True)
        thread.start()
        try:
            wait_until(lambda: count_rows(database_url) >= 6, message="six readings (across the lost link)")
            observer.publish("citizenwatt/plug/set", "ON")
            wait_until(
                lambda: count_rows(database_url, "SELECT count(*) FROM readings WHERE state") >= 1,
                message="a reading with the relay on",
            )
        finally:
            runtime.stop_event.set()
            thread.join(10)
            runtime.publisher.stop()
    assert plug.connections >= 2  # reconnected after the lost link
    assert SWITCH_ON in plug.sent
    with psycopg.connect(database_url) as conn:
        off = conn.execute("SELECT power, voltage FROM readings WHERE NOT state LIMIT 1").fetchone()
        on = conn.execute("SELECT power, voltage FROM readings WHERE state LIMIT 1").fetchone()
    assert off == (2.0, 231.0) and on == (1500.0, 231.0)  # 2000 mW and 1 500 000 mW
    events = [json.loads(p) for t, p, _ in observer.messages if t == "citizenwatt/plug/event"]
    assert any("checksum" in e["error"] for e in events)
