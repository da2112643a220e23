"""Alert rules: pure functions from rollups and timestamps to findings (no database, no MQTT).

The aggregator feeds them from the 15-minute rollups and the sensors table on a timer and
publishes what they find; the README's "Alerts" section states the same rules in prose.

- **Standby baseline**: for each of the last nights, the lowest mean power over ``sustain``
  consecutive, fully measured quarter hours inside the night hours; the baseline is the median
  of those nightly lows. A fridge cycling on and off never sits at its lowest for an hour, so
  the hour-long mean counts it as the always-on load it is; the median keeps one odd night (a
  power cut, a dishwasher on a timer) from setting the figure.
- **Unusual hour**: an hour's energy above ``max(factor x usual, usual + margin)``, where usual
  is the median energy of the same local weekday and hour over the previous weeks whose hour
  was fully measured (weeks without data are left out, and too few weeks mean no verdict).
- **Silent sensor**: no reading for longer than ``max(factor x its period, min_seconds)``, its
  period being the median spacing of its latest readings; a sensor silent for longer than
  ``forget_seconds`` counts as removed and is no longer reported.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

from .energy import ROLLUP_SECONDS
from .tariffs import Version

AlertKind = Literal["silent", "unusual", "standby"]
KINDS: Final[tuple[AlertKind, ...]] = ("silent", "unusual", "standby")
HOURS_PER_YEAR: Final = 8760
# A quarter hour (or hour) counts as measured when its readings cover this share of it: a bucket
# half covered holds half its energy, which would read as a low standby or a quiet usual hour.
MIN_COVERAGE: Final = 0.9


@dataclass(frozen=True)
class Quarter:
    """One 15-minute rollup of one sensor, day and night parts added: Wh and seconds covered."""

    start: float
    wh: float
    seconds: float

    @property
    def measured(self) -> bool:
        return self.seconds >= MIN_COVERAGE * ROLLUP_SECONDS


@dataclass(frozen=True)
class Finding:
    """One active alert of one sensor. ``since``: when it began, when the rule knows it (a silence
    begins when the allowance ran out); otherwise the time it was first found is used."""

    kind: AlertKind
    message: str
    details: Mapping[str, float | int | str | None] = field(default_factory=dict)
    since: float | None = None


@dataclass(frozen=True)
class Standby:
    watts: float
    nights: int  # how many nights had a sustained low to go by


# -- standby -------------------------------------------------------------------------------------


def night_windows(now: float, zone: ZoneInfo, start_hour: int, end_hour: int, nights: int) -> list[tuple[float, float]]:
    """The last ``nights`` local night windows [start_hour, end_hour) that ended at or before ``now``,
    oldest first. A start after the end wraps midnight (23 to 5: from 23:00 the evening before)."""
    today = datetime.fromtimestamp(now, zone).date()
    windows: list[tuple[float, float]] = []
    day = today
    while len(windows) < nights:
        end = _local(day, end_hour, zone)
        start = _local(day - timedelta(days=1) if start_hour >= end_hour else day, start_hour, zone)
        if end <= now:
            windows.append((start, end))
        day -= timedelta(days=1)
    return windows[::-1]


def _local(day: date, hour: int, zone: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, hour, tzinfo=zone).timestamp()


def night_low(quarters: Iterable[Quarter], start: float, end: float, sustain: int) -> float | None:
    """The lowest mean power (W) over ``sustain`` consecutive measured quarters inside [start, end),
    or None when the night has no such run (the sensor was off, or not measuring all along)."""
    inside = {q.start: q for q in quarters if start <= q.start and q.start + ROLLUP_SECONDS <= end and q.measured}
    lowest: float | None = None
    for first in sorted(inside):
        run = [inside.get(first + i * ROLLUP_SECONDS) for i in range(sustain)]
        if any(q is None for q in run):
            continue
        wh = sum(q.wh for q in run if q is not None)
        seconds = sum(q.seconds for q in run if q is not None)
        mean = wh * 3600 / seconds
        lowest = mean if lowest is None else min(lowest, mean)
    return lowest


def standby_baseline(
    quarters: Sequence[Quarter], windows: Sequence[tuple[float, float]], sustain: int
) -> Standby | None:
    """The median of the nights' sustained lows (see the module's docstring), or None without any."""
    lows = [low for a, b in windows if (low := night_low(quarters, a, b, sustain)) is not None]
    if not lows:
        return None
    return Standby(watts=statistics.median(lows), nights=len(lows))


# Tempo's calendar: of a year's days, 300 are blue, 43 white and 22 red (RTE chooses which).
TEMPO_DAYS_PER_YEAR: Final[Mapping[str, int]] = {"blue": 300, "white": 43, "red": 22}


def all_day_price(version: Version) -> float:
    """EUR/kWh of a load drawing the same power around the clock under a tariff version: each
    period's price weighted by the minutes of the day it applies (off-peak 22:00-06:00: 16/24 of
    the peak price plus 8/24 of the off-peak price) and, on Tempo, each colour by its days a year."""
    minutes: dict[str, int] = {}
    for window in version.windows:
        for lo, hi in window.spans():
            minutes[window.period] = minutes.get(window.period, 0) + hi - lo
    # Windows never overlap (the version refuses it): the default period has the rest of the day.
    minutes[version.default_period] = minutes.get(version.default_period, 0) + 1440 - sum(minutes.values())
    colours = TEMPO_DAYS_PER_YEAR if version.is_tempo else {"": 1}
    days = sum(colours.values())
    return sum(
        float(version.price_of(period, colour or None)) * share / 1440 * count / days
        for period, share in minutes.items()
        for colour, count in colours.items()
    )


def yearly_cost(watts: float, euros_per_kwh: float) -> float:
    """What a constant load costs in a year: W x 8760 h / 1000 x EUR/kWh."""
    return watts * HOURS_PER_YEAR / 1000 * euros_per_kwh


def standby_finding(standby: Standby | None, limit_watts: float, euros_per_year: float | None) -> Finding | None:
    """An alert when the baseline is above ``limit_watts`` (0: never)."""
    if standby is None or limit_watts <= 0 or standby.watts <= limit_watts:
        return None
    cost = f", about {euros_per_year:.0f} EUR a year" if euros_per_year is not None else ""
    return Finding(
        "standby",
        f"standby power {standby.watts:.0f} W{cost} (alert above {limit_watts:g} W)",
        {"standby_w": standby.watts, "limit_w": limit_watts, "euros_per_year": euros_per_year},
    )


# -- unusual hour --------------------------------------------------------------------------------


def local_hour_start(ts: float, zone: ZoneInfo) -> float:
    """Start of the local hour holding ``ts`` (a real hour: on a DST day, 23 or 25 of them)."""
    local = datetime.fromtimestamp(ts, zone)
    return local.replace(minute=0, second=0, microsecond=0).timestamp()


def same_hour_weeks_before(hour_start: float, zone: ZoneInfo, weeks: int) -> list[float]:
    """The same local weekday and hour 1, 2, ... ``weeks`` weeks earlier (wall clock, across DST)."""
    local = datetime.fromtimestamp(hour_start, zone)
    starts = []
    for i in range(1, weeks + 1):
        earlier = (local.replace(tzinfo=None) - timedelta(weeks=i)).replace(tzinfo=zone, fold=local.fold)
        starts.append(earlier.timestamp())
    return starts


def hour_energy(quarters: Mapping[float, Quarter], hour_start: float, *, complete: bool) -> float | None:
    """Wh in the hour from ``hour_start``; with ``complete``, None unless it was measured all along
    (a usual hour must be a whole one, or a week of the sensor being off would lower the usual)."""
    parts = [quarters.get(hour_start + i * ROLLUP_SECONDS) for i in range(3600 // ROLLUP_SECONDS)]
    if complete:
        if any(q is None for q in parts):
            return None
        seconds = sum(q.seconds for q in parts if q is not None)
        if seconds < MIN_COVERAGE * 3600:
            return None
    return sum(q.wh for q in parts if q is not None)


def unusual_hour(
    hour_start: float,
    wh: float,
    history_wh: Sequence[float | None],
    zone: ZoneInfo,
    *,
    factor: float,
    margin_wh: float,
    min_weeks: int,
) -> Finding | None:
    """An alert when ``wh`` is above max(factor x usual, usual + margin); None when it is not, or
    when fewer than ``min_weeks`` of the history's weeks were measured (no usual to compare to)."""
    usable = [h for h in history_wh if h is not None]
    if len(usable) < max(1, min_weeks):
        return None
    usual = statistics.median(usable)
    threshold = max(factor * usual, usual + margin_wh)
    if wh <= threshold:
        return None
    local = datetime.fromtimestamp(hour_start, zone)
    end = datetime.fromtimestamp(hour_start + 3600, zone)
    return Finding(
        "unusual",
        f"{wh / 1000:.2f} kWh between {local:%H:%M} and {end:%H:%M}, usually {usual / 1000:.2f} kWh"
        f" on a {local:%A} at this hour (alert above {threshold / 1000:.2f} kWh)",
        {
            "hour_start": hour_start,
            "wh": wh,
            "usual_wh": usual,
            "threshold_wh": threshold,
            "weeks": len(usable),
        },
    )


