"""Time-of-use arithmetic, pure (no database): dated versions, windows at minute resolution on the
local wall clock (DST days), Tempo days from 06:00 to 06:00, subscriptions prorated per month, and
the rounding rule. Every expected figure is worked out by hand in the test's docstring or comments.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from citizenwatt_common.tariff_store import parse_tempo_payload
from citizenwatt_common.tariffs import (
    Choice,
    Plan,
    Tariff,
    TariffError,
    month_subscriptions,
    shown,
    shown_decimals,
    tempo_day_of,
    version_from_json,
)

PARIS = ZoneInfo("Europe/Paris")
HC_WINDOW = [{"start": "22:00", "end": "06:00", "period": "offpeak"}]


def at(text: str) -> float:
    """Unix time of a local Paris wall-clock time (the first one, where it repeats)."""
    return datetime.fromisoformat(text).replace(tzinfo=PARIS).timestamp()


def version(valid_from: str, **body: Any) -> Any:
    return version_from_json(date.fromisoformat(valid_from), body)


def plan_of(*tariffs: Tariff, choices: tuple[Choice, ...] | None = None) -> Plan:
    return Plan({t.id: t for t in tariffs}, choices or (Choice(date(2000, 1, 1), tariffs[0].id),))


HC = Tariff(
    1,
    "HC",
    "hc",
    True,
    (
        version(
            "2025-08-01",
            subscription_euros_per_month=15.74,
            periods={"peak": 0.2081, "offpeak": 0.1635},
            default_period="peak",
            windows=HC_WINDOW,
        ),
    ),
)


def hours(plan: Plan, lo: float, hi: float, colours: dict[date, str] | None = None) -> list[tuple[str, float]]:
    """(period, hours of real time) of each piece of [lo, hi)."""
    return [(p.period, (p.hi - p.lo) / 3600) for p in plan.pieces(lo, hi, PARIS, colours or {})]


def test_a_22_06_window_on_the_autumn_dst_day() -> None:
    """2026-10-25: 03:00 CEST becomes 02:00 CET, the day has 25 hours. Off-peak 00:00-06:00 local
    holds the repeated hour: 7 h of real time; peak 06:00-22:00: 16 h; off-peak 22:00-24:00: 2 h.
    The night window that started at 22:00 on the 24th lasts 2 + 7 = 9 h."""
    plan = plan_of(HC)
    assert hours(plan, at("2026-10-25T00:00"), at("2026-10-26T00:00")) == [
        ("offpeak", 7.0),
        ("peak", 16.0),
        ("offpeak", 2.0),
    ]
    night = plan.pieces(at("2026-10-24T20:00"), at("2026-10-25T08:00"), PARIS, {})
    assert [(p.period, (p.hi - p.lo) / 3600) for p in night] == [("peak", 2.0), ("offpeak", 9.0), ("peak", 2.0)]


def test_a_22_06_window_on_the_spring_dst_day() -> None:
    """2026-03-29: 02:00 CET becomes 03:00 CEST, the day has 23 hours. Off-peak 00:00-06:00 local
    is 5 h of real time, so the night from 22:00 on the 28th lasts 2 + 5 = 7 h."""
    plan = plan_of(HC)
    assert hours(plan, at("2026-03-28T22:00"), at("2026-03-29T06:00")) == [("offpeak", 7.0)]
    assert hours(plan, at("2026-03-29T00:00"), at("2026-03-30T00:00")) == [
        ("offpeak", 5.0),
        ("peak", 16.0),
        ("offpeak", 2.0),
    ]


def test_a_window_edge_in_the_skipped_hour_moves_with_the_clock() -> None:
    """A window from 02:30: on 2026-03-29 the clock jumps from 02:00 to 03:00, so the window starts
    at the jump (01:00 UTC), as a meter reading the wall clock would switch."""
    tariff = Tariff(
        2,
        "own",
        "custom",
        False,
        (
            version(
                "2026-01-01",
                periods={"peak": 0.2, "offpeak": 0.1},
                default_period="peak",
                windows=[{"start": "02:30", "end": "05:00", "period": "offpeak"}],
            ),
        ),
    )
    pieces = plan_of(tariff).pieces(at("2026-03-29T00:00"), at("2026-03-29T06:00"), PARIS, {})
    jump = datetime(2026, 3, 29, 1, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert [(p.period, p.lo, p.hi) for p in pieces] == [
        ("peak", at("2026-03-29T00:00"), jump),
        ("offpeak", jump, at("2026-03-29T05:00")),
        ("peak", at("2026-03-29T05:00"), at("2026-03-29T06:00")),
    ]


def test_two_windows_at_minute_resolution() -> None:
    """Off-peak 01:00-07:00 and 12:37-14:30 (an edge off the quarter hours): the day 2026-06-10
    (summer, 24 h) is peak 1 h, off-peak 6 h, peak 5 h 37 min, off-peak 1 h 53 min, peak 9 h 30 min."""
    tariff = Tariff(
        3,
        "two windows",
        "custom",
        False,
        (
            version(
                "2026-01-01",
                periods={"peak": 0.25, "offpeak": 0.15},
                default_period="peak",
                windows=[
                    {"start": "12:37", "end": "14:30", "period": "offpeak"},
                    {"start": "01:00", "end": "07:00", "period": "offpeak"},
                ],
            ),
        ),
    )
    got = [(p, round(h * 60)) for p, h in hours(plan_of(tariff), at("2026-06-10T00:00"), at("2026-06-11T00:00"))]
    assert got == [("peak", 60), ("offpeak", 360), ("peak", 337), ("offpeak", 113), ("peak", 570)]


def test_a_version_applies_from_its_local_midnight() -> None:
    """Base 0.1952 from 2025-08-01, 0.2100 from 2025-08-16: the 15th is at the old price to
    local midnight (22:00 UTC in summer), the 16th at the new one."""
    base = Tariff(
        4,
        "Base",
        "base",
        True,
        (
            version("2025-08-01", subscription_euros_per_month=15.47, periods={"base": 0.1952}),
            version("2025-08-16", subscription_euros_per_month=16.12, periods={"base": 0.2100}),
        ),
    )
    pieces = plan_of(base).pieces(at("2025-08-15T12:00"), at("2025-08-16T12:00"), PARIS, {})
    assert [(p.euros_per_kwh, p.hi - p.lo) for p in pieces] == [(Decimal("0.1952"), 43200), (Decimal("0.2100"), 43200)]
    assert pieces[0].hi == datetime(2025, 8, 15, 22, tzinfo=ZoneInfo("UTC")).timestamp()


def test_the_household_switching_tariff_from_a_date() -> None:
    """On Base until 2026-01-09, then on HC: the 8th has no window, the 9th has."""
    base = Tariff(4, "Base", "base", True, (version("2025-08-01", periods={"base": 0.1952}),))
    plan = plan_of(base, HC, choices=(Choice(date(2000, 1, 1), 4), Choice(date(2026, 1, 9), 1)))
    assert hours(plan, at("2026-01-08T00:00"), at("2026-01-10T00:00")) == [
        ("base", 24.0),
        ("offpeak", 6.0),
        ("peak", 16.0),
        ("offpeak", 2.0),
    ]


TEMPO = Tariff(
    5,
    "Tempo",
    "tempo",
    True,
    (
        version(
            "2025-08-01",
            periods={
                "peak": {"blue": 0.1494, "white": 0.1730, "red": 0.6468},
                "offpeak": {"blue": 0.1232, "white": 0.1391, "red": 0.1460},
            },
            default_period="peak",
            windows=HC_WINDOW,
        ),
    ),
)


def test_a_tempo_day_runs_from_0600_to_0600() -> None:
    """2026-01-08 is red, the 9th unknown: 00:00-06:00 on the 8th belongs to the 7th (unknown:
    blue, assumed), 06:00-22:00 red peak, 22:00 to 06:00 on the 9th red off-peak (the red day's
    night), then the 9th's peak, assumed blue."""
    pieces = plan_of(TEMPO).pieces(at("2026-01-08T00:00"), at("2026-01-09T12:00"), PARIS, {date(2026, 1, 8): "red"})
    assert [(p.period, p.colour, p.colour_assumed, p.euros_per_kwh, (p.hi - p.lo) / 3600) for p in pieces] == [
        ("offpeak", "blue", True, Decimal("0.1232"), 6.0),
        ("peak", "red", False, Decimal("0.6468"), 16.0),
        ("offpeak", "red", False, Decimal("0.1460"), 8.0),
        ("peak", "blue", True, Decimal("0.1494"), 6.0),
    ]
    # A blue day after an unknown one: the same price, but only one is assumed, so a stretch at one
    # price across the 06:00 edge stays two pieces. Off-peak 22:00-07:00 here: 22:00-06:00 belongs to
    # the unknown 7th (8 h, assumed), 06:00-07:00 to the blue 8th (1 h, announced).
    late = version(
        "2025-08-01",
        periods=TEMPO.versions[0].as_json()["periods"],
        default_period="peak",
        windows=[{"start": "22:00", "end": "07:00", "period": "offpeak"}],
    )
    tariff = Tariff(6, "Tempo, late mornings", "custom", False, (late,))
    both = plan_of(tariff).pieces(at("2026-01-07T22:00"), at("2026-01-08T07:00"), PARIS, {date(2026, 1, 8): "blue"})
    assert [(p.period, p.colour, p.colour_assumed, (p.hi - p.lo) / 3600) for p in both] == [
        ("offpeak", "blue", True, 8.0),
        ("offpeak", "blue", False, 1.0),
    ]
    assert tempo_day_of(datetime(2026, 1, 9, 5, 59, tzinfo=PARIS)) == date(2026, 1, 8)
    assert tempo_day_of(datetime(2026, 1, 9, 6, 0, tzinfo=PARIS)) == date(2026, 1, 9)


