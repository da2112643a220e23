"""Alerts on real Mosquitto and PostgreSQL: a silent sensor with the aggregator as a process, an
unusual hour and the standby baseline from rollups written by store.py, and the api's view."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
import psycopg
import pytest
from fastapi.testclient import TestClient

from citizenwatt_aggregator.alerting import AlertWatcher
from citizenwatt_aggregator.settings import AggregatorSettings
from citizenwatt_api.app import create_app
from citizenwatt_api.settings import ApiSettings
from citizenwatt_common.contract import Reading, Topics
from citizenwatt_common.mqtt import make_client
from citizenwatt_common.store import load_household, store_readings
from tests.services import MqttObserver, count_rows, service, wait_until
from tests.test_aggregator import reading, wait_for_aggregator
from tests.test_api_legacy import ADMIN
from tools.localstack import LocalMosquitto

# The subject is the rules and their publication, not storage: one backend.
pytestmark = pytest.mark.backends("plain")

PARIS = ZoneInfo("Europe/Paris")


def messages_on(observer: MqttObserver, topic: str) -> list[dict[str, Any]]:
    return [json.loads(p) for t, p, _ in observer.messages if t == topic]


def events_of(observer: MqttObserver, sensor: str, event: str) -> list[dict[str, Any]]:
    return [m for m in messages_on(observer, f"citizenwatt/{sensor}/alert/event") if m["event"] == event]


def kinds(state: dict[str, Any]) -> list[str]:
    return [a["kind"] for a in state["active"]]


def test_a_sensor_that_stops_gets_a_retained_silent_alert_cleared_when_it_is_back(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path
) -> None:
    observer = MqttObserver(mosquitto.url, "#")
    env = {
        "CW_MQTT_URL": mosquitto.url,
        "CW_DATABASE_URL": database_url,
        "CW_HEALTH_PORT": "0",
        "CW_BATCH_DELAY_SECONDS": "0.1",
        "CW_ALERT_INTERVAL_SECONDS": "0.2",
        # Readings 1 s apart: silent after max(3 x 1 s, 2 s) = 3 s without one.
        "CW_ALERT_SILENT_FACTOR": "3",
        "CW_ALERT_SILENT_MIN_SECONDS": "2",
    }
    try:
        with service("citizenwatt_aggregator", env, tmp_path / "agg.log") as aggregator:
            wait_for_aggregator(observer)
            last = datetime.now().timestamp()
            for i in range(5, -1, -1):
                observer.publish("citizenwatt/fridge/reading", reading("fridge", last - i, 80.0))
            wait_until(lambda: count_rows(database_url) == 6, message="six readings stored")
            raised = observer.wait_for(lambda ms: events_of(observer, "fridge", "raised"))[0]
            assert (raised["kind"], raised["since"], raised["period_s"], raised["allowed_s"]) == (
                "silent",
                pytest.approx(last + 3, abs=0.001),
                1.0,
                3.0,
            )
            # Published before the event, by the same client: here already.
            state = next(s for s in messages_on(observer, "citizenwatt/fridge/alert") if s["active"])
            assert kinds(state) == ["silent"] and state["active"][0]["since"] == raised["since"]
            assert state["active"][0]["message"].endswith("(expected every 1 s)")
            # A newcomer (Home Assistant starting later) gets the alert retained.
            late = MqttObserver(mosquitto.url, "citizenwatt/fridge/alert", client_id="late")
            retained = late.wait_for(lambda ms: ms)[0]
            late.close()
            assert retained[2] is True and kinds(json.loads(retained[1])) == ["silent"]
            # The sensor speaks again: the alert ends, once.
            observer.publish("citizenwatt/fridge/reading", reading("fridge", datetime.now().timestamp(), 80.0))
            observer.wait_for(lambda ms: events_of(observer, "fridge", "cleared"))
            observer.wait_for(lambda ms: kinds(messages_on(observer, "citizenwatt/fridge/alert")[-1]) == [])
            discovery = observer.wait_for(
                lambda ms: [p for t, p, _ in ms if t == "homeassistant/binary_sensor/citizenwatt_fridge/alert/config"]
            )
            assert aggregator.running
        events = [(m["event"], m["kind"]) for m in messages_on(observer, "citizenwatt/fridge/alert/event")]
        assert events == [("raised", "silent"), ("cleared", "silent")]
        config = json.loads(discovery[0])
        assert (config["device_class"], config["state_topic"], config["availability_topic"]) == (
            "problem",
            "citizenwatt/fridge/alert",
            "citizenwatt/_services/aggregator/status",
        )
        with psycopg.connect(database_url) as conn:
            rows = conn.execute("SELECT kind, cleared_at IS NOT NULL FROM alerts").fetchall()
        assert rows == [("silent", True)]
    finally:
        observer.close()


def store_at(conn: psycopg.Connection[Any], sensor: str, start: datetime, hours: float, watts: float) -> None:
    """One reading a minute from ``start`` for ``hours``, both ends included: the whole span measured."""
    first = start.timestamp()
    readings = [
        Reading(sensor=sensor, kind="simulator", ts=first + 60 * i, power=watts) for i in range(int(hours * 60) + 1)
    ]
    with conn.transaction():
        store_readings(conn, readings, load_household(conn), PARIS)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def connected_client(mosquitto: LocalMosquitto) -> Iterator[paho.Client]:
    settings = AggregatorSettings(mqtt_url=mosquitto.url)
    client = make_client(settings, "alerts-test")
    client.connect(settings.mqtt_host, settings.mqtt_port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def test_an_unusual_hour_and_the_standby_baseline_from_stored_rollups(
    mosquitto: LocalMosquitto, database_url: str, connected_client: paho.Client
) -> None:
    # Wednesday 14 October 2026, 14:20 in Paris: the hour just ended is 13:00-14:00.
    now = datetime(2026, 10, 14, 14, 20, tzinfo=PARIS)
    with psycopg.connect(database_url, autocommit=True) as conn:
        # 13:00-14:00 on the three Wednesdays before: 100 W, so 100 Wh each; usual = 100 Wh.
        for day in (7, 30, 23):
            month = 10 if day == 7 else 9
            store_at(conn, "oven", datetime(2026, month, day, 13, tzinfo=PARIS), 1, 100.0)
        # Four weeks before, only half the hour measured (at 5 kW): not a usual hour, left out.
        store_at(conn, "oven", datetime(2026, 9, 16, 13, tzinfo=PARIS), 0.5, 5000.0)
        # The hour just ended: 1000 W, 1000 Wh, above max(2 x 100, 100 + 500) = 600 Wh.
        store_at(conn, "oven", now.replace(hour=13, minute=0), 1, 1000.0)
        # Standby, two nights 01:00-05:00: 80 W, then 120 W; the median of the lows is 100 W.
        store_at(conn, "oven", datetime(2026, 10, 13, 1, tzinfo=PARIS), 4, 80.0)
        store_at(conn, "oven", datetime(2026, 10, 14, 1, tzinfo=PARIS), 4, 120.0)
    settings = AggregatorSettings(
        mqtt_url=mosquitto.url,
        database_url=database_url,
        timezone="Europe/Paris",
        alert_standby_nights=2,
        alert_standby_watts=90.0,
        alert_silent_forget_days=0,
    )
    observer = MqttObserver(mosquitto.url, "citizenwatt/oven/#")
    clock = Clock(now)
    watcher = AlertWatcher(settings, connected_client, Topics(), lambda: 1, clock)
    try:
        (report,) = watcher.check()
        assert report.key == "oven"
        # The oven is also silent since its last reading at 14:00 (10 x 1 min allowed, then forgotten: never).
        assert sorted(a.kind for a in report.active) == ["silent", "standby", "unusual"]
        state = observer.wait_for(lambda ms: messages_on(observer, "citizenwatt/oven/alert"))[-1]
        unusual = next(a for a in state["active"] if a["kind"] == "unusual")
        assert (unusual["wh"], unusual["usual_wh"], unusual["threshold_wh"], unusual["weeks"]) == (
            pytest.approx(1000.0),
            pytest.approx(100.0),
            pytest.approx(600.0),
            3,
        )
        assert unusual["hour_start"] == now.replace(hour=13, minute=0).timestamp()
        assert unusual["message"] == (
            "1.00 kWh between 13:00 and 14:00, usually 0.10 kWh on a Wednesday at this hour (alert above 0.60 kWh)"
        )
        # 100 W x 8760 h / 1000 = 876 kWh at 0.1940 EUR/kWh: a fresh install's tariff is Base, whose
        # version in force on 2026-10-14 (from 2026-02-01) has one price all day.
        assert (state["standby_w"], state["standby_nights"], state["standby_euros_per_year"]) == (100.0, 2, 169.94)
        observer.wait_for(lambda ms: len(messages_on(observer, "citizenwatt/oven/alert/event")) == 3)
        # The api shows the same, with the cost at the price in force.
        api = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
        with TestClient(create_app(api)) as client:
            client.post("/install", data=ADMIN)
            body = client.get("/api/v2/alerts").json()
        (oven,) = body["sensors"]
        assert body["euros_per_kwh"] == pytest.approx(0.1940)
        assert (oven["key"], oven["standby_w"], oven["standby_euros_per_year"]) == (
            "oven",
            pytest.approx(100.0),
            pytest.approx(169.944),
        )
        assert sorted(a["kind"] for a in oven["active"]) == ["silent", "standby", "unusual"]
        assert oven["checked_at"] == now.timestamp()
        # A minute later nothing changed: the check writes nothing (the baseline is worked out hourly).
        clock.now += 60
        watcher.check()
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT extract(epoch FROM checked_at)::float8 FROM sensor_checks").fetchone()
        assert row == (now.timestamp(),)
        # Two hours later: 15:00-16:00 and 16:00-16:21 hold nothing, the oven's hours are usual again.
        clock.now += 2 * 3600
        (report,) = watcher.check()
        assert sorted(a.kind for a in report.active) == ["silent", "standby"]
        observer.wait_for(
            lambda ms: (
                ("cleared", "unusual")
                in [(m["event"], m["kind"]) for m in messages_on(observer, "citizenwatt/oven/alert/event")]
            )
        )
        # The alerts still open keep the time they began: the silence at 14:00 plus the 600 s
        # allowed (readings a minute apart: max(10 x 60 s, 300 s)), the standby at the first check.
        since = {a.kind: a.since for a in report.active}
        assert since == {"silent": now.replace(minute=0).timestamp() + 600, "standby": now.timestamp()}
    finally:
        watcher.stop()
        observer.close()


def test_the_alerts_route_needs_a_login(database_url: str) -> None:
    api = ApiSettings(database_url=database_url, ui_dir="/nonexistent", api_publish_radio_config=False)
    with TestClient(create_app(api)) as client:
        assert client.get("/api/v2/alerts").status_code == 401


def test_a_failing_check_is_retried_and_the_watcher_goes_on(
    mosquitto: LocalMosquitto, database_url: str, connected_client: paho.Client
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        store_at(conn, "hall", datetime(2026, 10, 14, 13, tzinfo=PARIS), 0.1, 50.0)
    calls = 0

    def clock() -> float:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("a fault in the first check")
        return datetime(2026, 10, 14, 14, 20, tzinfo=PARIS).timestamp()

    settings = AggregatorSettings(mqtt_url=mosquitto.url, database_url=database_url, alert_interval_seconds=0.05)
    observer = MqttObserver(mosquitto.url, "citizenwatt/hall/alert")
    watcher = AlertWatcher(settings, connected_client, Topics(), lambda: 1, clock)
    watcher.start()
    try:
        # Silent since 13:06 + 600 s (readings a minute apart: max(10 x 60 s, 300 s) = 600 s).
        state = json.loads(observer.wait_for(lambda ms: ms)[0][1])
        assert kinds(state) == ["silent"]
        assert calls >= 2
    finally:
        watcher.stop()
        observer.close()
