"""CSV export: raw readings and energy per bucket, against CSV text worked out by hand.

Two small traces, stored through store.py exactly as the aggregator writes them (so the night
flags and rollups are the real ones), night window 22:00-06:00, prices of the "Heures creuses"
provider (day 0.2065 EUR/kWh, night 0.1579 EUR/kWh):

- ``m``, 2026-01-15 in Paris (UTC+1): the legacy tests' trace, with voltage and current, plus
  one reading at exactly local midnight of the 16th (on the next day's side of the boundary).
- ``dst``, 2026-10-25, the autumn DST change in Paris (02:00-03:00 happens twice, +02:00 then
  +01:00): three readings across the change, the last one at a fractional second.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient

from citizenwatt_api.app import create_app
from citizenwatt_api.settings import ApiSettings
from citizenwatt_common.contract import Reading
from citizenwatt_common.store import load_household, store_readings
from tests.conftest import ALL_BACKENDS, BACKENDS
from tests.services import api_with_one_connection
from tests.test_api_legacy import ADMIN, SAME_ORIGIN

pytestmark = pytest.mark.backends(*ALL_BACKENDS)
PARIS = ZoneInfo("Europe/Paris")

# 2026-01-15T00:00Z is day 20 468 since 1970 (56 years with 14 leap days, then 14 days):
# 1 768 435 200. T0 = 20:58Z = 21:58 in Paris = 1 768 510 680.
T0 = datetime(2026, 1, 15, 20, 58, tzinfo=UTC).timestamp()
assert T0 == 1_768_510_680
# (offset s, power W, voltage V, current A)
TRACE = [
    (0, 1000.0, 230.0, 4.35),
    (60, 1000.0, 231.5, 4.32),
    (120, 2000.0, 229.0, 8.73),
    (180, 2000.0, None, None),
    (600, 500.0, 230.0, 2.17),
    (660, 500.0, 230.0, 2.17),
    (7320, 80.0, 230.0, 0.35),  # 23:00Z = 2026-01-16T00:00+01:00, alone: no energy
]
# 2026-10-25T00:00Z is day 20 751 (20 454 to 2026-01-01, plus 297): 1 792 886 400.
# 00:58Z = 02:58+02:00, 01:00Z = 02:00+01:00 (clocks went back), 01:02:00.5Z = 02:02:00.5+01:00.
DST_TRACE = [(1_792_889_880.0, 1200.0), (1_792_890_000.0, 1200.0), (1_792_890_120.5, 600.0)]
HEURES_CREUSES = 2  # the second seeded provider


def store(database_url: str, sensor: str, points: list[tuple[float, float, float | None, float | None]]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        readings = [
            Reading(sensor=sensor, kind="simulator", ts=ts, power=p, voltage=v, current=c) for ts, p, v, c in points
        ]
        store_readings(conn, readings, load_household(conn), PARIS)


@pytest.fixture
def client(database_url: str, compress: Callable[[str], int]) -> Iterator[TestClient]:
    settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
    with TestClient(create_app(settings)) as test_client:
        test_client.post("/install", data=ADMIN)
        window = {"start": "22:00", "end": "06:00"}
        assert test_client.post("/settings/night-window", data=window, headers=SAME_ORIGIN).status_code == 200
        chosen = test_client.post("/settings/provider", data={"provider_id": HEURES_CREUSES}, headers=SAME_ORIGIN)
        assert chosen.status_code == 200, chosen.text
        # Costs follow the household's dated tariff (the legacy provider is the legacy API's): the
        # seeded Heures creuses for all of the history.
        tariffs = test_client.get("/api/v2/tariffs").json()["tariffs"]
        hc = next(t["id"] for t in tariffs if t["kind"] == "hc")
        body = {"tariff_id": hc, "valid_from": "2000-01-01"}
        assert test_client.put("/api/v2/settings/tariff", json=body, headers=SAME_ORIGIN).status_code == 200
        store(database_url, "m", [(T0 + dt, p, v, c) for dt, p, v, c in TRACE])  # sensor 1
        store(database_url, "dst", [(ts, p, 230.0, None) for ts, p in DST_TRACE])  # sensor 2
        compress(database_url)
        yield test_client


def csv_of(client: TestClient, path: str, **params: str | int) -> str:
    response = client.get(f"/api/v2/export/{path}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    return str(response.text)


def test_readings_in_the_household_zone_with_unix_time(client: TestClient) -> None:
    response = client.get("/api/v2/export/readings.csv", params={"sensor": "1", "start": "2026-01-15"})
    assert response.headers["content-disposition"] == (
        'attachment; filename="citizenwatt-readings-1-2026-01-15-2026-01-15.csv"'
    )
    # Day tariff until 22:00 local, then night. The reading at 2026-01-16T00:00+01:00 belongs
    # to the 16th, not to end = start = the 15th.
    assert response.text == (
        "time,unix_time,sensor,power_w,voltage_v,current_a,rate\r\n"
        "2026-01-15T21:58:00+01:00,1768510680,m,1000.0,230.0,4.35,day\r\n"
        "2026-01-15T21:59:00+01:00,1768510740,m,1000.0,231.5,4.32,day\r\n"
        "2026-01-15T22:00:00+01:00,1768510800,m,2000.0,229.0,8.73,night\r\n"
        "2026-01-15T22:01:00+01:00,1768510860,m,2000.0,,,night\r\n"
        "2026-01-15T22:08:00+01:00,1768511280,m,500.0,230.0,2.17,night\r\n"
        "2026-01-15T22:09:00+01:00,1768511340,m,500.0,230.0,2.17,night\r\n"
    )
    next_day = csv_of(client, "readings.csv", sensor="1", start="2026-01-16", end="2026-01-31")
    assert next_day.splitlines()[1:] == ["2026-01-16T00:00:00+01:00,1768518000,m,80.0,230.0,0.35,night"]


def test_readings_in_another_zone_use_its_dates_and_offsets(client: TestClient) -> None:
    # New York is UTC-5 in January: its 15th runs 05:00Z..05:00Z next day and holds all but the
    # midnight-in-Paris reading too (23:00Z is 18:00 there).
    text = csv_of(client, "readings.csv", sensor="1", start="2026-01-15", tz="America/New_York")
    lines = text.splitlines()
    assert lines[1] == "2026-01-15T15:58:00-05:00,1768510680,m,1000.0,230.0,4.35,day"
    assert lines[-1] == "2026-01-15T18:00:00-05:00,1768518000,m,80.0,230.0,0.35,night"
    assert len(lines) == 1 + 7


def test_readings_across_the_autumn_dst_change(client: TestClient) -> None:
    text = csv_of(client, "readings.csv", sensor="2", start="2026-10-25")
    # Local 02:58 comes before local 02:00: the offsets tell the two 02:xx hours apart.
    assert text == (
        "time,unix_time,sensor,power_w,voltage_v,current_a,rate\r\n"
        "2026-10-25T02:58:00+02:00,1792889880,dst,1200.0,230.0,,night\r\n"
        "2026-10-25T02:00:00+01:00,1792890000,dst,1200.0,230.0,,night\r\n"
        "2026-10-25T02:02:00.500000+01:00,1792890120.5,dst,600.0,230.0,,night\r\n"
    )


def test_every_sensor_merged_in_time_order(client: TestClient) -> None:
    text = csv_of(client, "readings.csv", sensor="all", start="2026-01-01", end="2026-12-31")
    lines = text.splitlines()
    assert len(lines) == 1 + len(TRACE) + len(DST_TRACE)
    assert [line.split(",")[2] for line in lines[1:]] == ["m"] * len(TRACE) + ["dst"] * len(DST_TRACE)
    stamps = [float(line.split(",")[1]) for line in lines[1:]]
    assert stamps == sorted(stamps)


HEADER = (
    "start,end,start_unix_time,kwh,day_kwh,night_kwh,euros,day_euros,night_euros,mean_watts,"
    "import_kwh,export_kwh,import_euros,export_credit_euros,subscription_euros,cost_euros"
)


def test_energy_per_day_with_day_and_night_prices(client: TestClient) -> None:
    response = client.get("/api/v2/export/energy.csv", params={"sensor": "1", "start": "2026-01-15", "count": 2})
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        'attachment; filename="citizenwatt-energy-1-day-2026-01-15-2.csv"'
    )
    # The legacy trace (see tests/test_api_legacy.py): day 60 000 J = 0.016667 kWh, night
    # 240 000 J = 0.066667 kWh (each segment takes the flag of the reading ending it), total
    # 0.083333 kWh over 240 s covered: mean 1250 W, all of it imported.
    # Euros at the seeded Heures creuses in force on 2026-01-15 (its version of 2025-08-01: peak
    # 0.2081, off-peak 0.1635 EUR/kWh from 22:00 on the wall clock): 21:58-22:00 local is peak,
    # 60 000 + 90 000 J = 0.0416667 kWh -> 0.0086708; 22:00-22:09 off-peak, 120 000 + 30 000 J =
    # 0.0416667 kWh -> 0.0068125; together 0.0154833. Subscription: a day of January at
    # 15.74 EUR/month, 15.74 / 31 = 0.5077419; cost 0.5232253.
    # The 16th holds one reading, so no segment: empty cells but its subscription. Day starts:
    # 2026-01-14T23:00Z = 1 768 431 600, and 86 400 s later.
    header, first, second, *rest = response.text.split("\r\n")
    assert header == HEADER and rest == [""]
    cells = first.split(",")
    assert cells[:6] == [
        "2026-01-15T00:00:00+01:00",
        "2026-01-16T00:00:00+01:00",
        "1768431600",
        "0.083333",
        "0.016667",
        "0.066667",
    ]
    assert cells[6:8] == ["0.015483", "0.008671"]
    assert float(cells[8]) == pytest.approx(0.0068125, abs=1e-6)  # half a millionth: either way
    assert cells[9:] == ["1250.000", "0.083333", "0.000000", "0.015483", "0.000000", "0.507742", "0.523225"]
    assert second == "2026-01-16T00:00:00+01:00,2026-01-17T00:00:00+01:00,1768518000,,,,,,,,,,,,0.507742,0.507742"


def test_energy_per_hour_on_the_25_hour_day(client: TestClient) -> None:
    text = csv_of(client, "energy.csv", sensor="2", start="2026-10-25", bucket="hour", count=5)
    # Segments: 00:58Z-01:00Z at 1200 W for 120 s = 144 000 J = 0.040 kWh (first 02:xx hour),
    # 01:00Z-01:02:00.5Z at (1200+600)/2 = 900 W for 120.5 s = 108 450 J = 0.030125 kWh (second
    # 02:xx hour). All off-peak (Heures creuses, version of 2026-02-01, 0.1579 EUR/kWh from 22:00
    # to 06:00): 0.040 x 0.1579 = 0.006316, 0.030125 x 0.1579 = 0.0047567 EUR. Subscription: an
    # hour of October 2026 (745 hours) at 15.74 EUR/month, 15.74 / 745 = 0.0211275; costs
    # 0.0274435 and 0.0258843. Hour starts: 2026-10-24T22:00Z = 1 792 879 200, then every 3600 s.
    empty = ",,,,,,,,,,,,0.021128,0.021128"
    assert text == (
        f"{HEADER}\r\n"
        f"2026-10-25T00:00:00+02:00,2026-10-25T01:00:00+02:00,1792879200{empty}\r\n"
        f"2026-10-25T01:00:00+02:00,2026-10-25T02:00:00+02:00,1792882800{empty}\r\n"
        "2026-10-25T02:00:00+02:00,2026-10-25T02:00:00+01:00,1792886400,"
        "0.040000,0.000000,0.040000,0.006316,0.000000,0.006316,1200.000,"
        "0.040000,0.000000,0.006316,0.000000,0.021128,0.027444\r\n"
        "2026-10-25T02:00:00+01:00,2026-10-25T03:00:00+01:00,1792890000,"
        "0.030125,0.000000,0.030125,0.004757,0.000000,0.004757,900.000,"
        "0.030125,0.000000,0.004757,0.000000,0.021128,0.025884\r\n"
        f"2026-10-25T03:00:00+01:00,2026-10-25T04:00:00+01:00,1792893600{empty}\r\n"
    )
    day = csv_of(client, "energy.csv", sensor="all", start="2026-10-25", bucket="day")
    # The whole 25-hour day, every sensor: 0.040 + 0.030125 kWh.
    assert day.splitlines()[1].startswith("2026-10-25T00:00:00+02:00,2026-10-26T00:00:00+01:00,1792879200,0.070125,")


def test_energy_buckets_match_the_json_api(client: TestClient) -> None:
    params: dict[str, str | int] = {"sensor": "all", "start": "2026-01-01", "bucket": "month", "count": 12}
    report = client.get("/api/v2/energy", params=params).json()
    rows = [line.split(",") for line in csv_of(client, "energy.csv", **params).splitlines()[1:]]
    assert len(rows) == 12
    for bucket, row in zip(report["buckets"], rows, strict=True):
        assert row[0] == bucket["start"].replace("Z", "+00:00")
        assert row[3] == ("" if bucket["kwh"] is None else f"{bucket['kwh']:.6f}")
        assert row[6] == ("" if bucket["euros"] is None else f"{bucket['euros']:.6f}")


@pytest.mark.parametrize(
    ("path", "params", "status", "reason"),
    [
        ("readings.csv", {"start": "2026-01-15", "end": "2026-01-14"}, 400, "end must be on or after start"),
        # 2025-01-01 to 2026-01-02: 365 + 2 = 367 days, one more than a file may hold.
        ("readings.csv", {"start": "2025-01-01", "end": "2026-01-02"}, 400, "at most 366 days"),
        ("readings.csv", {"start": "2026-02-30"}, 400, "query.start"),
        ("readings.csv", {"start": "9999-12-31"}, 400, "before 9999-12-31"),
        ("readings.csv", {"start": "2026-01-15", "tz": "Mars/Olympus"}, 400, "unknown time zone"),
        ("readings.csv", {"start": "2026-01-15", "sensor": "kitchen"}, 400, "integer id or 'all'"),
        ("readings.csv", {"start": "2026-01-15", "sensor": "99"}, 404, "no sensor with id 99"),
        ("energy.csv", {"start": "2026-01-15", "bucket": "minute"}, 400, "query.bucket"),
        ("energy.csv", {"start": "2026-01-15", "count": 0}, 400, "query.count"),
        ("energy.csv", {"start": "2026-01-15", "count": 20_001}, 400, "query.count"),
        ("energy.csv", {"start": "9999-12-01", "bucket": "month", "count": 2}, 400, "outside the calendar"),
        ("energy.csv", {"start": "2026-01-15", "sensor": "99999999999"}, 404, "no sensor"),
    ],
)
def test_bad_parameters_are_refused_with_their_reason(
    client: TestClient, path: str, params: dict[str, str | int], status: int, reason: str
) -> None:
    response = client.get(f"/api/v2/export/{path}", params=params)
    assert response.status_code == status, response.text
    assert reason in response.json()["error"]


def test_exports_need_a_login(client: TestClient) -> None:
    client.post("/logout", headers=SAME_ORIGIN)
    for path in ("readings.csv", "energy.csv"):
        assert client.get(f"/api/v2/export/{path}", params={"start": "2026-01-15"}).status_code == 401


@pytest.mark.backends(*BACKENDS)
def test_a_slow_download_does_not_hold_a_pooled_connection(database_url: str, tmp_path: Path) -> None:
    """With one pooled connection, a download stalled by its reader leaves the api answering.

    200 000 readings are some 12 MB of CSV: far more than the sockets' buffers, so the server is
    blocked writing the stream while the test is not reading it.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO sensors (key, name, kind) VALUES ('big', 'big', 'simulator')")
        conn.execute(
            "INSERT INTO readings (sensor_id, ts, power, night_rate)"
            " SELECT 1, timestamptz '2026-03-01 00:00+01' + n * interval '1 s', 100 + n % 7, false"
            " FROM generate_series(0, 199999) AS n"
        )
    with api_with_one_connection(database_url, tmp_path / "api.log", ADMIN) as (base, cookie, server):
        query = urllib.parse.urlencode({"sensor": "1", "start": "2026-03-01", "end": "2026-03-31"})
        download = urllib.request.Request(f"{base}/api/v2/export/readings.csv?{query}", headers={"Cookie": cookie})
        with urllib.request.urlopen(download, timeout=30) as stream:
            assert stream.readline() == b"time,unix_time,sensor,power_w,voltage_v,current_a,rate\r\n"
            assert stream.readline().startswith(b"2026-03-01T00:00:00+01:00,1772319600,big,100.0,,,day")
            # The download now stalls (we stop reading); the api's only connection must be free.
            sensors = urllib.request.Request(f"{base}/api/v2/sensors", headers={"Cookie": cookie})
            with urllib.request.urlopen(sensors, timeout=8) as response:
                assert response.status == 200
            # Then the whole file arrives, every reading once, in order.
            rows = 2 + sum(1 for _ in stream)
        assert rows == 1 + 200_000
    assert "Traceback" not in server.log()


