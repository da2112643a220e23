"""The alert rules on hand-made data, every expected value worked out by hand in the comments."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from zoneinfo import ZoneInfo

import pytest

from citizenwatt_common.alerts import (
    Quarter,
    Standby,
    all_day_price,
    hour_energy,
    local_hour_start,
    night_low,
    night_windows,
    same_hour_weeks_before,
    silent,
    standby_baseline,
    standby_finding,
    typical_period,
    unusual_hour,
    yearly_cost,
)
from citizenwatt_common.tariffs import Version, Window

UTC_ZONE = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def quarters(start: float, watts: list[float], seconds: float = 900.0) -> list[Quarter]:
    """Fully measured quarter hours at these powers: P W for 900 s is P / 4 Wh."""
    return [Quarter(start + 900 * i, w * seconds / 3600, seconds) for i, w in enumerate(watts)]


# -- standby ---------------------------------------------------------------------------------------


def test_night_windows_are_the_last_finished_nights_oldest_first() -> None:
    noon = ts("2026-11-25T12:00:00")
    assert night_windows(noon, UTC_ZONE, 1, 5, 2) == [
        (ts("2026-11-24T01:00:00"), ts("2026-11-24T05:00:00")),
        (ts("2026-11-25T01:00:00"), ts("2026-11-25T05:00:00")),
    ]
    # At 03:00 tonight's window is not over yet: the two before it.
    assert night_windows(ts("2026-11-25T03:00:00"), UTC_ZONE, 1, 5, 2) == [
        (ts("2026-11-23T01:00:00"), ts("2026-11-23T05:00:00")),
        (ts("2026-11-24T01:00:00"), ts("2026-11-24T05:00:00")),
    ]
    # 23 to 5 wraps midnight: from 23:00 the evening before.
    assert night_windows(noon, UTC_ZONE, 23, 5, 1) == [(ts("2026-11-24T23:00:00"), ts("2026-11-25T05:00:00"))]


def test_a_sustained_low_is_an_hour_long_mean_not_a_single_quiet_quarter() -> None:
    start = ts("2026-11-24T01:00:00")
    # 100 W all night but one quarter at 20 W (the fridge's compressor off): any hour holding that
    # quarter averages (20 + 3 x 100) / 4 = 80 W, and no hour goes lower.
    night = quarters(start, [100.0] * 5 + [20.0] + [100.0] * 10)
    assert night_low(night, start, start + 4 * 3600, sustain=4) == pytest.approx(80.0)
    # Sustained over one quarter only, the dip itself.
    assert night_low(night, start, start + 4 * 3600, sustain=1) == pytest.approx(20.0)


def test_standby_baseline_is_the_median_of_the_nightly_lows() -> None:
    n1, n2, n3 = ts("2026-11-22T01:00:00"), ts("2026-11-23T01:00:00"), ts("2026-11-24T01:00:00")
    windows = [(n, n + 4 * 3600) for n in (n1, n2, n3)]
    # Night 1: a fridge alternating 60 W and 140 W by quarter hour: every hour averages 100 W,
    # except those holding a 2000 W kettle quarter. Its low: 100 W.
    fridge = [60.0, 140.0] * 8
    fridge[9] = 2000.0
    # Night 2: 80 W throughout. Night 3: 120 W, with a quarter measured for 300 s only (a gap):
    # hours holding it are skipped, the others give 120 W.
    night3 = quarters(n3, [120.0] * 16)
    night3[6] = Quarter(night3[6].start, 120.0 * 300 / 3600, 300.0)
    data = [*quarters(n1, fridge), *quarters(n2, [80.0] * 16), *night3]
    # Lows 100, 80, 120: the median is 100 W.
    baseline = standby_baseline(data, windows, sustain=4)
    assert baseline is not None and baseline.nights == 3 and baseline.watts == pytest.approx(100.0)
    # A night with no measured hour at all (sensor off) is left out, not counted as 0 W.
    holes = quarters(n2, [5.0] * 16, seconds=400.0)
    baseline = standby_baseline([*quarters(n1, fridge), *holes], windows[:2], sustain=4)
    assert baseline is not None and baseline.nights == 1 and baseline.watts == pytest.approx(100.0)
    assert standby_baseline([], windows, sustain=4) is None


def test_quarters_outside_the_night_hours_do_not_count() -> None:
    start = ts("2026-11-24T01:00:00")
    # A quiet evening hour at 10 W just before 01:00, then 90 W all night.
    data = quarters(start - 3600, [10.0] * 4) + quarters(start, [90.0] * 16)
    assert night_low(data, start, start + 4 * 3600, sustain=4) == pytest.approx(90.0)


def test_yearly_cost_of_a_standby_load() -> None:
    # 100 W x 8760 h = 876 kWh; at 0.1940 EUR/kWh: 169.944 EUR.
    assert yearly_cost(100.0, 0.1940) == pytest.approx(169.944)
    base = Version(date(2026, 2, 1), Decimal("15.47"), {"base": Decimal("0.1940")}, "base")
    assert all_day_price(base) == pytest.approx(0.1940)
    # Off-peak 22:00-06:00: 16 h at 0.2065 and 8 h at 0.1579 per day,
    # (16 x 0.2065 + 8 x 0.1579) / 24 = (3.304 + 1.2632) / 24 = 0.1903 EUR/kWh.
    hc = Version(
        date(2026, 2, 1),
        Decimal("15.74"),
        {"peak": Decimal("0.2065"), "offpeak": Decimal("0.1579")},
        "peak",
        (Window(22 * 60, 6 * 60, "offpeak"),),
    )
    price = all_day_price(hc)
    assert price == pytest.approx(0.1903)
    # 50 W x 8760 h = 438 kWh x 0.1903 = 83.3514 EUR.
    assert yearly_cost(50.0, price) == pytest.approx(83.3514)
    # Two windows, 01:30-07:00 (330 min) and 12:48-14:12 (84 min) at 0.10, the other 1026 min at 0.30:
    # (414 x 0.10 + 1026 x 0.30) / 1440 = (41.4 + 307.8) / 1440 = 0.2425 EUR/kWh.
    two = Version(
        date(2026, 2, 1),
        Decimal(0),
        {"peak": Decimal("0.30"), "offpeak": Decimal("0.10")},
        "peak",
        (Window(90, 420, "offpeak"), Window(768, 852, "offpeak")),
    )
    assert all_day_price(two) == pytest.approx(0.2425)


def test_a_tempo_standby_is_priced_over_the_colours_of_a_year() -> None:
    # Peak 06:00-22:00 (16 h), off-peak 22:00-06:00 (8 h), on 300 blue, 43 white and 22 red days:
    # blue  (16 x 0.1612 + 8 x 0.1325) / 24 = (2.5792 + 1.06) / 24  = 0.15163333
    # white (16 x 0.1871 + 8 x 0.1499) / 24 = (2.9936 + 1.1992) / 24 = 0.17470
    # red   (16 x 0.7060 + 8 x 0.1575) / 24 = (11.296 + 1.26) / 24   = 0.52316667
    # year: (300 x 0.15163333 + 43 x 0.17470 + 22 x 0.52316667) / 365
    #     = (45.49 + 7.5121 + 11.5096667) / 365 = 64.5117667 / 365 = 0.17674457 EUR/kWh.
    tempo = Version(
        date(2026, 2, 1),
        Decimal("15.74"),
        {
            "peak": {"blue": Decimal("0.1612"), "white": Decimal("0.1871"), "red": Decimal("0.7060")},
            "offpeak": {"blue": Decimal("0.1325"), "white": Decimal("0.1499"), "red": Decimal("0.1575")},
        },
        "peak",
        (Window(22 * 60, 6 * 60, "offpeak"),),
    )
    assert all_day_price(tempo) == pytest.approx(0.17674457)


def test_a_standby_alert_only_above_its_limit() -> None:
    assert standby_finding(Standby(150.0, 7), 0.0, 100.0) is None  # limit 0: never
    assert standby_finding(Standby(150.0, 7), 150.0, 100.0) is None
    finding = standby_finding(Standby(150.5, 7), 150.0, 255.0)
    assert finding is not None
    assert finding.message == "standby power 150 W, about 255 EUR a year (alert above 150 W)"


# -- unusual hour ----------------------------------------------------------------------------------


def test_an_hour_is_unusual_above_max_of_factor_times_usual_and_usual_plus_margin() -> None:
    hour = ts("2026-11-25T14:00:00")  # a Wednesday
    # Five weeks back, one without data: usual = median(400, 420, 450, 500) = (420 + 450) / 2 = 435 Wh;
    # threshold = max(2 x 435 = 870, 435 + 500 = 935) = 935 Wh.
    history = [400.0, 500.0, None, 450.0, 420.0]
    rule = partial(unusual_hour, zone=UTC_ZONE, factor=2.0, margin_wh=500.0, min_weeks=3)
    assert rule(hour, 935.0, history) is None
    finding = rule(hour, 936.0, history)
    assert finding is not None and finding.kind == "unusual"
    assert finding.details["usual_wh"] == 435.0 and finding.details["threshold_wh"] == 935.0
    assert finding.details["weeks"] == 4
    assert finding.message == (
        "0.94 kWh between 14:00 and 15:00, usually 0.43 kWh on a Wednesday at this hour (alert above 0.94 kWh)"
    )
    # A busy hour (usual 1500 Wh): the factor decides, max(3000, 2000) = 3000 Wh.
    busy = [1500.0, 1500.0, 1500.0]
    assert rule(hour, 2999.0, busy) is None
    assert rule(hour, 3001.0, busy) is not None
    # Two measured weeks are fewer than three: no usual, no verdict, however large the hour.
    assert rule(hour, 1e6, [100.0, None, 100.0]) is None


def test_hour_energy_of_a_whole_hour_needs_it_measured_all_along() -> None:
    hour = ts("2026-11-25T14:00:00")
    full = {q.start: q for q in quarters(hour, [900.0] * 4)}  # 4 x 225 Wh
    assert hour_energy(full, hour, complete=True) == pytest.approx(900.0)
    missing = dict(full)
    del missing[hour + 1800]
    assert hour_energy(missing, hour, complete=True) is None
    assert hour_energy(missing, hour, complete=False) == pytest.approx(675.0)  # the hour so far
    # 3 x 900 s + 300 s = 3000 s, under 90 % of 3600 s.
    short = {**full, hour + 2700: Quarter(hour + 2700, 75.0, 300.0)}
    assert hour_energy(short, hour, complete=True) is None


def test_same_weekday_and_hour_on_the_wall_clock_across_a_dst_change() -> None:
    # Wednesday 4 November 2026, 10:00 in Paris (UTC+1) is 09:00 UTC. A week before, 28 October
    # 10:00, is after the change of 25 October: 09:00 UTC too; two weeks before, 21 October
    # 10:00 summer time (UTC+2), is 08:00 UTC.
    hour = local_hour_start(ts("2026-11-04T09:25:00"), PARIS)
    assert hour == ts("2026-11-04T09:00:00")
    assert same_hour_weeks_before(hour, PARIS, 2) == [ts("2026-10-28T09:00:00"), ts("2026-10-21T08:00:00")]


# -- silence ---------------------------------------------------------------------------------------


def test_typical_period_is_the_median_spacing() -> None:
    # Spacings 8, 8, 8, 16 (a reading lost): median 8 s.
    assert typical_period([40.0, 0.0, 8.0, 16.0, 24.0]) == 8.0
    assert typical_period([5.0]) is None


def test_silent_beyond_factor_times_period_or_the_minimum() -> None:
    rule = partial(silent, zone=UTC_ZONE, factor=10.0, min_seconds=300.0, forget_seconds=30 * 86400.0)
    last = ts("2026-11-25T14:02:00")
    # Every 8 s: 10 x 8 = 80 s is under the 300 s minimum, which applies.
    assert rule(last, 8.0, last + 300) is None
    finding = rule(last, 8.0, last + 301)
    assert finding is not None
    assert finding.since == last + 300
    assert finding.message == "no reading since 2026-11-25 14:02 (expected every 8 s)"
    # Every 60 s: 10 x 60 = 600 s is allowed.
    assert rule(last, 60.0, last + 599) is None
    assert rule(last, 60.0, last + 601) is not None
    # A single reading: no period known, the minimum alone.
    assert rule(last, None, last + 301) is not None
    # Silent over 30 days: a removed sensor, not an alert; 0 never forgets.
    assert rule(last, 8.0, last + 31 * 86400) is None
    assert rule(last, 8.0, last + 31 * 86400, forget_seconds=0.0) is not None
    assert rule(None, 8.0, last) is None


def test_every_alert_setting_is_documented_with_its_default() -> None:
    from citizenwatt_aggregator.settings import AlertSettings
    from tools.localstack import REPO

    readme = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(CW_ALERT_[A-Z_]+)` \| `([^`]*)` \|", readme, flags=re.MULTILINE))
    fields = {name: info for name, info in AlertSettings.model_fields.items() if name.startswith("alert_")}
    assert len(rows) == len(fields) - 2  # every one but the two night hours, which share a row
    for name, info in fields.items():
        variable = f"CW_{name.upper()}"
        assert variable in readme, f"{variable} is not in the README"
        if variable in rows:  # the night hours share one row
            assert rows[variable] == f"{info.default:g}", variable
