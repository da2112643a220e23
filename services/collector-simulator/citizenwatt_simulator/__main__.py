"""Start command: ``python -m citizenwatt_simulator`` (CW_SENSOR_ID, CW_PERIOD_SECONDS, CW_MQTT_URL...)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from citizenwatt_common.collector.runtime import CollectorRuntime, CollectorSettings, settings_or_exit
from citizenwatt_common.contract import SENSOR_ID_PATTERN, Reading
from citizenwatt_common.envsettings import setting
from citizenwatt_common.logs import setup_logging

from .backfill import backfill, ran_before
from .household import SimulatedHousehold


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


class SimulatorSettings(CollectorSettings):
    sensor_id: str = setting(
        default="simulator", pattern=SENSOR_ID_PATTERN, description="MQTT <sensor_id> of this collector"
    )
    seed: int = setting(default=1, description="random seed of the simulated household")
    timezone: str = setting(default="Europe/Paris", description="whose daily rhythm to simulate", check=_check_zone)
    voltage: float = setting(default=230.0, description="nominal mains voltage reported with each reading")
    backfill_days: float = setting(
        default=0,
        ge=0,
        le=3660,
        description="on the first start, publish this many days of simulated past readings first (0: none)",
    )
    backfill_period_seconds: float = setting(
        default=60,
        gt=0,
        # Further apart than the aggregator's gap limit (300 s by default), readings bound no energy.
        le=300,
        description="seconds between two backfilled readings",
    )


def simulate(runtime: CollectorRuntime, *, ran_before: bool = False) -> None:
    settings = runtime.settings
    assert isinstance(settings, SimulatorSettings)
    zone = ZoneInfo(settings.timezone)
    backfill(
        runtime,
        ran_before=ran_before,
        days=settings.backfill_days,
        period=settings.backfill_period_seconds,
        seed=settings.seed,
        zone=zone,
        voltage=settings.voltage,
    )
    house = SimulatedHousehold(seed=settings.seed, zone=zone)

    def read_once() -> Reading:
        now = runtime.now()
        power = house.power_at(now.wall)
        return runtime.reading(power, at=now, voltage=settings.voltage, current=round(power / settings.voltage, 3))

    runtime.poll(read_once)


def main() -> None:
    # main_for's body, plus one look before the publisher creates its outbox files: files already
    # there mean a simulator ran here before, with a history of its own, and no backfill.
    settings = settings_or_exit("simulator", SimulatorSettings)
    setup_logging(settings.log_level)
    earlier = ran_before(settings.outbox_path)
    CollectorRuntime(settings, "simulator").run(lambda runtime: simulate(runtime, ran_before=earlier))


if __name__ == "__main__":
    main()
