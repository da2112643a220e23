"""The ACS712 collector: line formats, and the service on a real pseudo-terminal with real pyserial."""

from __future__ import annotations

import functools
import operator
import os
import threading
from pathlib import Path

import psycopg
import pytest

from citizenwatt_acs712.decoder import LineReading, LineRejected, decode_line
from citizenwatt_acs712.service import read_lines
from citizenwatt_acs712.settings import Acs712Settings
from citizenwatt_common.collector import CollectorRuntime
from tests.services import aggregator_online, count_rows, wait_until
from tools.localstack import LocalMosquitto

# Its subject is not storage: one backend is enough (the suite runs storage tests on both).
pytestmark = pytest.mark.backends("plain")


def cw1(body: str) -> bytes:
    checksum = functools.reduce(operator.xor, body.encode(), 0)  # NMEA-style XOR, computed independently
    return f"{body}*{checksum:02X}\r\n".encode()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"412.5\r\n", LineReading(power=412.5)),
        (b"3.9125|87.5|120.0\r\n", LineReading(power=120.0, battery=3.9125, soc=87.5)),
        (cw1("CW1 irms=1.250 vrms=230.0 p=287.5 n=2000"), LineReading(power=287.5, current=1.25, voltage=230.0)),
    ],
)
def test_the_three_line_formats(raw: bytes, expected: LineReading) -> None:
    assert decode_line(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"41", None),  # a truncated legacy line still parses as a number: nothing to detect there
        (cw1("CW1 irms=1.250 vrms=230.0 p=287.5 n=2000")[:-6] + b"\r\n", "checksum"),  # truncated
        (cw1("CW1 irms=1.250 vrms=230.0 p=287.5 n=2000").replace(b"287.5", b"287.6"), "does not match"),
        (b"abc\r\n", "not a number"),
        (b"1|2\r\n", "fields"),
        (b"\xff\xfe\r\n", "ASCII"),
        (b"nan\r\n", "finite"),
        (b"9.9|150|10\r\n", "out of range"),
    ],
)
def test_garbled_lines_are_refused(raw: bytes, reason: str | None) -> None:
    result = decode_line(raw)
    if reason is None:
        assert isinstance(result, LineReading)
    else:
        assert isinstance(result, LineRejected) and reason in result.reason


class Board:
    """A pseudo-terminal standing in for the Arduino's USB port, reachable through a stable symlink."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.plug()

    def plug(self) -> None:
        self.master, slave = os.openpty()
        name = os.ttyname(slave)
        self._slave = slave
        self.link.unlink(missing_ok=True)
        self.link.symlink_to(name)

    def unplug(self) -> None:
        self.link.unlink(missing_ok=True)
        os.close(self.master)
        os.close(self._slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)


def test_lines_reach_the_database_and_the_board_can_be_replugged(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path
) -> None:
    board = Board(tmp_path / "ttyACM0")
    settings = Acs712Settings(mqtt_url=mosquitto.url, sensor_id="arduino", acs712_port=str(board.link))
    with aggregator_online(mosquitto.url, database_url, tmp_path / "agg.log") as observer:
        runtime = CollectorRuntime(settings, "acs712")
        runtime.publisher.start()
        thread = threading.Thread(target=read_lines, args=(runtime,), daemon=True)
        thread.start()
        try:
            observer.wait_for(lambda ms: ("citizenwatt/arduino/status", b"online") in [(t, p) for t, p, _ in ms])
            board.write(b"100.0\r\n" + cw1("CW1 irms=0.500 vrms=230.0 p=115.0 n=2000") + b"garbage\r\n")
            wait_until(lambda: count_rows(database_url) == 2, message="two good lines stored")
            board.unplug()
            observer.wait_for(
                lambda ms: [p for t, p, _ in ms if t == "citizenwatt/arduino/status"][-1:] == [b"offline"]
            )
            board.plug()
            observer.wait_for(
                lambda ms: [p for t, p, _ in ms if t == "citizenwatt/arduino/status"][-1:] == [b"online"], timeout=90
            )
            board.write(b"3.9|80|250.0\r\n")
            wait_until(lambda: count_rows(database_url) == 3, message="a line after replugging")
        finally:
            runtime.stop_event.set()
            thread.join(10)
            runtime.publisher.stop()
            board.unplug()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT power, current, battery, soc FROM readings ORDER BY ts").fetchall()
    assert rows == [(100.0, None, None, None), (115.0, 0.5, None, None), (250.0, None, 3.9, 80.0)]
