"""Readings with impossible times (issue 14, item 3): the real aggregator process, a real Mosquitto
and PostgreSQL (plain and TimescaleDB), the api in-process on the same database.

The rules themselves, case by case, are in tests/test_clock_check.py; here they are checked where
they matter: energy, the newest reading, the state topic, the collector's confirmation, /healthz,
the list, release and delete.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient

from citizenwatt_api.app import create_app
from citizenwatt_api.settings import ApiSettings
from citizenwatt_common.contract import Reading
from citizenwatt_common.store import load_household, store_readings
from tests.services import MqttObserver, aggregator_online, count_rows, wait_until
from tools.localstack import LocalMosquitto, free_port

ADMIN = {"login": "admin", "password": "correct horse battery"}
SAME_ORIGIN = {"Origin": "http://testserver"}
QUARANTINED = "SELECT count(*) FROM quarantined_readings"
H = datetime(2026, 11, 24, 11, 0, tzinfo=UTC).timestamp()  # 12:00 in Paris


def reading(sensor: str, seq: int, ts: float, power: float) -> bytes:
    return json.dumps({"v": 1, "sensor": sensor, "kind": "simulator", "ts": ts, "power": power, "seq": seq}).encode()


def publish_all(observer: MqttObserver, sensor: str, points: list[tuple[int, float, float]]) -> None:
    for seq, ts, power in points:
        observer.publish(f"citizenwatt/{sensor}/reading", reading(sensor, seq, ts, power))


def processed(database_url: str, sensor: str) -> int:
    """Readings of ``sensor`` stored or kept aside: every message the aggregator has committed."""
    return count_rows(
        database_url,
        "SELECT (SELECT count(*) FROM readings r JOIN sensors s ON s.id = r.sensor_id WHERE s.key = %(k)s)"
        " + (SELECT count(*) FROM quarantined_readings q JOIN sensors s ON s.id = q.sensor_id WHERE s.key = %(k)s)",
        {"k": sensor},
    )


def wait_processed(database_url: str, sensor: str, count: int) -> None:
    wait_until(lambda: processed(database_url, sensor) >= count, message=f"{count} readings of {sensor} committed")


def committed_seqs(messages: list[tuple[str, bytes, bool]], sensor: str) -> set[int]:
    """Every seq the aggregator confirmed to ``sensor``'s collector."""
    ranges = [json.loads(p)["seqs"] for t, p, _ in messages if t == f"citizenwatt/{sensor}/committed"]
    return {seq for pairs in ranges for low, high in pairs for seq in range(low, high + 1)}


def health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return dict(json.loads(response.read()))


@pytest.fixture
def api(database_url: str) -> Iterator[TestClient]:
    settings = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
    with TestClient(create_app(settings)) as client:
        assert client.post("/api/v2/install", json=ADMIN).status_code == 201
        yield client


def hourly_kwh(api: TestClient, sensor_id: int) -> list[float | None]:
    """Energy of each UTC hour of 2026-11-24."""
    report = api.get(
        "/api/v2/energy",
        params={"sensor": sensor_id, "start": "2026-11-24", "bucket": "hour", "count": 24, "tz": "UTC"},
    ).json()
    return [bucket["kwh"] for bucket in report["buckets"]]


def joules(value: float) -> Any:
    return pytest.approx(value / 3.6e6, rel=1e-9, abs=1e-12)


