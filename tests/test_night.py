"""Night windows: minute resolution, wrapping midnight, read on the local wall clock (DST)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from citizenwatt_common.night import NightWindow, parse_hhmm

PARIS = ZoneInfo("Europe/Paris")


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS).timestamp()


def test_window_wrapping_midnight() -> None:
    window = NightWindow.parse("22:30", "06:30")
    assert not window.is_night(ts("2026-06-01T22:29"), PARIS)
    assert window.is_night(ts("2026-06-01T22:30"), PARIS)
    assert window.is_night(ts("2026-06-02T00:00"), PARIS)
    assert window.is_night(ts("2026-06-02T06:29"), PARIS)
    assert not window.is_night(ts("2026-06-02T06:30"), PARIS)


def test_window_within_a_day() -> None:
    window = NightWindow.parse("01:15", "07:45")
    assert [window.contains_minute(m) for m in (74, 75, 464, 465)] == [False, True, True, False]


def test_dst_day_uses_the_wall_clock() -> None:
    # 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST. 01:59 CET is 00:59 UTC; 03:00 CEST is 01:00 UTC.
    window = NightWindow.parse("02:30", "03:30")

    def utc(hour: int, minute: int) -> float:
        return datetime(2026, 3, 29, hour, minute, tzinfo=ZoneInfo("UTC")).timestamp()

    assert not window.is_night(utc(0, 59), PARIS)  # 01:59 CET
    assert window.is_night(utc(1, 0), PARIS)  # 03:00 CEST: 02:30-03:00 never happened that night
    assert window.is_night(utc(1, 29), PARIS)  # 03:29 CEST
    assert not window.is_night(utc(1, 30), PARIS)  # 03:30 CEST: the window lasted 30 real minutes


@pytest.mark.parametrize("text", ["24:00", "7:00", "07:60", "", "ab:cd"])
def test_bad_times_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        parse_hhmm(text)
