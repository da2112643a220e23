"""Day/night tariff windows: which readings fall in the cheaper night hours."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_hhmm(text: str) -> int:
    """``"22:30"`` -> minutes after local midnight (1350). Raises ValueError otherwise."""
    match = _HHMM.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a time of day as HH:MM (00:00 to 23:59)")
    return int(match.group(1)) * 60 + int(match.group(2))


def format_hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class NightWindow:
    """Local wall-clock window [start, end) in minutes after midnight; wraps midnight if end <= start.

    An equal start and end means the whole day is night (a 24 h window), which is how a user
    would express "always the night price"; no window at all is represented by ``None``.
    """

    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        for value in (self.start_minute, self.end_minute):
            if not 0 <= value < 1440:
                raise ValueError("night window bounds must be within 00:00..23:59")

    @classmethod
    def parse(cls, start: str, end: str) -> NightWindow:
        return cls(parse_hhmm(start), parse_hhmm(end))

    @property
    def start(self) -> str:
        return format_hhmm(self.start_minute)

    @property
    def end(self) -> str:
        return format_hhmm(self.end_minute)

    def contains_minute(self, minute_of_day: int) -> bool:
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute_of_day < self.end_minute
        # Wraps midnight (22:30-06:30), or covers the whole day when start == end.
        return minute_of_day >= self.start_minute or minute_of_day < self.end_minute

    def is_night(self, ts: float, zone: ZoneInfo) -> bool:
        """Whether unix time ``ts`` falls in the window, read on the household's wall clock.

        Wall-clock reading is what the electricity meter does, so on a DST change day the
        window is still e.g. 22:30-06:30 local, and lasts one hour more or less.
        """
        local = datetime.fromtimestamp(ts, zone)
        return self.contains_minute(local.hour * 60 + local.minute)


def night_flag(window: NightWindow | None, ts: float, zone: ZoneInfo) -> bool:
    return window is not None and window.is_night(ts, zone)
