"""The chip, through pi-ina219. Only this module touches I²C; tests replace the chip."""

from __future__ import annotations

from typing import Protocol

from citizenwatt_common.collector import DeviceUnavailable

from .decoder import Measurement
from .settings import Ina219Settings


class RangeOverflow(Exception):
    """The current or power exceeded what the configured range can measure."""


class Chip(Protocol):
    def measure(self) -> Measurement: ...


class Ina219Chip:
    def __init__(self, settings: Ina219Settings) -> None:
        where = f"INA219 at {settings.ina219_address:#04x} on /dev/i2c-{settings.ina219_bus}"
        try:
            from ina219 import INA219, DeviceRangeError  # pi-ina219: on the Pi only
        except ImportError as exc:
            raise DeviceUnavailable(f"pi-ina219 is not installed ({exc}): this collector runs on a Pi") from exc
        self._range_error = DeviceRangeError
        self._where = where
        try:
            self._chip = INA219(
                settings.ina219_shunt_ohms,
                settings.ina219_max_expected_amps,
                address=settings.ina219_address,
                busnum=settings.ina219_bus,
            )
            self._chip.configure()
        except OSError as exc:
            raise DeviceUnavailable(f"{where}: {exc}; is I²C enabled (raspi-config) and the chip wired?") from exc

    def measure(self) -> Measurement:
        try:
            return Measurement(self._chip.voltage(), self._chip.current(), self._chip.power())
        except self._range_error as exc:
            raise RangeOverflow(str(exc)) from exc
        except OSError as exc:
            raise DeviceUnavailable(f"{self._where} stopped answering: {exc}") from exc
