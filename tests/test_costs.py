"""Costs that match the bill, through the database and the API, against figures worked out by hand.

Every stored stretch is one reading a minute at a constant power from a local (Paris) wall-clock
time to another, both ends included, so its energy is the power times its real duration, all of
it import. Each test types or picks the tariff it prices with, from a date, so the seeded prices
matter only where a test says so.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient

from citizenwatt_api.app import create_app
from citizenwatt_api.costs import bucket_costs, cost_periods, cost_report
from citizenwatt_api.settings import ApiSettings
from tests.conftest import ALL_BACKENDS
from tests.services import MqttObserver, aggregator_online, api_with_one_connection, wait_until
from tests.test_api_legacy import ADMIN, SAME_ORIGIN, approx, store
from tools.localstack import LocalMosquitto

PARIS = ZoneInfo("Europe/Paris")
pytestmark = pytest.mark.backends(*ALL_BACKENDS)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS).timestamp()


def stretch(database_url: str, local_start: str, local_end: str, watts: float, sensor: str = "house") -> None:
    """A reading a minute from one local time to another (ISO, Paris), at ``watts``."""
    lo, hi = at(local_start), at(local_end)
    store(database_url, sensor, [(lo + 60 * i, watts) for i in range(int((hi - lo) // 60) + 1)])


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
    with TestClient(create_app(settings)) as test_client:
        test_client.post("/install", data=ADMIN)
        yield test_client


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def own_tariff(client: TestClient, name: str, versions: list[dict[str, Any]], since: str) -> dict[str, Any]:
    """Type a tariff through the API and put the household on it from ``since``."""
    tariff = ok(client.post("/api/v2/tariffs", json={"name": name, "versions": versions}, headers=SAME_ORIGIN), 201)
    ok(
        client.put(
            "/api/v2/settings/tariff", json={"tariff_id": tariff["id"], "valid_from": since}, headers=SAME_ORIGIN
        )
    )
    return dict(tariff)


def costs(client: TestClient, **params: Any) -> Any:
    return ok(client.get("/api/v2/costs", params=params))


def leaves_add_up(report: dict[str, Any]) -> None:
    """Every shown total is the decimal sum of the shown leaves under it, with ``decimals`` decimals."""
    places = report["decimals"]

    def d(text: str) -> Decimal:
        assert len(text.split(".")[1]) == places, text
        return Decimal(text)

    for bucket in report["buckets"]:
        parts = sum((d(p["shown"]) for p in bucket["parts"]), Decimal(0))
        assert d(bucket["shown"]) == parts + d(bucket["subscription_shown"]) - d(bucket["export_shown"])
    assert d(report["shown"]) == sum((d(b["shown"]) for b in report["buckets"]), Decimal(0))
    assert d(report["subscription_shown"]) == sum((d(b["subscription_shown"]) for b in report["buckets"]), Decimal(0))
    assert d(report["shown"]) == sum((d(p["shown"]) for p in report["parts"]), Decimal(0)) + d(
        report["subscription_shown"]
    ) - d(report["export_shown"])


def test_a_fresh_install_has_the_seeded_tariffs_and_is_on_base(client: TestClient) -> None:
    answer = ok(client.get("/api/v2/tariffs"))
    by_kind = {t["kind"]: t for t in answer["tariffs"]}
    assert set(by_kind) == {"base", "hc", "tempo"} and all(t["builtin"] for t in answer["tariffs"])
    assert answer["household"] == [{"valid_from": "2000-01-01", "tariff_id": by_kind["base"]["id"]}]
    assert answer["current_tariff_id"] == by_kind["base"]["id"]
    hc = {v["valid_from"]: v for v in by_kind["hc"]["versions"]}
    assert hc["2025-08-01"]["periods"] == {"peak": 0.2081, "offpeak": 0.1635}
    assert hc["2025-08-01"]["windows"] == [{"start": "22:00", "end": "06:00", "period": "offpeak"}]
    tempo = {v["valid_from"]: v for v in by_kind["tempo"]["versions"]}
    assert tempo["2026-02-01"]["periods"]["peak"] == {"blue": 0.1612, "white": 0.1871, "red": 0.7060}
    assert [v["valid_from"] for v in by_kind["base"]["versions"]] == ["2025-02-01", "2025-08-01", "2026-02-01"]


def test_a_month_across_a_price_change(client: TestClient, database_url: str, compress: Callable[[str], int]) -> None:
    """A flat tariff at 0.20 EUR/kWh and 10.00 EUR/month from 2026-01-01, 0.25 and 12.40 from
    2026-01-16. 1000 W for an hour on the 10th (1 kWh) and on the 20th (1 kWh).

    January as one bucket: 1 kWh at 0.20 = 0.20 and 1 kWh at 0.25 = 0.25; subscription prorated by
    the days of January (31) each version covers: 10.00 * 15/31 + 12.40 * 16/31 = (150 + 198.4)/31
    = 11.2387096... -> "11.24". Decimals: 2 (the smallest leaf, 0.20, shows 2 digits with 2).
    Total shown 0.20 + 0.25 + 11.24 = "11.69"; exact 11.6887096...

    January by day: each day's subscription is 10/31 = 0.3225... -> "0.32" (1st-15th) or
    12.40/31 = 0.40 -> "0.40" (16th-31st); the month's total shown is then 15 * 0.32 + 16 * 0.40 +
    0.20 + 0.25 = 4.80 + 6.40 + 0.45 = "11.65": each shown total adds its own shown leaves.
    """
    own_tariff(
        client,
        "Flat",
        [
            {"valid_from": "2026-01-01", "subscription_euros_per_month": 10.00, "periods": {"base": 0.20}},
            {"valid_from": "2026-01-16", "subscription_euros_per_month": 12.40, "periods": {"base": 0.25}},
        ],
        since="2026-01-01",
    )
    stretch(database_url, "2026-01-10T12:00", "2026-01-10T13:00", 1000)
    stretch(database_url, "2026-01-20T12:00", "2026-01-20T13:00", 1000)
    compress(database_url)
    month = costs(client, start="2026-01-01", bucket="month", subscription="true")
    assert month["decimals"] == 2 and month["currency"] == "EUR" and month["subscription"] is True
    (bucket,) = month["buckets"]
    assert [(p["tariff"], p["period"], p["colour"], p["euros_per_kwh"], p["shown"]) for p in bucket["parts"]] == [
        ("Flat", "base", None, 0.20, "0.20"),
        ("Flat", "base", None, 0.25, "0.25"),
    ]
    assert [p["kwh"] for p in bucket["parts"]] == [approx(1.0), approx(1.0)]
    assert bucket["import_kwh"] == approx(2.0) and bucket["export_kwh"] == approx(0.0)
    assert bucket["subscription_euros"] == approx(348.4 / 31) and bucket["subscription_shown"] == "11.24"
    assert (bucket["shown"], bucket["euros"]) == ("11.69", approx(0.45 + 348.4 / 31))
    assert month["shown"] == "11.69"
    leaves_add_up(month)

    days = costs(client, start="2026-01-01", bucket="day", count=31, subscription="true")
    assert [b["subscription_shown"] for b in days["buckets"]] == ["0.32"] * 15 + ["0.40"] * 16
    assert days["buckets"][9]["parts"][0]["shown"] == "0.20" and days["buckets"][19]["parts"][0]["shown"] == "0.25"
    assert days["buckets"][0]["import_kwh"] is None and days["buckets"][0]["parts"] == []
    assert days["shown"] == "11.65" and days["subscription_shown"] == "11.20"
    leaves_add_up(days)
    # Without the subscription: the energy alone, "0.45".
    assert costs(client, start="2026-01-01", bucket="month")["shown"] == "0.45"


def test_a_dst_day_with_a_22_06_window(client: TestClient, database_url: str, compress: Callable[[str], int]) -> None:
    """The seeded Heures creuses from 2026-10-01 (version of 2026-02-01: peak 0.2065, off-peak
    0.1579 EUR/kWh, 22:00-06:00). 600 W from 20:00 on 2026-10-24 to 08:00 on the 25th, the night
    the clocks go back: 03:00 CEST is 02:00 CET, so 00:00-06:00 on the 25th lasts 7 h.

    24th: peak 20:00-22:00 = 1.2 kWh * 0.2065 = 0.2478 -> "0.25"; off-peak 22:00-24:00 = 1.2 kWh
      * 0.1579 = 0.18948 -> "0.19"; day "0.44".
    25th: off-peak 00:00-06:00 = 7 h * 0.6 kW = 4.2 kWh * 0.1579 = 0.66318 -> "0.66"; peak
      06:00-08:00 = 1.2 kWh -> 0.2478 "0.25"; day "0.91".
    The night window 22:00-06:00 lasted 9 h: 5.4 kWh off-peak (0.85266, shown 0.19 + 0.66 = "0.85").
    Both days "1.35".
    """
    hc = next(t for t in ok(client.get("/api/v2/tariffs"))["tariffs"] if t["kind"] == "hc")
    ok(
        client.put(
            "/api/v2/settings/tariff", json={"tariff_id": hc["id"], "valid_from": "2026-10-01"}, headers=SAME_ORIGIN
        )
    )
    stretch(database_url, "2026-10-24T20:00", "2026-10-25T08:00", 600)
    compress(database_url)
    report = costs(client, start="2026-10-24", bucket="day", count=2)
    first, second = report["buckets"]
    assert [(p["period"], p["kwh"], p["shown"]) for p in first["parts"]] == [
        ("peak", approx(1.2), "0.25"),
        ("offpeak", approx(1.2), "0.19"),
    ]
    assert [(p["period"], p["kwh"], p["shown"]) for p in second["parts"]] == [
        ("offpeak", approx(4.2), "0.66"),
        ("peak", approx(1.2), "0.25"),
    ]
    assert (first["shown"], second["shown"], report["shown"]) == ("0.44", "0.91", "1.35")
    totals = {p["period"]: p for p in report["parts"]}
    assert (totals["offpeak"]["kwh"], totals["offpeak"]["euros"], totals["offpeak"]["shown"]) == (
        approx(5.4),
        approx(0.85266),
        "0.85",
    )
    assert (totals["peak"]["kwh"], totals["peak"]["euros"], totals["peak"]["shown"]) == (
        approx(2.4),
        approx(0.4956),
        "0.50",
    )
    # The 25th has 25 hourly buckets; its off-peak is 7 of them.
    hours = costs(client, start="2026-10-25", bucket="hour", count=25)["buckets"]
    assert len(hours) == 25 and [b["parts"][0]["period"] for b in hours[:8]] == ["offpeak"] * 7 + ["peak"]
    leaves_add_up(report)


def test_two_windows_at_minute_resolution(
    client: TestClient, database_url: str, compress: Callable[[str], int]
) -> None:
    """Off-peak 01:00-07:00 and 12:37-14:30 at 0.15 EUR/kWh, peak 0.25. 1000 W from 12:00 to 15:00
    on 2026-06-10: peak 12:00-12:37 and 14:30-15:00 = 67 min = 1.11666... kWh -> 0.2791666...
    ("0.28"); off-peak 12:37-14:30 = 113 min = 1.88333... kWh -> 0.2825 ("0.28"); day "0.56".
    The hour 12:00-13:00 is 37 min peak (0.61666... kWh) and 23 min off-peak (0.38333... kWh):
    12:37 is no quarter hour, that part comes from the raw readings."""
    own_tariff(
        client,
        "Two windows",
        [
            {
                "valid_from": "2026-01-01",
                "subscription_euros_per_month": 12,
                "periods": {"peak": 0.25, "offpeak": 0.15},
                "default_period": "peak",
                "windows": [
                    {"start": "01:00", "end": "07:00", "period": "offpeak"},
                    {"start": "12:37", "end": "14:30", "period": "offpeak"},
                ],
            }
        ],
        since="2026-01-01",
    )
    stretch(database_url, "2026-06-10T12:00", "2026-06-10T15:00", 1000)
    compress(database_url)
    (day,) = costs(client, start="2026-06-10")["buckets"]
    assert [(p["period"], p["kwh"], p["euros"], p["shown"]) for p in day["parts"]] == [
        ("peak", approx(67 / 60), approx(67 / 60 * 0.25), "0.28"),
        ("offpeak", approx(113 / 60), approx(0.2825), "0.28"),
    ]
    assert day["shown"] == "0.56"
    noon = costs(client, start="2026-06-10", bucket="hour", count=24)["buckets"][12]
    assert [(p["period"], p["kwh"]) for p in noon["parts"]] == [("peak", approx(37 / 60)), ("offpeak", approx(23 / 60))]


def test_an_exporting_day(client: TestClient, database_url: str, compress: Callable[[str], int]) -> None:
    """Import priced, export credited. The exporting day of test_export_energy (2026-01-15 around
    06:00 Paris): 25 000 J imported = 0.0069444... kWh, 45 000 J exported = 0.0125 kWh, on a tariff
    at 0.20 EUR/kWh with an export credit of 0.08 EUR/kWh.

    Import 0.0069444 * 0.20 = 0.0013888...; export credit 0.0125 * 0.08 = 0.001. The smallest leaf
    (0.001) needs 4 decimals: "0.0014" - "0.0010" = "0.0004" net (exact 0.000388...)."""
    from tests.test_export_energy import TRACE

    own_tariff(
        client,
        "Solar",
        [{"valid_from": "2026-01-01", "periods": {"base": 0.20}, "export_euros_per_kwh": 0.08}],
        since="2026-01-01",
    )
    store(database_url, "solar", [(s.ts, s.power) for s in TRACE])
    compress(database_url)
    report = costs(client, start="2026-01-15")
    (bucket,) = report["buckets"]
    assert report["decimals"] == 4
    assert (bucket["import_kwh"], bucket["export_kwh"]) == (approx(25_000 / 3.6e6), approx(0.0125))
    assert [(p["kwh"], p["euros"], p["shown"]) for p in bucket["parts"]] == [
        (approx(25_000 / 3.6e6), approx(25_000 / 3.6e6 * 0.2), "0.0014")
    ]
    assert (bucket["export_euros"], bucket["export_shown"]) == (approx(0.001), "0.0010")
    assert (bucket["euros"], bucket["shown"], report["shown"]) == (
        approx(25_000 / 3.6e6 * 0.2 - 0.001),
        "0.0004",
        "0.0004",
    )
    leaves_add_up(report)


def test_a_tiny_cost_is_never_zero(client: TestClient, database_url: str) -> None:
    """360 W for 30 s = 10 800 J = 3 Wh, at 0.2 EUR/kWh: 0.0006 EUR, shown "0.00060" (5 decimals:
    two significant digits), and the total is that same "0.00060"."""
    own_tariff(client, "Cheap", [{"valid_from": "2026-01-01", "periods": {"base": 0.2}}], since="2026-01-01")
    t = at("2026-03-03T10:00")
    store(database_url, "house", [(t, 360.0), (t + 30, 360.0)])
    report = costs(client, start="2026-03-03")
    assert report["decimals"] == 5
    assert [p["shown"] for p in report["buckets"][0]["parts"]] == ["0.00060"] and report["shown"] == "0.00060"
    leaves_add_up(report)


def test_bad_input_is_refused_with_a_reason(client: TestClient) -> None:
    def put_version(tariff_id: int, day: str, body: dict[str, Any]) -> Any:
        return client.put(f"/api/v2/tariffs/{tariff_id}/versions/{day}", json=body, headers=SAME_ORIGIN)

    tariff = own_tariff(client, "Mine", [{"valid_from": "2026-01-01", "periods": {"base": 0.2}}], since="2026-01-01")
    overlapping = {
        "periods": {"peak": 0.2, "offpeak": 0.1},
        "default_period": "peak",
        "windows": [
            {"start": "22:00", "end": "06:00", "period": "offpeak"},
            {"start": "05:30", "end": "07:00", "period": "offpeak"},
        ],
    }
    response = put_version(tariff["id"], "2026-02-01", overlapping)
    assert response.status_code == 400 and "overlap" in response.json()["error"]
    bad_time = {**overlapping, "windows": [{"start": "22h00", "end": "06:00", "period": "offpeak"}]}
    response = put_version(tariff["id"], "2026-02-01", bad_time)
    assert response.status_code == 400 and "HH:MM" in response.json()["error"]
    response = put_version(tariff["id"], "2026-02-01", {"periods": {"base": -0.2}})
    assert response.status_code == 400 and ">= 0" in response.json()["error"]
    assert put_version(999, "2026-02-01", {"periods": {"base": 0.2}}).status_code == 404
    response = client.put("/api/v2/settings/tariff", json={"tariff_id": 999}, headers=SAME_ORIGIN)
    assert response.status_code == 404 and "999" in response.json()["error"]
    response = client.post(
        "/api/v2/tariffs",
        json={"name": "Mine", "versions": [{"valid_from": "2026-01-01", "periods": {"base": 0.1}}]},
        headers=SAME_ORIGIN,
    )
    assert response.status_code == 409
    response = client.delete(f"/api/v2/tariffs/{tariff['id']}/versions/2026-01-01", headers=SAME_ORIGIN)
    assert response.status_code == 409
    assert client.delete(f"/api/v2/tariffs/{tariff['id']}/versions/2020-01-01", headers=SAME_ORIGIN).status_code == 404
    assert client.get("/api/v2/costs", params={"start": "2026-01-01", "sensor": "77"}).status_code == 404
    assert client.get("/api/v2/costs", params={"start": "2026-01-01", "bucket": "fortnight"}).status_code == 400
    assert client.put("/api/v2/tempo/2026-01-08", json={"colour": "purple"}, headers=SAME_ORIGIN).status_code == 400
    # Adding, replacing and removing a version.
    added = ok(put_version(tariff["id"], "2026-02-01", {"periods": {"base": 0.3}}))
    assert [v["valid_from"] for v in added["versions"]] == ["2026-01-01", "2026-02-01"]
    replaced = ok(put_version(tariff["id"], "2026-02-01", {"periods": {"base": 0.35}}))
    assert replaced["versions"][1]["periods"] == {"base": 0.35}
    removed = ok(client.delete(f"/api/v2/tariffs/{tariff['id']}/versions/2026-02-01", headers=SAME_ORIGIN))
    assert [v["valid_from"] for v in removed["versions"]] == ["2026-01-01"]


def tempo_rows(database_url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT day, colour, source FROM tempo_days ORDER BY day").fetchall()
    return [(r[0].isoformat(), str(r[1]), str(r[2])) for r in rows]


@pytest.mark.backends("plain")
def test_a_tempo_week_with_a_red_day(mosquitto: LocalMosquitto, database_url: str, tmp_path: Path) -> None:
    """The seeded Tempo from Monday 2026-01-05 (its version of 2025-08-01: peak blue 0.1494,
    white 0.1730, red 0.6468; off-peak 22:00-06:00 red 0.1460). Wednesday the 7th is red, announced
    on the retained MQTT topic; Thursday the 8th white, set through the API; Friday the 9th unknown.
    600 W for an hour at 12:00 on the 7th, 8th and 9th, and at 03:00 on the 8th (0.6 kWh each):

    - 7th 12:00, red peak: 0.6 * 0.6468 = 0.38808
    - 8th 03:00, still the red day's night (a Tempo day runs 06:00 to 06:00): 0.6 * 0.1460 = 0.0876
    - 8th 12:00, white peak: 0.6 * 0.1730 = 0.1038
    - 9th 12:00, unknown, priced as blue and said so: 0.6 * 0.1494 = 0.08964
    The smallest leaf, 0.0876, needs 3 decimals: "0.388", "0.088", "0.104", "0.090"; the week's
    total shown is their sum, "0.670" (exact 0.66912).

    A malformed retained colour ("purple" for the 10th) is logged and kept as rejected; the
    aggregator goes on and stores the good one sent after it.
    """
    publisher = MqttObserver(mosquitto.url, "citizenwatt/_household/#", client_id="tempo-announcer")
    try:
        publisher.publish("citizenwatt/_household/tempo/2026-01-07", "red", retain=True)
        publisher.publish("citizenwatt/_household/tempo/2026-01-10", "purple", retain=True)
        env = {"CW_BATCH_DELAY_SECONDS": "0.25"}
        with aggregator_online(mosquitto.url, database_url, tmp_path / "agg.log", extra_env=env):
            wait_until(lambda: ("2026-01-07", "red", "mqtt") in tempo_rows(database_url), message="red day stored")
            publisher.publish("citizenwatt/_household/tempo/2026-01-10", '{"colour": "white"}', retain=True)
            wait_until(lambda: ("2026-01-10", "white", "mqtt") in tempo_rows(database_url), message="next good one")
            settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", mqtt_url=mosquitto.url)
            app = create_app(settings)
            with TestClient(app) as client:
                client.post("/install", data=ADMIN)
                wait_until(lambda: app.state.radio_publisher.connected, message="api connected to the broker")
                thursday = ok(client.put("/api/v2/tempo/2026-01-08", json={"colour": "white"}, headers=SAME_ORIGIN))
                assert thursday == {"day": "2026-01-08", "colour": "white", "source": "api", "delivered": True}
                # Published retained for the aggregator and Home Assistant; the aggregator hearing the
                # same colour back leaves its source alone.
                publisher.wait_for(
                    lambda ms: (
                        ("citizenwatt/_household/tempo/2026-01-08", b"white", True) in ms
                        or ("citizenwatt/_household/tempo/2026-01-08", b"white", False) in ms
                    )
                )
                tempo = next(t for t in ok(client.get("/api/v2/tariffs"))["tariffs"] if t["kind"] == "tempo")
                body = {"tariff_id": tempo["id"], "valid_from": "2026-01-05"}
                ok(client.put("/api/v2/settings/tariff", json=body, headers=SAME_ORIGIN))
                for start, end in (
                    ("2026-01-07T12:00", "2026-01-07T13:00"),
                    ("2026-01-08T03:00", "2026-01-08T04:00"),
                    ("2026-01-08T12:00", "2026-01-08T13:00"),
                    ("2026-01-09T12:00", "2026-01-09T13:00"),
                ):
                    stretch(database_url, start, end, 600)
                days = ok(client.get("/api/v2/tempo", params={"start": "2026-01-05", "end": "2026-01-11"}))
                assert [(d["day"], d["colour"], d["source"]) for d in days] == [
                    ("2026-01-07", "red", "mqtt"),
                    ("2026-01-08", "white", "api"),
                    ("2026-01-10", "white", "mqtt"),
                ]
                week = costs(client, start="2026-01-05", bucket="week")
    finally:
        publisher.close()
    assert week["decimals"] == 3
    (bucket,) = week["buckets"]
    assert [
        (p["period"], p["colour"], p["colour_assumed"], p["euros_per_kwh"], p["shown"]) for p in bucket["parts"]
    ] == [
        ("peak", "red", False, 0.6468, "0.388"),
        ("offpeak", "red", False, 0.1460, "0.088"),
        ("peak", "white", False, 0.1730, "0.104"),
        ("peak", "blue", True, 0.1494, "0.090"),
    ]
    assert (bucket["euros"], bucket["shown"], week["shown"]) == (approx(0.66912), "0.670", "0.670")
    leaves_add_up(week)
    with psycopg.connect(database_url, autocommit=True) as conn:
        reasons = [str(r[0]) for r in conn.execute("SELECT reason FROM rejected_messages").fetchall()]
    assert len(reasons) == 1 and "purple" in reasons[0]
    assert "rejected message on citizenwatt/_household/tempo/2026-01-10" in (tmp_path / "agg.log").read_text()


def test_the_running_api_answers_as_the_functions(client: TestClient, database_url: str, tmp_path: Path) -> None:
    """The month across a price change (test_a_month_across_a_price_change), from a real api process,
    is the very answer the functions give on their own connection."""
    own_tariff(
        client,
        "Flat",
        [
            {"valid_from": "2026-01-01", "subscription_euros_per_month": 10.00, "periods": {"base": 0.20}},
            {"valid_from": "2026-01-16", "subscription_euros_per_month": 12.40, "periods": {"base": 0.25}},
        ],
        since="2026-01-01",
    )
    stretch(database_url, "2026-01-10T12:00", "2026-01-10T13:00", 1000)
    stretch(database_url, "2026-01-20T12:00", "2026-01-20T13:00", 1000)
    with psycopg.connect(database_url, autocommit=True) as conn:
        periods = cost_periods(date(2026, 1, 1), "day", 31, PARIS)
        expected = cost_report(bucket_costs(conn, [1], periods, PARIS, 300.0, True), "all", PARIS, "day", True)
    admin = {"login": "costs-admin", "password": "another horse battery"}
    with api_with_one_connection(database_url, tmp_path / "api.log", admin) as (base, cookie, _):
        query = "start=2026-01-01&bucket=day&count=31&subscription=true"
        request = urllib.request.Request(f"{base}/api/v2/costs?{query}", headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=30) as response:
            live = json.loads(response.read())
    assert live == json.loads(expected.model_dump_json())
    assert live["shown"] == "11.65"


def test_new_night_hours_are_a_new_version_from_a_date(
    client: TestClient, database_url: str, compress: Callable[[str], int]
) -> None:
    """On the seeded Heures creuses (version of 2026-02-01: peak 0.2065, off-peak 0.1579, 22:00-06:00),
    the household's off-peak hours become 23:00-07:00 from 2026-03-01. The seeded tariff is left
    alone: a copy "... (own hours)" takes the new version and the household moves to it then.
    1200 W from 22:00 to 23:30 on 2026-02-27 and on 2026-03-02:

    - 27 February, old hours: all off-peak, 1.8 kWh * 0.1579 = 0.28422
    - 2 March, new hours: 22:00-23:00 peak, 1.2 kWh * 0.2065 = 0.2478; 23:00-23:30 off-peak,
      0.6 kWh * 0.1579 = 0.09474. The smallest leaf needs 3 decimals: "0.284", "0.248", "0.095".
    """
    tariffs = ok(client.get("/api/v2/tariffs"))["tariffs"]
    hc = next(t for t in tariffs if t["kind"] == "hc")
    ok(
        client.put(
            "/api/v2/settings/tariff", json={"tariff_id": hc["id"], "valid_from": "2000-01-01"}, headers=SAME_ORIGIN
        )
    )
    window = {"start": "23:00", "end": "07:00"}
    response = client.put(
        "/api/v2/settings/night-window", params={"valid_from": "2026-03-01"}, json=window, headers=SAME_ORIGIN
    )
    assert ok(response) == window
    answer = ok(client.get("/api/v2/tariffs"))
    copy = next(t for t in answer["tariffs"] if t["name"] == "EDF Tarif Bleu - Heures creuses (own hours)")
    assert copy["kind"] == "custom" and not copy["builtin"]
    assert [v["valid_from"] for v in copy["versions"]] == ["2025-02-01", "2025-08-01", "2026-02-01", "2026-03-01"]
    assert copy["versions"][-1]["windows"] == [{"start": "23:00", "end": "07:00", "period": "offpeak"}]
    assert copy["versions"][-1]["periods"] == {"peak": 0.2065, "offpeak": 0.1579}
    assert answer["household"] == [
        {"valid_from": "2000-01-01", "tariff_id": hc["id"]},
        {"valid_from": "2026-03-01", "tariff_id": copy["id"]},
    ]
    # The seeded tariff keeps its hours.
    seeded = next(t for t in answer["tariffs"] if t["id"] == hc["id"])
    assert all(v["windows"] == [{"start": "22:00", "end": "06:00", "period": "offpeak"}] for v in seeded["versions"])
    stretch(database_url, "2026-02-27T22:00", "2026-02-27T23:30", 1200)
    stretch(database_url, "2026-03-02T22:00", "2026-03-02T23:30", 1200)
    compress(database_url)
    days = costs(client, start="2026-02-27", count=4)["buckets"]
    assert [(p["tariff"], p["period"], p["kwh"], p["shown"]) for p in days[0]["parts"]] == [
        ("EDF Tarif Bleu - Heures creuses", "offpeak", approx(1.8), "0.284")
    ]
    assert [(p["tariff"], p["period"], p["kwh"], p["shown"]) for p in days[3]["parts"]] == [
        ("EDF Tarif Bleu - Heures creuses (own hours)", "peak", approx(1.2), "0.248"),
        ("EDF Tarif Bleu - Heures creuses (own hours)", "offpeak", approx(0.6), "0.095"),
    ]
    # A second change of hours from a later date is one more version of the same copy.
    later = client.put(
        "/api/v2/settings/night-window",
        params={"valid_from": "2026-04-01"},
        json={"start": "01:00", "end": "07:00"},
        headers=SAME_ORIGIN,
    )
    assert later.status_code == 200
    again = next(t for t in ok(client.get("/api/v2/tariffs"))["tariffs"] if t["id"] == copy["id"])
    assert [v["valid_from"] for v in again["versions"]][-2:] == ["2026-03-01", "2026-04-01"]


def test_a_household_without_sensors_pays_its_subscription(client: TestClient) -> None:
    """No sensor yet: nothing measured, every bucket empty; the seeded Base's subscription of
    2026-02-01 (15.47 EUR/month) for the whole of March 2026 is 15.47, "15.47"."""
    report = costs(client, start="2026-03-01", bucket="month", subscription="true")
    (bucket,) = report["buckets"]
    assert (bucket["import_kwh"], bucket["parts"], bucket["subscription_shown"], report["shown"]) == (
        None,
        [],
        "15.47",
        "15.47",
    )
    energy = ok(client.get("/api/v2/energy", params={"start": "2026-03-01"}))
    assert energy["buckets"][0]["euros"] is None and energy["total_euros"] == 0


@pytest.mark.backends("plain")
def test_an_upgraded_household_keeps_its_provider_and_its_own_night_hours(db: psycopg.Connection[Any]) -> None:
    """Migration 7 on a household that chose Heures creuses (legacy provider 2) with night hours
    23:30-07:30 (1410 and 450 minutes): it is put on a copy of the seeded tariff with those hours,
    from 2000-01-01, so its history is priced as it was."""
    from citizenwatt_common.schema import migrate
    from tests.test_export_energy import downgrade_to

    downgrade_to(db, 6)
    db.execute("UPDATE household SET provider_id = 2, night_start_minute = 1410, night_end_minute = 450")
    migrate(db, 300.0)
    rows = db.execute(
        "SELECT t.name, v.valid_from::text, v.windows FROM household_tariffs h JOIN tariffs t ON t.id = h.tariff_id"
        " JOIN tariff_versions v ON v.tariff_id = t.id WHERE h.valid_from = '2000-01-01' ORDER BY v.valid_from"
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        ("EDF Tarif Bleu - Heures creuses (own hours)", "2025-02-01"),
        ("EDF Tarif Bleu - Heures creuses (own hours)", "2025-08-01"),
        ("EDF Tarif Bleu - Heures creuses (own hours)", "2026-02-01"),
    ]
    assert all(r[2] == [{"start": "23:30", "end": "07:30", "period": "offpeak"}] for r in rows)
    # Without hours of its own, the seeded tariff itself.
    downgrade_to(db, 6)
    db.execute("UPDATE household SET provider_id = 2, night_start_minute = 1320, night_end_minute = 360")
    migrate(db, 300.0)
    chosen = db.execute("SELECT t.name FROM household_tariffs h JOIN tariffs t ON t.id = h.tariff_id").fetchall()
    assert chosen == [("EDF Tarif Bleu - Heures creuses",)]


def test_the_legacy_night_flag_follows_the_tariff_version_in_force(client: TestClient, database_url: str) -> None:
    """Readings are tagged night outside the default period of the version in force, when it has
    windows; with a single-price version, by the household's night window as before. The household
    is on Base (no windows) until 2026-01-31 and on a tariff with off-peak 23:00-07:00 from
    2026-02-01; its legacy night window is 22:00-06:00.

    Base, 31 January: 22:30 and 23:30 night (the legacy window).
    Own hours from 1 February (local midnight): 06:30 night (off-peak), 07:30 day, 22:30 day (peak,
    though inside the legacy window), 23:30 night; the same on the 2nd and 3rd."""
    from citizenwatt_common.contract import Reading
    from citizenwatt_common.store import load_household, store_readings

    own_tariff(
        client,
        "Late nights",
        [
            {
                "valid_from": "2026-02-01",
                "periods": {"peak": 0.25, "offpeak": 0.15},
                "default_period": "peak",
                "windows": [{"start": "23:00", "end": "07:00", "period": "offpeak"}],
            }
        ],
        since="2026-02-01",
    )
    times = [at(f"{day}T{hhmm}") for day in ("2026-01-31", "2026-02-01", "2026-02-02") for hhmm in ("22:30", "23:30")]
    times += [at(f"{day}T{hhmm}") for day in ("2026-02-01", "2026-02-03") for hhmm in ("06:30", "07:30")]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE household SET night_start_minute = 1320, night_end_minute = 360")
        with conn.transaction():
            readings = [Reading(sensor="house", kind="simulator", ts=ts, power=100.0) for ts in times]
            store_readings(conn, readings, load_household(conn, with_plan=True), PARIS)
        rows = conn.execute("SELECT extract(epoch FROM ts)::float8, night_rate FROM readings ORDER BY ts").fetchall()
    flags = {datetime.fromtimestamp(ts, PARIS).strftime("%m-%d %H:%M"): night for ts, night in rows}
    assert flags == {
        "01-31 22:30": True,  # Base: the legacy window
        "01-31 23:30": True,
        "02-01 06:30": True,  # the own hours from local midnight: off-peak until 07:00
        "02-01 07:30": False,
        "02-01 22:30": False,
        "02-01 23:30": True,
        "02-02 22:30": False,
        "02-02 23:30": True,
        "02-03 06:30": True,
        "02-03 07:30": False,
    }


def test_buckets_in_another_zone_keep_the_household_hours(client: TestClient, database_url: str) -> None:
    """The household is in Paris; a day asked for in UTC is cut at UTC midnights, but off-peak still
    starts at 22:00 on the Paris wall clock. On the seeded Heures creuses, 600 W from 20:00 to 23:00
    Paris time on 2026-01-15 (19:00-22:00 UTC): 1.2 kWh peak (20:00-22:00 Paris) and 0.6 kWh
    off-peak (22:00-23:00 Paris), not 1.8 kWh peak as the UTC clock would say."""
    hc = next(t for t in ok(client.get("/api/v2/tariffs"))["tariffs"] if t["kind"] == "hc")
    body = {"tariff_id": hc["id"], "valid_from": "2000-01-01"}
    ok(client.put("/api/v2/settings/tariff", json=body, headers=SAME_ORIGIN))
    stretch(database_url, "2026-01-15T20:00", "2026-01-15T23:00", 600)
    report = costs(client, start="2026-01-15", tz="UTC")
    (day,) = report["buckets"]
    assert report["timezone"] == "UTC" and day["start"] == "2026-01-15T00:00:00Z"
    assert [(p["period"], p["kwh"]) for p in day["parts"]] == [("peak", approx(1.2)), ("offpeak", approx(0.6))]
    energy = ok(client.get("/api/v2/energy", params={"start": "2026-01-15", "tz": "UTC"}))["buckets"][0]
    assert energy["euros"] == approx(1.2 * 0.2081 + 0.6 * 0.1635)
