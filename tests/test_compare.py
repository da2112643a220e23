"""Comparisons: a period beside the one before and the same period a year earlier, and split by
sensor, against values worked out by hand.

Every stored stretch is one reading a minute at a constant power from a local wall-clock time to
another, both ends included (well within the 300 s gap limit), so its energy is the power times
its real duration, all of it in the buckets it covers. No night window is set: all of it is day
energy, priced at the seeded EDF Base a fresh install is on: its version of 2025-08-01,
0.1952 EUR/kWh, in January 2026; before its first version (2025-02-01, 0.2016 EUR/kWh), that first
version's price.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from citizenwatt_api.app import create_app
from citizenwatt_api.settings import ApiSettings
from tests.conftest import ALL_BACKENDS
from tests.test_api_legacy import ADMIN, approx, store

PARIS = ZoneInfo("Europe/Paris")
PRICE = 0.1952  # January 2026
PRICE_JANUARY_2025 = 0.2016
pytestmark = pytest.mark.backends(*ALL_BACKENDS)


def stretch(database_url: str, sensor: str, local_start: str, local_end: str, watts: float) -> None:
    """A reading a minute from one local time to another (ISO, Paris), at ``watts``."""
    lo = datetime.fromisoformat(local_start).replace(tzinfo=PARIS).timestamp()
    hi = datetime.fromisoformat(local_end).replace(tzinfo=PARIS).timestamp()
    store(database_url, sensor, [(lo + 60 * i, watts) for i in range(int((hi - lo) // 60) + 1)])


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
    with TestClient(create_app(settings)) as test_client:
        test_client.post("/install", data=ADMIN)
        yield test_client


def get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def kwh(series: dict[str, Any]) -> dict[int, float | None]:
    """The measured buckets of a series, by index (and None for a bucket without counterpart)."""
    return {
        i: (None if b is None else b["kwh"])
        for i, b in enumerate(series["buckets"])
        if b is None or b["kwh"] is not None
    }


def test_a_day_against_the_day_before_and_a_year_earlier(
    client: TestClient, database_url: str, compress: Callable[[str], int]
) -> None:
    # Sensor a, in Paris (UTC+1 in January), hour buckets:
    #   2026-01-15: 1000 W 10:00-11:00 = 1.0 kWh (bucket 10), 500 W 14:00-15:00 = 0.5 kWh (bucket 14)
    #   2026-01-14: 2000 W 10:00-11:00 = 2.0 kWh (bucket 10)
    #   2025-01-15:  500 W 10:00-11:00 = 0.5 kWh (bucket 10), 1000 W 20:00-21:00 = 1.0 kWh (bucket 20)
    stretch(database_url, "a", "2026-01-15T10:00", "2026-01-15T11:00", 1000.0)
    stretch(database_url, "a", "2026-01-15T14:00", "2026-01-15T15:00", 500.0)
    stretch(database_url, "a", "2026-01-14T10:00", "2026-01-14T11:00", 2000.0)
    stretch(database_url, "a", "2025-01-15T10:00", "2025-01-15T11:00", 500.0)
    stretch(database_url, "a", "2025-01-15T20:00", "2025-01-15T21:00", 1000.0)
    compress(database_url)
    report = get(client, "/api/v2/energy/compare", sensor="1", start="2026-01-15", period="day", tz="Europe/Paris")
    assert (report["sensor"], report["period"], report["bucket"], report["timezone"]) == (
        1,
        "day",
        "hour",
        "Europe/Paris",
    )
    current, previous, year = report["current"], report["previous"], report["year"]
    assert len(current["buckets"]) == len(previous["buckets"]) == len(year["buckets"]) == 24
    assert kwh(current) == {10: approx(1.0), 14: approx(0.5)}
    assert current["total_kwh"] == approx(1.5) and current["total_euros"] == approx(1.5 * PRICE)
    assert current["buckets"][10]["euros"] == approx(PRICE)
    assert (current["start"], current["end"]) == ("2026-01-15T00:00:00+01:00", "2026-01-16T00:00:00+01:00")
    assert kwh(previous) == {10: approx(2.0)}
    assert previous["buckets"][10]["start"] == "2026-01-14T10:00:00+01:00"
    assert (previous["start"], previous["total_kwh"]) == ("2026-01-14T00:00:00+01:00", approx(2.0))
    # Like for like: only bucket 10 is measured in both days, 1.0 against 2.0 kWh: -50 %.
    assert (previous["compared_buckets"], previous["change_percent"]) == (1, approx(-50.0))
    assert previous["change_percent_euros"] == approx(-50.0)  # the same price both days: the same ratio
    assert kwh(year) == {10: approx(0.5), 20: approx(1.0)}
    assert year["buckets"][20]["start"] == "2025-01-15T20:00:00+01:00"
    assert (year["start"], year["total_kwh"], year["total_euros"]) == (
        "2025-01-15T00:00:00+01:00",
        approx(1.5),
        approx(1.5 * PRICE_JANUARY_2025),
    )
    # Bucket 10 again: 1.0 against 0.5 kWh, +100 %; the year's 20:00 has no current twin yet.
    assert (year["compared_buckets"], year["change_percent"]) == (1, approx(100.0))
    # Only what is asked for; a reference with nothing measured has no change to tell.
    only = get(client, "/api/v2/energy/compare", sensor="1", start="2026-01-14", **{"with": "previous"})
    assert only["year"] is None
    assert (only["previous"]["total_kwh"], only["previous"]["change_percent"]) == (None, None)
    assert only["previous"]["compared_buckets"] == 0 and only["current"]["total_kwh"] == approx(2.0)


def test_a_week_across_the_spring_dst_change_against_the_week_before_and_52_weeks_earlier(
    client: TestClient, database_url: str, compress: Callable[[str], int]
) -> None:
    # Sunday 2026-03-29 clocks go from 02:00 to 03:00 in Paris; so they did on Sunday 2025-03-30,
    # exactly 52 weeks (364 days) earlier. 01:00 to 04:00 local on those Sundays is 2 real hours:
    #   2026-03-29: 1000 W x 2 h = 2.0 kWh
    #   2026-03-22 (the Sunday before, no change): 1000 W x 3 h = 3.0 kWh
    #   2025-03-30:  500 W x 2 h = 1.0 kWh
    stretch(database_url, "a", "2026-03-29T01:00", "2026-03-29T04:00", 1000.0)
    stretch(database_url, "a", "2026-03-22T01:00", "2026-03-22T04:00", 1000.0)
    stretch(database_url, "a", "2025-03-30T01:00", "2025-03-30T04:00", 500.0)
    compress(database_url)
    # A Wednesday: its week runs from Monday 23 to Sunday 29 March.
    report = get(client, "/api/v2/energy/compare", start="2026-03-25", period="week", tz="Europe/Paris")
    current, previous, year = report["current"], report["previous"], report["year"]
    assert report["bucket"] == "day" and len(current["buckets"]) == 7
    sunday = current["buckets"][6]
    assert (sunday["start"], sunday["end"]) == ("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00")
    assert kwh(current) == {6: approx(2.0)}
    assert (previous["start"], previous["end"]) == ("2026-03-16T00:00:00+01:00", "2026-03-23T00:00:00+01:00")
    assert previous["buckets"][6]["start"] == "2026-03-22T00:00:00+01:00" and kwh(previous) == {6: approx(3.0)}
    assert previous["change_percent"] == approx((2.0 - 3.0) / 3.0 * 100)
    # 52 weeks earlier: Monday 24 March 2025, Sunday against Sunday.
    assert (year["start"], year["end"]) == ("2025-03-24T00:00:00+01:00", "2025-03-31T00:00:00+02:00")
    assert year["buckets"][6]["start"] == "2025-03-30T00:00:00+01:00" and kwh(year) == {6: approx(1.0)}
    assert (year["total_kwh"], year["change_percent"]) == (approx(1.0), approx(100.0))
    # The same week in hours: 7 x 24 - 1 = 167 of them; the week before has 168, and the hour its
    # Sunday has at 02:00 (2026-03-22T02:00) is the one with no current twin: its 1 kWh is in the
    # week's total (3.0) but not in the aligned buckets (2.0 of them: 01:00 and 03:00).
    hours = get(client, "/api/v2/energy/compare", start="2026-03-25", period="week", bucket="hour")
    assert len(hours["current"]["buckets"]) == len(hours["previous"]["buckets"]) == 167
    assert hours["current"]["total_kwh"] == approx(2.0)
    aligned = {b["start"]: b["kwh"] for b in hours["previous"]["buckets"] if b and b["kwh"] is not None}
    assert aligned == {"2026-03-22T01:00:00+01:00": approx(1.0), "2026-03-22T03:00:00+01:00": approx(1.0)}
    assert hours["previous"]["total_kwh"] == approx(3.0)
    # Like for like over the two hours measured in both: 1 + 1 kWh now against 1 + 1 before.
    assert hours["previous"]["compared_buckets"] == 2 and hours["previous"]["change_percent"] == approx(0.0)


def test_an_autumn_dst_day_has_its_second_0200_without_a_twin(
    client: TestClient, database_url: str, compress: Callable[[str], int]
) -> None:
    # 2026-10-25 has 25 hours in Paris (03:00 CEST -> 02:00 CET): buckets 2 and 3 are both 02:00.
    # The day before: 1000 W 02:00-03:00 = 1.0 kWh, which faces the first 02:00 only.
    stretch(database_url, "a", "2026-10-24T02:00", "2026-10-24T03:00", 1000.0)
    compress(database_url)
    report = get(client, "/api/v2/energy/compare", start="2026-10-25", **{"with": "previous"})
    current, previous = report["current"], report["previous"]
    assert len(current["buckets"]) == 25
    assert [b["start"] for b in current["buckets"][2:4]] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    assert previous["buckets"][2]["start"] == "2026-10-24T02:00:00+02:00"
    assert previous["buckets"][2]["kwh"] == approx(1.0)
    assert previous["buckets"][3] is None
    assert previous["buckets"][4]["start"] == "2026-10-24T03:00:00+02:00"
    assert previous["end"] == "2026-10-25T00:00:00+02:00" and previous["total_kwh"] == approx(1.0)


def test_calendar_dates_a_reference_lacks(client: TestClient) -> None:
    # February 2028 has 29 days, February 2027 28: the year-earlier month has no 29th.
    month = get(client, "/api/v2/energy/compare", start="2028-02-10", period="month", **{"with": "year"})
    year = month["year"]
    assert len(year["buckets"]) == 29 and year["buckets"][28] is None
    assert year["buckets"][27]["start"] == "2027-02-28T00:00:00+01:00"
    assert (year["start"], year["end"]) == ("2027-02-01T00:00:00+01:00", "2027-03-01T00:00:00+01:00")
    # A day view of 29 February compares with 28 February a year earlier, hour by hour.
    day = get(client, "/api/v2/energy/compare", start="2028-02-29", **{"with": "year"})["year"]
    assert day["start"] == "2027-02-28T00:00:00+01:00" and day["buckets"][23]["start"] == "2027-02-28T23:00:00+01:00"
    # March against February (28 days in 2026): the 29th to the 31st have no counterpart, and the
    # previous month is the whole of February, not the 31 days before 1 March.
    march = get(client, "/api/v2/energy/compare", start="2026-03-31", period="month", **{"with": "previous"})
    previous = march["previous"]
    assert (previous["start"], previous["end"]) == ("2026-02-01T00:00:00+01:00", "2026-03-01T00:00:00+01:00")
    assert [b is None for b in previous["buckets"][27:]] == [False, True, True, True]
    # The year by month: January 2026's previous is January 2025, for both references.
    twelve = get(client, "/api/v2/energy/compare", start="2026-06-01", period="year")
    assert twelve["bucket"] == "month" and len(twelve["current"]["buckets"]) == 12
    assert twelve["previous"]["buckets"][0]["start"] == twelve["year"]["buckets"][0]["start"]
    assert twelve["year"]["buckets"][11]["start"] == "2025-12-01T00:00:00+01:00"


def test_two_sensors_add_up_to_the_household(
    client: TestClient, database_url: str, compress: Callable[[str], int]
) -> None:
    # 2026-01-15, hour buckets:
    #   a: 1000 W 10:00-11:00 = 1.0 kWh (bucket 10), 500 W 14:00-15:00 = 0.5 kWh (bucket 14)
    #   b:  250 W 10:00-12:00 = 0.25 kWh in bucket 10 and 0.25 kWh in bucket 11
    # Household: bucket 10 = 1.25, 11 = 0.25 (a measured nothing there: it adds nothing), 14 = 0.5.
    stretch(database_url, "a", "2026-01-15T10:00", "2026-01-15T11:00", 1000.0)
    stretch(database_url, "a", "2026-01-15T14:00", "2026-01-15T15:00", 500.0)
    stretch(database_url, "b", "2026-01-15T10:00", "2026-01-15T12:00", 250.0)
    compress(database_url)
    report = get(client, "/api/v2/energy/by-sensor", start="2026-01-15")
    assert (report["period"], report["bucket"], len(report["buckets"])) == ("day", "hour", 24)
    assert report["buckets"][10] == {"start": "2026-01-15T10:00:00+01:00", "end": "2026-01-15T11:00:00+01:00"}
    a, b = report["sensors"]
    assert (a["id"], a["key"], b["id"], b["key"]) == (1, "a", 2, "b")
    assert {i: v for i, v in enumerate(a["kwh"]) if v is not None} == {10: approx(1.0), 14: approx(0.5)}
    assert {i: v for i, v in enumerate(b["kwh"]) if v is not None} == {10: approx(0.25), 11: approx(0.25)}
    assert (a["total_kwh"], b["total_kwh"]) == (approx(1.5), approx(0.5))
    totals = report["total_kwh"]
    assert {i: v for i, v in enumerate(totals) if v is not None} == {
        10: approx(1.25),
        11: approx(0.25),
        14: approx(0.5),
    }
    assert totals[0] is None and report["total"] == approx(2.0)
    assert report["total_euros"][10] == approx(1.25 * PRICE) and b["euros"][11] == approx(0.25 * PRICE)
    # The same household total as the energy route (summed in SQL there) and the comparison.
    energy = get(client, "/api/v2/energy", sensor="all", start="2026-01-15", bucket="hour", count=24)
    assert energy["total_kwh"] == approx(2.0)
    assert [x["kwh"] for x in energy["buckets"]] == [None if v is None else approx(v) for v in totals]
    assert get(client, "/api/v2/energy/compare", start="2026-01-15")["current"]["total_kwh"] == approx(2.0)
    # A year of months: the same parts, in January.
    year = get(client, "/api/v2/energy/by-sensor", start="2026-01-15", period="year")
    assert [s["kwh"][0] for s in year["sensors"]] == [approx(1.5), approx(0.5)]
    assert year["total_kwh"][:2] == [approx(2.0), None]


@pytest.mark.backends("plain")  # parameters only: one backend says it
@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("compare", {"start": "2026-01-15", "period": "month", "bucket": "hour"}, "a month is cut into day buckets"),
        ("by-sensor", {"start": "2026-01-15", "period": "year", "bucket": "week"}, "a year is cut into month or day"),
        ("compare", {"start": "2026-01-15", "with": "previous,decade"}, "'decade' is not a comparison"),
        ("compare", {"start": "2026-01-15", "sensor": "one"}, "sensor must be an integer id or 'all'"),
        ("compare", {"start": "2026-01-15", "tz": "Mars/Olympus"}, "unknown time zone"),
        ("by-sensor", {"start": "2026-02-30"}, "query.start"),
        ("compare", {"start": "9999-12-31", "period": "year"}, "outside the calendar"),
        ("by-sensor", {"start": "9999-12-31", "period": "month"}, "outside the calendar"),
        ("compare", {"start": "0001-01-01", "period": "day", "with": "year"}, "outside the calendar"),
        ("compare", {"start": "2026-01-15", "period": "fortnight"}, "query.period"),
    ],
)
def test_bad_parameters_are_a_400_that_says_why(
    client: TestClient, path: str, params: dict[str, str], message: str
) -> None:
    response = client.get(f"/api/v2/energy/{path}", params=params)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
