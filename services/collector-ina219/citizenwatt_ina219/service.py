"""Wiring: measure every period, publish a reading, or an error event when the range overflows."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from citizenwatt_common.collector import CollectorRuntime
from citizenwatt_common.contract import Reading

from .decoder import MeasurementRejected, convert
from .settings import Ina219Settings
from .transport import Chip, Ina219Chip, RangeOverflow

log = logging.getLogger(__name__)


def measure_forever(runtime: CollectorRuntime, open_chip: Callable[[Ina219Settings], Chip] = Ina219Chip) -> None:
    settings = runtime.settings
    assert isinstance(settings, Ina219Settings)
    chip: list[Chip] = []  # opened on first use, and again after the device went away

    def read_once() -> Reading | None:
        if not chip:
            chip.append(open_chip(settings))  # raises DeviceUnavailable: the runtime backs off
        try:
            measured_at = runtime.now()
            measurement = chip[0].measure()
        except RangeOverflow as exc:
            # Not a reading: publishing a clipped value would be a made-up number.
            log.warning("INA219 out of range: %s", exc)
            runtime.publisher.publish_extra(
                runtime.publisher.topics.event(settings.sensor_id),
                json.dumps({"error": "range overflow", "detail": str(exc), "ts": measured_at.wall}),
            )
            return None
        except Exception:
            chip.clear()
            raise
        converted = convert(measurement)
        if isinstance(converted, MeasurementRejected):
            log.warning("INA219 measurement refused: %s", converted.reason)
            return None
        return runtime.reading(
            converted.power_w, at=measured_at, voltage=converted.voltage_v, current=converted.current_a
        )

    runtime.poll(read_once)