def test_a_clock_an_hour_behind_for_two_minutes_is_kept_out_of_the_energy(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, api: TestClient
) -> None:
    """The tester's Pi, with H = 2026-11-24 11:00 UTC and a reading every 8 s:

    - A, the hour before: 100 W at H-3600, H-3592, ..., H (451 readings, seqs 1000..1450);
    - B, a 3 kW appliance: H+4, H+12, ..., H+236 (30 readings, seqs 1451..1480);
    - the clock 1 h behind for 2 minutes: the readings of H+244..H+356 stamped H-3356..H-3244
      (15 readings, seqs 1481..1495, 3 kW), which fall between A's (4 s off their 8-s grid);
    - C, the right time again: H+364, ..., H+596 (30 readings, seqs 1496..1525, 3 kW).

    The aggregator is restarted between B and the misdated run, so its mark (seq 1480 at H+236)
    comes from the database. Energy by trapezoids (no gap reaches the 300 s limit):
    - hour 10 UTC [H-3600, H): 450 segments of 8 s at 100 W = 360 000 J = 0.1 kWh;
    - hour 11 UTC: H -> H+4 from 100 to 3000 W = 3100 / 2 * 4 = 6 200 J, then 3000 W from H+4 to
      H+596 (the 128 s without a right reading, H+236 -> H+364, bridged) = 1 776 000 J:
      1 782 200 J. Stored among A's, the misdated run would have turned 120 s at 100 W (12 000 J)
      into 30 segments of 4 s between 100 and 3000 W (186 000 J).
    The first misdated reading is 3592 s (59 min 52 s) before seq 1480's H+236 (11:03:56Z): it is
    stamped 10:04:04Z. Released, it replaces A's segment H-3360 -> H-3352 (800 J) by two of 4 s
    from 100 to 3000 W (6 200 J each): hour 10 gains 11 600 J, to 371 600 J.
    """
    a = [(1000 + i, H - 3600 + 8 * i, 100.0) for i in range(451)]
    b = [(1451 + j, H + 4 + 8 * j, 3000.0) for j in range(30)]
    misdated = [(1481 + k, H - 3356 + 8 * k, 3000.0) for k in range(15)]
    c = [(1496 + m, H + 364 + 8 * m, 3000.0) for m in range(30)]
    with aggregator_online(mosquitto.url, database_url, tmp_path / "agg1.log") as observer:
        publish_all(observer, "house", a + b)
        wait_processed(database_url, "house", 481)
    port = free_port()
    log = tmp_path / "agg2.log"
    with aggregator_online(mosquitto.url, database_url, log, extra_env={"CW_HEALTH_PORT": str(port)}) as observer:
        publish_all(observer, "house", misdated)
        wait_processed(database_url, "house", 496)
        publish_all(observer, "house", c)
        wait_processed(database_url, "house", 526)
        # Kept, so confirmed to the collector like any reading, which it may now forget.
        observer.wait_for(lambda ms: committed_seqs(ms, "house") >= set(range(1481, 1526)))
        assert health(port)["quarantined"] == 15
    assert count_rows(database_url) == 511 and count_rows(database_url, QUARANTINED) == 15
    assert log.read_text().count("quarantined reading of house") == 15

    listed = api.get("/api/v2/quarantine").json()
    assert listed["total"] == 15
    assert [r["seq"] for r in listed["readings"]] == list(range(1495, 1480, -1))  # newest received first
    first = listed["readings"][-1]
    assert (first["sensor_key"], first["ts"], first["power"]) == ("house", H - 3356, 3000.0)
    assert first["reason"] == (
        "time went back: seq 1481 is stamped 2026-11-24T10:04:04Z, 59 min 52 s before seq 1480"
        " (2026-11-24T11:03:56Z), already stored with a lower seq"
    )
    assert all("before seq 1480 (2026-11-24T11:03:56Z)" in r["reason"] for r in listed["readings"])
    assert first["received_at"] > H

    hours = hourly_kwh(api, 1)
    assert hours[10] == joules(360_000) and hours[11] == joules(1_782_200)
    assert hours[:10] == [None] * 10 and hours[12:] == [None] * 12

    # Changing routes: an administrator's, from the page's origin.
    assert api.post(f"/api/v2/quarantine/{first['id']}/release").json()["code"] == "cross_site_refused"
    released = api.post(f"/api/v2/quarantine/{first['id']}/release", headers=SAME_ORIGIN)
    assert released.status_code == 200 and released.json() == {"id": first["id"], "outcome": "stored"}
    assert hourly_kwh(api, 1)[10] == joules(371_600)
    assert hourly_kwh(api, 1)[11] == joules(1_782_200)
    assert count_rows(database_url, "SELECT count(*) FROM readings WHERE seq = 1481") == 1
    again = api.post(f"/api/v2/quarantine/{first['id']}/release", headers=SAME_ORIGIN)
    assert (again.status_code, again.json()["code"], again.json()["params"]) == (
        404,
        "unknown_quarantined_reading",
        {"id": first["id"]},
    )

    second = listed["readings"][-2]  # seq 1482
    assert api.delete(f"/api/v2/quarantine/{second['id']}", headers=SAME_ORIGIN).status_code == 204
    assert api.delete(f"/api/v2/quarantine/{second['id']}", headers=SAME_ORIGIN).status_code == 404
    assert api.get("/api/v2/quarantine").json()["total"] == 13
    assert hourly_kwh(api, 1)[10] == joules(371_600)  # a deletion stores nothing
    assert count_rows(database_url, "SELECT count(*) FROM readings WHERE seq = 1482") == 0