def test_streaming_reads_pages_not_everything(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of READINGS_PAGE rows: with a page of 2, the DST day's three readings need two queries
    that each return at most 2 rows, and the CSV is the same."""
    from citizenwatt_api import export

    whole = csv_of(client, "readings.csv", sensor="2", start="2026-10-25")
    monkeypatch.setattr(export, "READINGS_PAGE", 2)
    fetched: list[int] = []
    original = psycopg.Cursor.fetchall

    def counting(self: psycopg.Cursor[object]) -> list[object]:
        rows = original(self)
        columns = [column.name for column in self.description or ()]
        if columns == ["ts", "line"]:  # the export's page query
            fetched.append(len(rows))
        return rows

    monkeypatch.setattr(psycopg.Cursor, "fetchall", counting)
    assert csv_of(client, "readings.csv", sensor="2", start="2026-10-25") == whole
    assert fetched == [2, 1]


def test_unix_times_and_numbers_are_written_exactly() -> None:
    from citizenwatt_api.export import _number, _unix

    assert _unix(datetime(2026, 10, 25, 1, 2, 0, 500_000, tzinfo=UTC)) == "1792890120.5"
    assert _unix(datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)) == "-0.5"
    assert _unix(datetime(1969, 12, 31, 23, 59, 58, tzinfo=UTC)) == "-2"
    assert _number(-1e-15, 6) == "0.000000"
    assert _number(-0.0000006, 6) == "-0.000001"
    assert _number(None, 6) == "" and _number(229.0) == "229.0"


def test_the_database_writes_floats_as_python_does(db: psycopg.Connection[tuple[object, ...]]) -> None:
    """The readings' CSV lines are written by PostgreSQL; its float text must be Python's repr
    (the reference the energy CSV and the JSON API use) for every value a reading can hold:
    whole numbers (Python adds ".0"), tiny ones (exponent below 1e-4), signed zero, the bounds."""
    import random

    from citizenwatt_api.export import _float_sql

    rng = random.Random(7)
    values = [0.0, -0.0, 1.0, -1.0, 229.0, 1e6, -1e6, 1e3, 4.35, 0.1, 1e-4, 9.999e-5, 1e-7, 5e-324, 123456.789]
    values += [rng.uniform(-1e6, 1e6) for _ in range(2000)] + [
        rng.uniform(-1, 1) * 10 ** -rng.randint(0, 9) for _ in range(500)
    ]
    values += [float(rng.randint(-1_000_000, 1_000_000)) for _ in range(200)] + [
        round(rng.uniform(0, 3000), 1) for _ in range(200)
    ]
    rows = db.execute(f"SELECT {_float_sql('v')} FROM unnest(%s::float8[]) AS u(v)", (values,)).fetchall()
    assert [row[0] for row in rows] == [repr(v) for v in values]
    assert db.execute(f"SELECT {_float_sql('NULL::float8')}").fetchone() == ("",)
