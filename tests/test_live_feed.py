"""The live page's readings from the broker (CW_API_LIVE_FROM_BROKER, live_feed.py): handed out as
published, before any aggregator commits them, named and flagged as the database would."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from citizenwatt_api.live_feed import stored_instant
from tests.api_load import RunningApi, running_api
from tests.services import MqttObserver, count_rows, wait_until
from tests.test_aggregator import reading
from tests.test_api_legacy import ADMIN, store
from tests.test_api_many_viewers import LiveStream
from tools.localstack import LocalMosquitto

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.backends("plain")
def test_a_broker_reading_gets_the_instant_postgresql_would_store(db: psycopg.Connection[Any]) -> None:
    """PostgreSQL itself is the reference: extract(epoch FROM to_timestamp(x)) for times with more
    digits than a microsecond, times near a half microsecond, and 300 drawn at random."""
    draw = random.Random(11)
    values = [1795683295.9304821, 1700000000.0000005, 1700000000.0000015, 1795683295.123456789, 1e9 + 2.5e-6]
    values += [draw.uniform(1.5e9, 1.9e9) for _ in range(300)]
    for value in values:
        row = db.execute("SELECT extract(epoch FROM to_timestamp(%s::float8))::float8", (value,)).fetchone()
        assert row is not None
        assert stored_instant(value) == row[0], value


def _events(stream: LiveStream) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in bytes(stream.received).split(b"\n") if line.startswith(b"data: {")]


def _health(api: RunningApi) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{api.base}/healthz", timeout=5) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body


@pytest.mark.backends("plain")
def test_the_live_page_gets_broker_readings_that_no_aggregator_stored(
    database_url: str, mosquitto: LocalMosquitto, tmp_path: Path
) -> None:
    """No aggregator runs: a stream still gets each reading published for a sensor the database
    knows, with its id, its time as PostgreSQL would store it, and the night window's flag
    (22:00-06:00 here: 23:30 is night, 12:00 day); a malformed payload and a reading of a sensor
    the database does not know give nothing. A stream opened later starts with the readings of
    the last minutes from the broker."""
    store(database_url, "porch", [(time.time() - 80_000, 5.0)])
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE household SET night_start_minute = 1320, night_end_minute = 360")
        row = conn.execute("SELECT id FROM sensors WHERE key = 'porch'").fetchone()
    assert row is not None
    porch = int(row[0])
    yesterday = datetime.now(PARIS).date() - timedelta(days=1)
    night_ts = datetime(yesterday.year, yesterday.month, yesterday.day, 23, 30, 0, 123457, tzinfo=PARIS).timestamp()
    day_ts = datetime(yesterday.year, yesterday.month, yesterday.day, 12, 0, 0, 987654, tzinfo=PARIS).timestamp()
    env = {"CW_MQTT_URL": mosquitto.url, "CW_API_LIVE_FROM_BROKER": "true"}
    publisher = MqttObserver(mosquitto.url, "nothing/to/read", client_id="porch-collector")

    async def scenario(api: RunningApi) -> None:
        first = await LiveStream.open(api)
        await first.wait_for(b"retry: 2000\n\n")
        publisher.publish("citizenwatt/porch/reading", reading("porch", night_ts + 1e-7, 61.5), qos=0)
        publisher.publish("citizenwatt/porch/reading", b'{"v": 1, "power": "lots"}', qos=0)
        publisher.publish("citizenwatt/shed/reading", reading("shed", day_ts, 7.0), qos=0)
        publisher.publish("citizenwatt/porch/reading", reading("porch", day_ts, 420.25), qos=0)
        await first.wait_for(b'"power": 420.25')
        events = [e for e in _events(first) if e["power"] != 5.0]  # the database's newest comes first
        assert events == [
            {"sensor": porch, "ts": stored_instant(night_ts + 1e-7), "power": 61.5, "rate": "night"},
            {"sensor": porch, "ts": stored_instant(day_ts), "power": 420.25, "rate": "day"},
        ]
        later = await LiveStream.open(api)
        await later.wait_for(b'"power": 420.25')
        assert [e["power"] for e in _events(later)] == [5.0, 61.5, 420.25]
        await first.close()
        await later.close()

    try:
        with running_api(database_url, tmp_path / "api.log", ADMIN, env) as api:
            wait_until(lambda: _health(api)["live_broker"] == "subscribed", message="the api's feed subscribed")
            asyncio.run(scenario(api))
            log = api.server.log()
    finally:
        publisher.close()
    assert count_rows(database_url) == 1  # nothing stored those readings
    assert "Traceback" not in log