def test_releasing_what_is_already_stored_is_said_and_a_clash_stays_aside(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, api: TestClient
) -> None:
    """Two rows put in quarantine by hand (as a redelivery could leave them): a copy of a stored
    reading (seq 2, 500 W at T+8), released: 'duplicate', energy unchanged (two segments of 8 s at
    500 W: 8 000 J); and another reading at the same instant with 900 W: 409, still there."""
    t = H - 7200
    with aggregator_online(mosquitto.url, database_url, tmp_path / "agg.log") as observer:
        publish_all(observer, "plug", [(1, t, 500.0), (2, t + 8, 500.0), (3, t + 16, 500.0)])
        wait_processed(database_url, "plug", 3)
    with psycopg.connect(database_url, autocommit=True) as conn:
        ids = [
            int(str(row[0]))
            for power in (500.0, 900.0)
            for row in conn.execute(
                "INSERT INTO quarantined_readings (sensor_id, ts, power, seq, payload, reason)"
                " SELECT sensor_id, ts, %s, seq + (%s = 900.0)::int, '{}', 'put here by the test' FROM readings"
                " WHERE seq = 2 RETURNING id",
                (power, power),
            ).fetchall()
        ]
    duplicate = api.post(f"/api/v2/quarantine/{ids[0]}/release", headers=SAME_ORIGIN)
    assert duplicate.json() == {"id": ids[0], "outcome": "duplicate"}
    assert hourly_kwh(api, 1)[9] == joules(8_000)
    clash = api.post(f"/api/v2/quarantine/{ids[1]}/release", headers=SAME_ORIGIN)
    assert (clash.status_code, clash.json()["code"]) == (409, "quarantine_conflict")
    assert [r["id"] for r in api.get("/api/v2/quarantine").json()["readings"]] == [ids[1]]
    assert count_rows(database_url) == 3 and hourly_kwh(api, 1)[9] == joules(8_000)


def test_a_reading_a_day_ahead_is_not_the_newest(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, api: TestClient
) -> None:
    """A meter reads 250 W then 260 W (8 s ago, just now); then a reading stamped 23 h 0 min 30 s
    ahead at 5 W (a dead sensor's last word, from a clock a day off) is kept aside; a right reading
    after it (270 W, now + 1 s) is stored, so the aside one did not become the mark either. The
    state topic, the legacy newest measure (by_id/-1) and /api/v2/sensors say 270 W at now + 1 s,
    online: never 5 W, never last seen in the future."""
    now = time.time()
    ahead = 23 * 3600 + 30
    with aggregator_online(mosquitto.url, database_url, tmp_path / "agg.log") as observer:
        publish_all(observer, "meter", [(1, now - 8, 250.0), (2, now, 260.0)])
        wait_processed(database_url, "meter", 2)
        publish_all(observer, "meter", [(3, now + ahead, 5.0)])
        wait_processed(database_url, "meter", 3)
        assert count_rows(database_url, QUARANTINED) == 1
        publish_all(observer, "meter", [(4, now + 1, 270.0)])
        wait_processed(database_url, "meter", 4)
        # Stored, the 5 W reading would be the newest of every state published from then on.
        observer.wait_for(
            lambda ms: any(t == "citizenwatt/meter/state" and json.loads(p)["power"] == 270.0 for t, p, _ in ms)
        )
        states = [json.loads(p) for t, p, _ in observer.messages if t == "citizenwatt/meter/state"]
        assert 5.0 not in [state["power"] for state in states]
        assert states[-1]["ts"] == pytest.approx(now + 1, abs=1e-5)
    newest = api.get("/api/1/get/watts/by_id/-1").json()["data"]
    assert (newest["value"], newest["timestamp"]) == (270.0, pytest.approx(now + 1, abs=1e-5))
    (sensor,) = api.get("/api/v2/sensors").json()
    assert (sensor["power"], sensor["online"], sensor["last_seen"]) == (270.0, True, pytest.approx(now + 1, abs=1e-5))
    assert count_rows(database_url) == 3
    (listed,) = api.get("/api/v2/quarantine").json()["readings"]
    assert (listed["seq"], listed["power"]) == (3, 5.0)
    assert listed["reason"].startswith("in the future: stamped ")
    assert ", 23 h 0 min (" in listed["reason"] and "CW_MAX_FUTURE_SECONDS = 300 s" in listed["reason"]
    # Released now, it would be the newest for 23 hours: refused until its time has come.
    refused = api.post(f"/api/v2/quarantine/{listed['id']}/release", headers=SAME_ORIGIN)
    assert (refused.status_code, refused.json()["code"]) == (409, "quarantine_in_future")
    assert count_rows(database_url) == 3 and count_rows(database_url, QUARANTINED) == 1


