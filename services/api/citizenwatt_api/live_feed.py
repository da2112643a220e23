"""Readings for the live page straight from the broker (``CW_API_LIVE_FROM_BROKER``).

The live hub (live_hub.py) polls the database once a second, so a page sees a reading once the
aggregator has committed it. With the aggregator's journal (CW_JOURNAL_PATH) commits are up to
CW_COMMIT_SECONDS apart, and the live page would move in jumps that long: with this feed, the
hub also hands out each reading as its collector publishes it, validated as the aggregator
validates it. The database's copy of the same reading follows with the next poll; the page
keeps one reading per instant, so the two are one point. To make them the same instant, a
broker reading's time is rounded to the microsecond exactly as PostgreSQL stores it.

Readings of a sensor the database does not know yet (its first ones, before the aggregator's
first commit) wait, a bounded number of them, until it does: the page names sensors by id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho

from citizenwatt_common.clock_check import DEFAULT_MAX_FUTURE_SECONDS
from citizenwatt_common.contract import Reading, Topics, parse_reading
from citizenwatt_common.mqtt import make_client, run_in_background, stop_in_background
from citizenwatt_common.settings import MqttSettings
from citizenwatt_common.store import Household

log = logging.getLogger(__name__)

_POSTGRES_EPOCH = 946_684_800  # 2000-01-01 in Unix time: PostgreSQL counts microseconds from it


def stored_instant(ts: float) -> float:
    """``ts`` as ``extract(epoch FROM to_timestamp(ts))::float8`` gives it back: PostgreSQL
    rounds (rint) to whole microseconds since its own epoch."""
    micros = round((ts - _POSTGRES_EPOCH) * 1_000_000)
    return (micros + _POSTGRES_EPOCH * 1_000_000) / 1_000_000


class BrokerFeed:
    """A subscriber to every reading topic, handing each valid reading to ``deliver`` on the
    event loop (paho calls back on its own thread)."""

    def __init__(
        self,
        settings: MqttSettings,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[Reading], None],
    ) -> None:
        self._settings = settings
        self._topics = Topics(settings.base_topic)
        self._loop = loop
        self._deliver = deliver
        # Its own client id: the radio settings' publisher is another connection of the api.
        self.client = make_client(settings, client_id="citizenwatt-api-live")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.subscribed = False  # for /healthz: readings come from the broker now

    def start(self) -> None:
        run_in_background(self.client, self._settings)

    def stop(self) -> None:
        stop_in_background(self.client)

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        # QoS 0, no session: what is published while the api is away is the database's to show.
        client.subscribe(self._topics.all_readings, qos=0)

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int, codes: object, props: object) -> None:
        self.subscribed = True

    def _on_disconnect(self, client: paho.Client, userdata: object, *reason: object) -> None:
        self.subscribed = False

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        reading = parse_reading(self._topics.sensor_of(message.topic), bytes(message.payload))
        if not isinstance(reading, Reading):
            return  # the aggregator says why, in its log and rejected_messages
        if reading.ts > time.time() + DEFAULT_MAX_FUTURE_SECONDS:
            return  # the aggregator quarantines it: not shown as power now
        self._loop.call_soon_threadsafe(self._deliver, reading)


class SensorNames:
    """Sensor keys (MQTT) to ids (the page's), and each reading's tariff flag, from the database."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.ids: dict[str, int] = {}
        self.household: Household | None = None
        self.loaded_at = -float("inf")

    def night(self, ts: float) -> bool:
        return self.household is not None and self.household.night(ts, self.zone)