def test_subscriptions_prorated_per_local_month() -> None:
    """15.74 EUR/month. A whole month is 15.74 whatever its length; a day of January (31 days) is
    15.74/31; the 25-hour 2026-10-25 is 25/745 of October's 15.74 (October 2026 has 31*24+1 = 745 h).
    A version from 2025-08-16 at 16.12: August 2025 costs 15.47*15/31 + 16.12*16/31
    = (232.05 + 257.92)/31 = 489.97/31 = 15.8054838..."""
    plan = plan_of(HC)
    assert month_subscriptions(at("2026-02-01T00:00"), at("2026-03-01T00:00"), plan, PARIS) == Decimal("15.74")
    assert month_subscriptions(at("2026-01-15T00:00"), at("2026-01-16T00:00"), plan, PARIS) == Decimal(
        "15.74"
    ) / Decimal(31)
    october_day = month_subscriptions(at("2026-10-25T00:00"), at("2026-10-26T00:00"), plan, PARIS)
    assert october_day == Decimal("15.74") * Decimal(25 * 3600) / Decimal(745 * 3600)
    # A bucket across two months: the last day of January and the first of February (28 days).
    two = month_subscriptions(at("2026-01-31T00:00"), at("2026-02-02T00:00"), plan, PARIS)
    assert two == Decimal("15.74") / Decimal(31) + Decimal("15.74") / Decimal(28)
    base = Tariff(
        4,
        "Base",
        "base",
        True,
        (
            version("2025-08-01", subscription_euros_per_month=15.47, periods={"base": 0.1952}),
            version("2025-08-16", subscription_euros_per_month=16.12, periods={"base": 0.2100}),
        ),
    )
    august = month_subscriptions(at("2025-08-01T00:00"), at("2025-09-01T00:00"), plan_of(base), PARIS)
    assert august == pytest.approx(Decimal("15.47") * 15 / 31 + Decimal("16.12") * 16 / 31, abs=Decimal("1e-20"))
    assert round(august, 6) == Decimal("15.805484")