def test_replays_seq_resets_and_daylight_saving_are_not_clocks_going_back(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, api: TestClient
) -> None:
    """Three sensors, nothing kept aside where the time is right:

    - replay: seqs 10..19 (T..T+72) and 30..39 (T+160..T+232) stored, then the outbox sends
      20..29 (T+80..T+152): older seqs with older times, all 30 stored;
    - reset: an older collector's seqs 5000..5009 (T..T+72), then, restarted, 0..9 (T+80..T+152):
      all 20 stored; the mark follows the new numbering, so seq 10 stamped an hour back (T+160-3600)
      is still caught, against seq 9 (T+152);
    - daylight saving: Europe/Paris on 2026-10-25 goes through 02:00-03:00 twice (00:00-01:00 UTC
      in summer time, 01:00-02:00 UTC in winter time); readings every 8 s from 00:00 to 02:00 UTC
      (901, 1000 W) are all stored, and each of the two local 02:00 hours has 450 segments of
      8 s at 1000 W = 3 600 000 J = 1 kWh.
    """
    t = H - 3 * 3600
    with aggregator_online(mosquitto.url, database_url, tmp_path / "agg.log") as observer:
        publish_all(observer, "replay", [(s, t + 8 * (s - 10), 50.0) for s in [*range(10, 20), *range(30, 40)]])
        publish_all(observer, "reset", [(s, t + 8 * (s - 5000), 50.0) for s in range(5000, 5010)])
        dst = datetime(2026, 10, 25, 0, 0, tzinfo=UTC).timestamp()
        publish_all(observer, "dst", [(i + 1, dst + 8 * i, 1000.0) for i in range(901)])
        wait_processed(database_url, "replay", 20)
        wait_processed(database_url, "reset", 10)
        publish_all(observer, "replay", [(s, t + 8 * (s - 10), 50.0) for s in range(20, 30)])
        publish_all(observer, "reset", [(s, t + 80 + 8 * s, 50.0) for s in range(10)])
        wait_processed(database_url, "reset", 20)
        publish_all(observer, "reset", [(10, t + 160 - 3600, 50.0)])
        for sensor, count in (("replay", 30), ("reset", 21), ("dst", 901)):
            wait_processed(database_url, sensor, count)
    (caught,) = api.get("/api/v2/quarantine").json()["readings"]
    assert (caught["sensor_key"], caught["seq"]) == ("reset", 10)
    assert "before seq 9 " in caught["reason"]
    assert count_rows(database_url) == 30 + 20 + 901
    dst_id = next(s["id"] for s in api.get("/api/v2/sensors").json() if s["key"] == "dst")
    local = api.get(
        "/api/v2/energy", params={"sensor": dst_id, "start": "2026-10-25", "bucket": "hour", "count": 25}
    ).json()["buckets"]
    assert [(b["start"], b["kwh"]) for b in local[2:4]] == [
        ("2026-10-25T02:00:00+02:00", joules(3_600_000)),
        ("2026-10-25T02:00:00+01:00", joules(3_600_000)),
    ]


def test_a_future_reading_stored_before_the_rules_is_no_mark(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path
) -> None:
    """A database from before these rules may hold a reading stamped ahead (seq 9, two hours from
    now) after a right one (seq 5, a minute ago). Taken as the sensor's newest, it would keep every
    reading of the next two hours aside; the aggregator's lookup ignores what is beyond its limit,
    so seq 10, stamped now, is judged against seq 5 and stored."""
    now = time.time()
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        points = [(5, now - 60, 100.0), (9, now + 7200, 100.0)]
        readings = [Reading(sensor="old", kind="simulator", ts=ts, power=p, seq=seq) for seq, ts, p in points]
        store_readings(conn, readings, load_household(conn), ZoneInfo("Europe/Paris"))
    with aggregator_online(mosquitto.url, database_url, tmp_path / "agg.log") as observer:
        publish_all(observer, "old", [(10, now, 100.0)])
        wait_processed(database_url, "old", 3)
    assert count_rows(database_url) == 3 and count_rows(database_url, QUARANTINED) == 0
