"""Wiring: read lines continuously, stamp each on arrival, decode, publish.

The original reader slept 8 s between reads while the board wrote every second, so lines piled
up in the OS buffer and the data lagged more and more. Here every line is read as it comes and
stamped then; the period setting is not used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from citizenwatt_common.collector import CollectorRuntime, DeviceUnavailable

from .decoder import LineRejected, decode_line
from .settings import Acs712Settings
from .transport import ArduinoPort

log = logging.getLogger(__name__)


def read_lines(runtime: CollectorRuntime, open_port: Callable[[str, int], ArduinoPort] = ArduinoPort) -> None:
    settings = runtime.settings
    assert isinstance(settings, Acs712Settings)
    port: ArduinoPort | None = None
    first_line = True
    while not runtime.stop_event.is_set():
        if port is None:
            try:
                port = open_port(settings.acs712_port, settings.acs712_baud)
            except DeviceUnavailable as exc:
                runtime.device_failed(exc)
                continue
            runtime.device_ok()
            first_line = True
        try:
            raw = port.read_line()
        except DeviceUnavailable as exc:
            port.close()
            port = None
            runtime.device_failed(exc)
            continue
        received_at = runtime.now()
        if not raw:
            continue
        if first_line and not raw.endswith(b"\n"):
            first_line = False
            continue  # opened in the middle of a line: its start is lost
        first_line = False
        decoded = decode_line(raw)
        if isinstance(decoded, LineRejected):
            log.warning("serial line refused: %s", decoded.reason)
            continue
        runtime.publish(
            runtime.reading(
                decoded.power,
                at=received_at,
                current=decoded.current,
                voltage=decoded.voltage,
                battery=decoded.battery,
                soc=decoded.soc,
            )
        )
