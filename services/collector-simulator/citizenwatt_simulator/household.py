"""A believable household power trace: standby, a cycling fridge, a daily rhythm and appliances.

Pure and seeded: the same seed and timestamps give the same trace, so tests and demos repeat.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Appliance:
    name: str
    watts: float
    minutes: float  # typical run length
    starts_per_day: float  # on average, weighted by the hour-of-day activity curve


APPLIANCES: tuple[Appliance, ...] = (
    Appliance("kettle", 2000, 3, 4),
    Appliance("oven", 2400, 45, 0.6),
    Appliance("washing machine", 900, 90, 0.5),
    Appliance("dishwasher", 1200, 100, 0.6),
    Appliance("hair dryer", 1500, 8, 0.8),
    Appliance("television", 110, 120, 1.5),
    Appliance("vacuum cleaner", 700, 20, 0.3),
)

# Relative activity per local hour: asleep at night, peaks at breakfast and dinner.
ACTIVITY = (
    0.1,
    0.05,
    0.05,
    0.05,
    0.05,
    0.1,
    0.6,
    1.5,
    1.3,
    0.7,
    0.6,
    0.8,
    1.2,
    1.0,
    0.6,
    0.6,
    0.8,
    1.2,
    1.8,
    2.0,
    1.8,
    1.4,
    0.8,
    0.3,
)
_ACTIVITY_MEAN = sum(ACTIVITY) / len(ACTIVITY)


class SimulatedHousehold:
    def __init__(self, seed: int = 1, zone: ZoneInfo | None = None, standby_watts: float = 85.0) -> None:
        self._rng = random.Random(seed)
        self._zone = zone or ZoneInfo("Europe/Paris")
        self._standby = standby_watts
        self._running: dict[str, float] = {}  # appliance name -> unix time it stops
        self._last_ts: float | None = None
        self._fridge_phase = self._rng.uniform(0, 2700)

    def power_at(self, ts: float) -> float:
        """Advance the simulation to unix time ``ts`` (non-decreasing) and return watts."""
        dt = 0.0 if self._last_ts is None else max(0.0, ts - self._last_ts)
        self._last_ts = ts
        hour = datetime.fromtimestamp(ts, self._zone).hour
        activity = ACTIVITY[hour] / _ACTIVITY_MEAN
        for appliance in APPLIANCES:
            if appliance.name in self._running:
                if ts >= self._running[appliance.name]:
                    del self._running[appliance.name]
                continue
            # Poisson starts: probability of at least one start in dt seconds.
            rate_per_s = appliance.starts_per_day * activity / 86_400
            if dt > 0 and self._rng.random() < 1 - math.exp(-rate_per_s * dt):
                run_s = appliance.minutes * 60 * self._rng.uniform(0.6, 1.4)
                self._running[appliance.name] = ts + run_s
        watts = self._standby + self._fridge(ts) + self._lighting(hour)
        watts += sum(a.watts for a in APPLIANCES if a.name in self._running)
        # Measurement noise of a current clamp: a few percent.
        return round(max(0.0, watts * self._rng.gauss(1.0, 0.015)), 1)

    def _fridge(self, ts: float) -> float:
        # Compressor on for 15 min out of every 45, with a start-up surge.
        position = (ts + self._fridge_phase) % 2700
        if position < 900:
            return 160.0 if position < 20 else 95.0
        return 0.0

    @staticmethod
    def _lighting(hour: int) -> float:
        return 120.0 if hour in (6, 7, 18, 19, 20, 21, 22) else 0.0
