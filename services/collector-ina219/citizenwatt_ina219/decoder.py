"""Pure conversion of the INA219's measurements (the library's units) into a reading's."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    bus_voltage_v: float
    current_ma: float
    power_mw: float


@dataclass(frozen=True)
class Converted:
    power_w: float
    voltage_v: float
    current_a: float


@dataclass(frozen=True)
class MeasurementRejected:
    reason: str


def convert(measurement: Measurement) -> Converted | MeasurementRejected:
    values = (measurement.bus_voltage_v, measurement.current_ma, measurement.power_mw)
    if not all(math.isfinite(v) for v in values):
        return MeasurementRejected(f"non-finite measurement {values}")
    if not 0 <= measurement.bus_voltage_v <= 32:  # the chip's bus input tops out at 26 V (32 V range)
        return MeasurementRejected(f"bus voltage {measurement.bus_voltage_v} V outside 0..32 V")
    return Converted(measurement.power_mw / 1000, measurement.bus_voltage_v, measurement.current_ma / 1000)
