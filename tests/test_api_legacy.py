"""The legacy API against values worked out by hand (see the comment above each trace).

Readings go in through store.py, exactly as the aggregator writes them, so the night flags and
the rollups are the real ones. On ``timescaledb-compressed`` every chunk is compressed once the
readings are stored: the same numbers must come out of compressed chunks, and deleting and
inserting must work on them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient

from citizenwatt_api.app import create_app
from citizenwatt_api.settings import ApiSettings
from citizenwatt_common.contract import Reading
from citizenwatt_common.store import load_household, store_readings
from tests.conftest import ALL_BACKENDS

pytestmark = pytest.mark.backends(*ALL_BACKENDS)

PARIS = ZoneInfo("Europe/Paris")
ADMIN = {"login": "admin", "password": "correct horse battery"}
SAME_ORIGIN = {"Origin": "http://testserver"}

# 2026-01-15, Paris is UTC+1. T0 = 20:58 UTC = 21:58 local. Night window 22:00-06:00.
T0 = datetime(2026, 1, 15, 20, 58, tzinfo=UTC).timestamp()
TRACE = [(0, 1000.0), (60, 1000.0), (120, 2000.0), (180, 2000.0), (600, 500.0), (660, 500.0)]
# Night flags: 21:58 day, 21:59 day, 22:00 night, 22:01 night, 22:08 night, 22:09 night.
# Segments (gap limit 300 s):
#   (0,60)    1000 W * 60 s           =  60000 J, ends on a day reading
#   (60,120)  (1000+2000)/2 W * 60 s  =  90000 J, night
#   (120,180) 2000 W * 60 s           = 120000 J, night
#   (180,600) 420 s > 300 s           =      0 J
#   (600,660) 500 W * 60 s            =  30000 J, night
# Day 60000 J = 0.0166667 kWh, night 240000 J = 0.0666667 kWh, total 300000 J = 0.0833333 kWh.
DAY_KWH, NIGHT_KWH = 60_000 / 3.6e6, 240_000 / 3.6e6


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-9, abs=1e-12)


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    # No broker in these tests: the radio settings publisher would only wait for one at shutdown.
    app = create_app(ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False))
    with TestClient(app) as test_client:
        response = test_client.post("/install", data=ADMIN, follow_redirects=False)
        assert response.status_code == 303
        yield test_client


def store(database_url: str, sensor: str, points: list[tuple[float, float]]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        readings = [Reading(sensor=sensor, kind="simulator", ts=ts, power=p) for ts, p in points]
        store_readings(conn, readings, load_household(conn), PARIS)


@pytest.fixture
def trace(client: TestClient, database_url: str, compress: Callable[[str], int]) -> TestClient:
    window = client.post("/settings/night-window", data={"start": "22:00", "end": "06:00"}, headers=SAME_ORIGIN)
    assert window.status_code == 200
    store(database_url, "meter", [(T0 + offset, power) for offset, power in TRACE])
    compress(database_url)
    return client


def data(client: TestClient, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_sensors_types_and_time(trace: TestClient) -> None:
    assert data(trace, "/api/sensors") == [{"id": 1, "name": "meter", "type": "electricity", "type_id": 1}]
    assert data(trace, "/api/sensors/1") == {"id": 1, "name": "meter", "type": "electricity", "type_id": 1}
    assert data(trace, "/api/sensors/2") is None
    assert data(trace, "/api/types") == [{"id": 1, "name": "electricity"}]
    before = time.time()
    assert before - 5 <= float(data(trace, "/api/time")) <= time.time() + 5
    assert trace.get("/api/sensors/x").status_code == 400


def test_rate_says_which_tariff_is_in_force_now(trace: TestClient) -> None:
    def rate_now() -> str:
        hour = datetime.now(PARIS).hour
        return "night" if hour >= 22 or hour < 6 else "day"

    # Both sides of the request, so a run that crosses 22:00 or 06:00 accepts either answer.
    before = rate_now()
    answer = trace.get("/api/1/get/watts/by_id/1").json()["rate"]
    assert answer in {before, rate_now()}


def test_measures_by_id(trace: TestClient) -> None:
    first = {"id": 1, "sensor_id": 1, "value": 1000.0, "timestamp": T0, "night_rate": 0}
    newest = {"id": 6, "sensor_id": 1, "value": 500.0, "timestamp": T0 + 660, "night_rate": 1}
    assert data(trace, "/api/1/get/watts/by_id/1") == first
    assert data(trace, "/api/1/get/watts/by_id/-1") == newest  # the original answered null here
    assert data(trace, "/api/1/get/watts/by_id/-6") == first
    assert data(trace, "/api/1/get/watts/by_id/-7") is None
    assert data(trace, "/api/1/get/watts/by_id/99") is None
    assert [m["id"] for m in data(trace, "/api/1/get/watts/by_id/1/3")] == [1, 2]
    assert [m["id"] for m in data(trace, "/api/1/get/watts/by_id/-2/0")] == [5, 6]
    assert [m["night_rate"] for m in data(trace, "/api/1/get/watts/by_id/1/7")] == [0, 0, 1, 1, 1, 1]


def test_newest_measures_reach_back_past_the_first_day(trace: TestClient, database_url: str) -> None:
    # The newest measures are looked for in the last day first: three more, 3 and 2 days before
    # the trace and one a day after its end, make the first look come up short or not.
    store(database_url, "meter", [(T0 - 3 * 86400, 10.0), (T0 - 2 * 86400, 20.0), (T0 + 660 + 86400, 30.0)])
    values = [m["value"] for m in data(trace, "/api/1/get/watts/by_id/-3/0")]
    assert values == [500.0, 500.0, 30.0]  # the last day holds only two of them: the first look is short
    values = [m["value"] for m in data(trace, "/api/1/get/watts/by_id/-9/-5")]
    assert values == [10.0, 20.0, 1000.0, 1000.0]  # reaching 3 days back
    assert data(trace, "/api/1/get/watts/by_id/-2")["value"] == 500.0  # found in the first look
    assert data(trace, "/api/1/get/watts/by_id/-9")["value"] == 10.0
    assert data(trace, "/api/1/get/watts/by_id/-10") is None


def test_energy_and_cost_by_id(trace: TestClient) -> None:
    # Measures 1, 2, 3: segments (0,60) 60000 J day + (60,120) 90000 J night.
    assert data(trace, "/api/1/get/kwatthours/by_id/1/4") == {
        "value": approx(150_000 / 3.6e6),
        "day_rate": approx(DAY_KWH),
        "night_rate": approx(90_000 / 3.6e6),
    }
    # Groups {1,2} {3,4} {5,6}: a segment belongs to the group of the measure ending it, so the
    # energy between groups is kept: 60000 J, 90000 + 120000 J, 0 + 30000 J; they add up to the total.
    groups = data(trace, "/api/1/get/kwatthours/by_id/1/7/2")
    assert [g["value"] for g in groups] == [
        approx(60_000 / 3.6e6),
        approx(210_000 / 3.6e6),
        approx(30_000 / 3.6e6),
    ]
    # Mean power per group: group 2 covers 120 s with 210000 J -> 1750 W.
    # (60,120) and (120,180): 210000 J over 120 s = 1750 W, all of it night.
    assert data(trace, "/api/1/get/watts/by_id/1/7/2")[1] == {
        "value": approx(1750),
        "day_rate": 0.0,
        "night_rate": approx(1750),
    }
    # Base provider (0.1940 EUR/kWh, day and night): 0.0833333 kWh -> 0.0161667 EUR.
    assert data(trace, "/api/1/get/euros/by_id/1/7")["value"] == approx((DAY_KWH + NIGHT_KWH) * 0.1940)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/1/get/watts/by_id/3/1", 400),
        ("/api/1/get/watts/by_id/-1/2", 400),
        ("/api/1/get/watts/by_id/0/600", 403),
        ("/api/1/get/watts/by_id/1/3/0", 400),
        ("/api/1/get/watts/by_id/2/2/1", 400),
        ("/api/1/get/volts/by_id/1", 400),
        ("/api/1/get/watts/by_id/x", 400),
        ("/api/1/get/watts/by_time/-1", 400),
        ("/api/1/get/watts/by_time/nan", 400),
        ("/api/1/get/watts/by_time/10/5", 400),
        ("/api/1/get/watts/by_time/10/20/0", 400),
        ("/api/1/get/watts/by_time/-5/20/1", 400),
        ("/api/1/get/watts/by_time/0/700000/0.001", 400),
        ("/api/energy_providers/abc", 400),
        ("/api/1/watt_to_euros/noon/3", 400),
    ],
)
def test_bad_parameters_get_the_legacy_errors(trace: TestClient, path: str, status: int) -> None:
    response = trace.get(path)
    assert response.status_code == status
    assert "error" in response.json()


def test_measures_by_time(trace: TestClient) -> None:
    assert data(trace, f"/api/1/get/watts/by_time/{T0 + 60}")["id"] == 2
    assert data(trace, f"/api/1/get/watts/by_time/{T0 + 61}") is None
    assert [m["id"] for m in data(trace, f"/api/1/get/watts/by_time/{T0}/{T0 + 120}")] == [1, 2]
    assert data(trace, f"/api/1/get/watts/by_time/{T0 - 100}/{T0 - 50}") is None
    assert data(trace, f"/api/1/get/kwatthours/by_time/{T0}/{T0 + 700}") == {
        "value": approx(DAY_KWH + NIGHT_KWH),
        "day_rate": approx(DAY_KWH),
        "night_rate": approx(NIGHT_KWH),
    }
    # [T0+30, T0+90): 1000 W * 30 s (day) + power 1000 -> 1500 W over 30 s = 37500 J (night).
    assert data(trace, f"/api/1/get/kwatthours/by_time/{T0 + 30}/{T0 + 90}") == {
        "value": approx(67_500 / 3.6e6),
        "day_rate": approx(30_000 / 3.6e6),
        "night_rate": approx(37_500 / 3.6e6),
    }


def test_buckets_of_mean_power_energy_and_cost(trace: TestClient) -> None:
    buckets = data(trace, f"/api/1/get/watts/by_time/{T0}/{T0 + 720}/120")
    # [0,120): 150000 J over 120 s = 1250 W, of which day 60000 J / 120 s = 500 W and night
    # 90000 J / 120 s = 750 W (the parts add up to the value, as the original's did).
    # [120,240): 2000 W, all night. [240,600): nothing covered. [600,720): 500 W over the 60 s
    # covered, all night.
    assert buckets == [
        {"value": approx(1250), "day_rate": approx(500), "night_rate": approx(750)},
        {"value": approx(2000), "day_rate": 0.0, "night_rate": approx(2000)},
        None,
        None,
        None,
        {"value": approx(500), "day_rate": 0.0, "night_rate": approx(500)},
    ]
    # The last bucket is cut at t2: [600, 630) holds half of (600,660) = 15000 J.
    cut = data(trace, f"/api/1/get/kwatthours/by_time/{T0 + 480}/{T0 + 630}/120")
    assert cut == [None, {"value": approx(15_000 / 3.6e6), "day_rate": 0.0, "night_rate": approx(15_000 / 3.6e6)}]
    # Heures creuses: day 0.2065, night 0.1579 EUR/kWh.
    assert trace.post("/settings/provider", data={"provider_id": "2"}, headers=SAME_ORIGIN).status_code == 200
    cost = data(trace, f"/api/1/get/euros/by_time/{T0}/{T0 + 720}/720")
    assert cost == [
        {
            "value": approx(DAY_KWH * 0.2065 + NIGHT_KWH * 0.1579),
            "day_rate": approx(DAY_KWH * 0.2065),
            "night_rate": approx(NIGHT_KWH * 0.1579),
        }
    ]


def test_long_periods_are_read_from_the_rollups(trace: TestClient, database_url: str) -> None:
    day_start = datetime(2026, 1, 15, tzinfo=UTC).timestamp()
    whole_day = f"/api/1/get/kwatthours/by_time/{day_start}/{day_start + 86400}/86400"
    # 21:00 to 21:15 UTC: a quarter hour, not a whole hour. Inside it: (120,180) 2000 W * 60 s and
    # (600,660) 500 W * 60 s, both night; (180,600) is longer than the gap limit.
    quarter = f"/api/1/get/kwatthours/by_time/{T0 + 120}/{T0 + 1020}"
    quarter_kwh = (120_000 + 30_000) / 3.6e6
    assert data(trace, whole_day)[0]["value"] == approx(DAY_KWH + NIGHT_KWH)
    assert data(trace, quarter)["value"] == approx(quarter_kwh)
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Detectable marks: +1 kWh per hourly bucket, +1000 kWh per 15-minute bucket, +10^6 kWh
        # per minute.
        conn.execute("UPDATE energy_rollups_hourly SET day_wh = day_wh + 1000")
        conn.execute("UPDATE energy_rollups SET day_wh = day_wh + 1000000")
        conn.execute("UPDATE energy_rollups_minute SET day_wh = day_wh + 1000000000")
        hours = conn.execute("SELECT count(*) FROM energy_rollups_hourly").fetchone()
    assert hours is not None
    assert hours[0] == 2  # 20:00 and 21:00
    assert data(trace, whole_day)[0]["value"] == approx(DAY_KWH + NIGHT_KWH + hours[0])
    assert data(trace, quarter)["value"] == approx(quarter_kwh + 1000)
    # Two whole minutes inside a quarter hour: from the minute rollups (one row: (120,180), 2000 W).
    two_minutes = f"/api/1/get/kwatthours/by_time/{T0 + 120}/{T0 + 240}"
    assert data(trace, two_minutes)["value"] == approx(120_000 / 3.6e6 + 1_000_000)
    # Less than a minute, unaligned: integrated from raw readings (2000 W * 40 s), no mark shows.
    assert data(trace, f"/api/1/get/kwatthours/by_time/{T0 + 130}/{T0 + 170}")["value"] == approx(80_000 / 3.6e6)


def test_a_step_shorter_than_a_segment_cuts_it_across_several_buckets(trace: TestClient) -> None:
    # 25-s buckets from T0+10. (0,60) is 1000 W flat (day); (60,120) ramps 1000 -> 2000 W (night),
    # P(t) = 1000 + 1000 (t - 60) / 60, so it crosses the edges at 85 and 110; (120,180) is 2000 W.
    #   [10,35), [35,60): 1000 W * 25 s = 25000 J day each
    #   [60,85):  (1000 + 1416.667) / 2 * 25 = 30208.333 J night
    #   [85,110): (1416.667 + 1833.333) / 2 * 25 = 40625 J night
    #   [110,135): (1833.333 + 2000) / 2 * 10 + 2000 * 15 = 49166.667 J night
    buckets = data(trace, f"/api/1/get/kwatthours/by_time/{T0 + 10}/{T0 + 135}/25")
    joules = [(25_000, 0), (25_000, 0), (0, 30_208 + 1 / 3), (0, 40_625), (0, 49_166 + 2 / 3)]
    assert buckets == [
        {"value": approx((d + n) / 3.6e6), "day_rate": approx(d / 3.6e6), "night_rate": approx(n / 3.6e6)}
        for d, n in joules
    ]


def test_a_dst_day_has_23_hours_and_a_wrapping_night(
    client: TestClient, database_url: str, compress: Callable[[str], int]
) -> None:
    assert (
        client.post("/settings/night-window", data={"start": "22:00", "end": "06:00"}, headers=SAME_ORIGIN).status_code
        == 200
    )
    # 2026-03-29 in Paris: local midnight is 23:00 UTC the day before; the next one 22:00 UTC: 82800 s.
    t1 = datetime(2026, 3, 29, tzinfo=PARIS).timestamp()
    t2 = datetime(2026, 3, 30, tzinfo=PARIS).timestamp()
    assert t2 - t1 == 82_800
    store(database_url, "dst", [(t1 + 240 * k, 100.0) for k in range(346)])  # every 4 min, 100 W, t1..t2
    compress(database_url)
    hours = data(client, f"/api/1/get/kwatthours/by_time/{t1}/{t2}/3600")
    assert len(hours) == 23
    assert all(h["value"] == approx(0.1) for h in hours)
    # Night segments end on readings before 06:00 CEST (5 real hours after t1: k = 1..74) or at/after
    # 22:00 CEST (k = 315..345): 105 segments of 240 s at 100 W = 0.7 kWh; the other 240 are day: 1.6 kWh.
    total = data(client, f"/api/1/get/kwatthours/by_time/{t1}/{t2}")
    assert total == {"value": approx(2.3), "day_rate": approx(1.6), "night_rate": approx(0.7)}


def test_changes_need_post_and_same_origin(trace: TestClient, database_url: str) -> None:
    assert trace.get("/api/1/delete/by_id/6").status_code == 405
    assert trace.get("/api/1/insert/5/100/0").status_code == 405
    assert trace.post("/api/1/delete/by_id/6", headers={"Origin": "http://evil.example"}).status_code == 403
    assert trace.post("/api/1/delete/by_id/6").status_code == 403  # a cookie alone proves nothing
    assert len(data(trace, "/api/1/get/watts/by_id/1/7")) == 6
    # Scripts send credentials; that is not something a cross-site link can do.
    deleted = trace.post("/api/1/delete/by_id/6", data=ADMIN)
    assert deleted.json()["data"] == 1
    # Without reading 6 the segment (600,660) is gone: 300000 - 30000 J.
    assert data(trace, f"/api/1/get/kwatthours/by_time/{T0}/{T0 + 700}")["value"] == approx(270_000 / 3.6e6)
    assert trace.post(f"/api/1/delete/by_time/{T0}/{T0 + 61}", headers=SAME_ORIGIN).json()["data"] == 2
    assert trace.post("/api/1/delete/by_id/1", headers=SAME_ORIGIN).json()["data"] is None
    inserted = trace.post(f"/api/1/insert/750/{int(T0) + 700}/1", headers=SAME_ORIGIN).json()["data"]
    assert inserted is True
    assert trace.post(f"/api/1/insert/750/{int(T0) + 700}/1", headers=SAME_ORIGIN).json()["data"] is False
    assert data(trace, "/api/1/get/watts/by_id/-1")["night_rate"] == 1


def test_providers_and_prices(trace: TestClient) -> None:
    providers = data(trace, "/api/energy_providers")
    assert [p["name"] for p in providers] == ["EDF Tarif Bleu - Base", "EDF Tarif Bleu - Heures creuses"]
    assert "start_night_rate" not in providers[0]
    assert (providers[1]["start_night_rate"], providers[1]["end_night_rate"]) == ("22:00", "06:00")
    assert data(trace, "/api/energy_providers/current")["id"] == 1
    trace.post("/settings/provider", data={"provider_id": "2"}, headers=SAME_ORIGIN)
    assert data(trace, "/api/energy_providers/current")["current"] == 1
    assert data(trace, "/api/energy_providers/2")["night_slope_watt_euros"] == 0.1579
    assert data(trace, "/api/energy_providers/9") is None
    # Subscription constant + price per kWh: 17.32 + 0.1579 * 10 = 18.899; 17.32 + 0.2065 * 2 = 17.733.
    assert data(trace, "/api/2/watt_to_euros/night/10") == approx(18.899)
    assert data(trace, "/api/current/watt_to_euros/day/2") == approx(17.733)
    assert data(trace, "/api/9/watt_to_euros/day/2") is None


def test_the_other_delete_selectors(trace: TestClient) -> None:
    # by_id range [2, 4) removes measures 2 and 3; by_time at exactly T0+180 removes measure 4.
    assert trace.post("/api/1/delete/by_id/2/4", headers=SAME_ORIGIN).json()["data"] == 2
    assert trace.post(f"/api/1/delete/by_time/{T0 + 180}", headers=SAME_ORIGIN).json()["data"] == 1
    assert trace.post(f"/api/1/delete/by_time/{T0 + 181}", headers=SAME_ORIGIN).json()["data"] is None
    assert [m["id"] for m in data(trace, "/api/1/get/watts/by_id/1/7")] == [1, 5, 6]
    # Left: 0 s 1000 W, 600 s 500 W, 660 s 500 W. (0,600) is longer than 300 s: only (600,660) = 30000 J.
    assert data(trace, f"/api/1/get/kwatthours/by_time/{T0}/{T0 + 700}")["value"] == approx(30_000 / 3.6e6)
    assert trace.post("/api/1/delete/by_id/5/2", headers=SAME_ORIGIN).status_code == 400
    assert trace.post("/api/1/delete/by_time/-3", headers=SAME_ORIGIN).status_code == 400