def test_the_rounding_rule() -> None:
    """3 Wh at 0.2 EUR/kWh = 0.0006 EUR needs 5 decimals for two significant digits ("0.00060");
    cents suffice from 0.1 up; never more than 6 decimals."""
    assert shown_decimals([Decimal("0.0006"), Decimal("1.5")]) == 5
    assert shown(Decimal("0.0006"), 5) == Decimal("0.00060") and str(shown(Decimal("0.0006"), 5)) == "0.00060"
    assert shown_decimals([Decimal("0.12"), Decimal("31.4")]) == 2
    assert shown_decimals([Decimal("0.05")]) == 3
    assert shown_decimals([Decimal(0)]) == 2
    assert shown_decimals([Decimal("0.00000001")]) == 6
    assert shown(Decimal("0.125"), 2) == Decimal("0.13")  # half away from zero, as on a bill


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {
                "periods": {"peak": 0.2, "offpeak": 0.1},
                "default_period": "peak",
                "windows": [
                    {"start": "22:00", "end": "06:00", "period": "offpeak"},
                    {"start": "05:00", "end": "07:00", "period": "offpeak"},
                ],
            },
            "overlap",
        ),
        (
            {
                "periods": {"peak": 0.2, "offpeak": 0.1},
                "default_period": "peak",
                "windows": [
                    {"start": "01:00", "end": "07:00", "period": "offpeak"},
                    {"start": "23:00", "end": "01:30", "period": "offpeak"},
                ],
            },
            "overlap",
        ),
        (
            {
                "periods": {"peak": 0.2, "offpeak": 0.1},
                "default_period": "peak",
                "windows": [{"start": "24:00", "end": "06:00", "period": "offpeak"}],
            },
            "HH:MM",
        ),
        (
            {
                "periods": {"peak": 0.2, "offpeak": 0.1},
                "default_period": "peak",
                "windows": [{"start": "7:5", "end": "08:00", "period": "offpeak"}],
            },
            "HH:MM",
        ),
        ({"periods": {"base": -0.1}}, ">= 0"),
        ({"periods": {"base": 0.1}, "subscription_euros_per_month": -1}, ">= 0"),
        ({"periods": {"peak": 0.2}, "default_period": "night"}, "default_period"),
        ({"periods": {"peak": {"blue": 0.1, "white": 0.2}}, "default_period": "peak"}, "blue, white and red"),
        (
            {
                "periods": {"peak": 0.2, "offpeak": 0.1},
                "default_period": "peak",
                "windows": [{"start": "06:00", "end": "06:00", "period": "offpeak"}],
            },
            "empty",
        ),
        ({"periods": {}}, "at least one period"),
    ],
)
def test_bad_versions_are_refused_with_a_reason(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(TariffError, match=reason):
        version("2026-01-01", **body)


def test_tempo_payloads() -> None:
    assert parse_tempo_payload(b"red") == "red"
    assert parse_tempo_payload(b' "White" ') == "white"
    assert parse_tempo_payload(b'{"colour": "blue"}') == "blue"
    for bad in (b"purple", b"{not json", b'{"colour": 3}', b"\xff\xfe", b"[]", b""):
        with pytest.raises(TariffError):
            parse_tempo_payload(bad)