# -- silence ---------------------------------------------------------------------------------------


def typical_period(timestamps: Iterable[float]) -> float | None:
    """The median spacing of these readings' timestamps, or None with fewer than two."""
    ordered = sorted(set(timestamps))
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    return statistics.median(gaps) if gaps else None


def silence_allowed(period: float | None, factor: float, min_seconds: float) -> float:
    return max(factor * period if period is not None else 0.0, min_seconds)


def silent(
    last_seen: float | None,
    period: float | None,
    now: float,
    zone: ZoneInfo,
    *,
    factor: float,
    min_seconds: float,
    forget_seconds: float,
) -> Finding | None:
    """An alert when the newest reading is older than the allowance; not for a sensor never heard
    from, nor for one silent longer than ``forget_seconds`` (0: never forgotten)."""
    if last_seen is None:
        return None
    allowed = silence_allowed(period, factor, min_seconds)
    quiet = now - last_seen
    if quiet <= allowed or (forget_seconds > 0 and quiet > forget_seconds):
        return None
    expected = f" (expected every {period:g} s)" if period is not None else ""
    return Finding(
        "silent",
        f"no reading since {datetime.fromtimestamp(last_seen, zone):%Y-%m-%d %H:%M}{expected}",
        {"last_seen": last_seen, "period_s": period, "allowed_s": allowed},
        since=last_seen + allowed,
    )
