"""Start command: ``python -m citizenwatt_simulator`` (CW_SENSOR_ID, CW_PERIOD_SECONDS, CW_MQTT_URL...)."""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

from pydantic import Field

from citizenwatt_common.collector.runtime import CollectorRuntime, CollectorSettings, main_for
from citizenwatt_common.contract import Reading

from .household import SimulatedHousehold


class SimulatorSettings(CollectorSettings):
    sensor_id: str = Field(default="simulator", pattern="^[a-z0-9_-]{1,64}$")
    seed: int = Field(default=1, description="random seed of the simulated household")
    timezone: str = Field(default="Europe/Paris", description="whose daily rhythm to simulate")
    voltage: float = Field(default=230.0, description="nominal mains voltage reported with each reading")


def simulate(runtime: CollectorRuntime) -> None:
    settings = runtime.settings
    assert isinstance(settings, SimulatorSettings)
    house = SimulatedHousehold(seed=settings.seed, zone=ZoneInfo(settings.timezone))

    def read_once() -> Reading:
        ts = time.time()
        power = house.power_at(ts)
        return runtime.reading(power, ts=ts, voltage=settings.voltage, current=round(power / settings.voltage, 3))

    runtime.poll(read_once)


def main() -> None:
    main_for("simulator", SimulatorSettings, simulate)


if __name__ == "__main__":
    main()
