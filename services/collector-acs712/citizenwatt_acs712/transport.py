"""The serial port (pyserial). Only this module touches the device; tests give it a real pseudo-terminal."""

from __future__ import annotations

import contextlib

import serial

from citizenwatt_common.collector import DeviceUnavailable


class ArduinoPort:
    def __init__(self, path: str, baud: int) -> None:
        self.path = path
        try:
            # A short timeout, so the loop notices a stop request within a second.
            self._port = serial.Serial(path, baud, timeout=1)
        except (serial.SerialException, OSError) as exc:
            raise DeviceUnavailable(f"Arduino on {path}: {exc}; is it plugged in (ls /dev/ttyACM*)?") from exc

    def read_line(self) -> bytes:
        """One line, or b"" after a second of silence. Raises DeviceUnavailable if the board went away."""
        try:
            return bytes(self._port.readline())
        except (serial.SerialException, OSError) as exc:
            raise DeviceUnavailable(f"Arduino on {self.path} went away: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()
