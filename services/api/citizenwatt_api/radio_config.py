"""Hands the nRF24 settings saved in the web page to the collectors, as retained MQTT messages.

The database is the record; the broker is only the way there. So on every (re)connection the
api publishes every saved configuration again: a broker that lost its retained messages, or a
save made while it was down, heals by itself.
"""

from __future__ import annotations

import logging
import threading
from datetime import date
from typing import Any

import paho.mqtt.client as paho
import psycopg_pool

from citizenwatt_common.contract import Nrf24Config, Topics
from citizenwatt_common.mqtt import make_client, run_in_background, stop_in_background
from citizenwatt_common.settings import MqttSettings
from citizenwatt_common.tariff_store import tempo_topic

log = logging.getLogger(__name__)
PUBLISH_WAIT_S = 5.0


def recent_tempo_days(pool: psycopg_pool.ConnectionPool[Any]) -> list[tuple[date, str]]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT day, colour FROM tempo_days WHERE day >= current_date - 1 ORDER BY day").fetchall()
    return [(r[0], str(r[1])) for r in rows]


def saved_configs(pool: psycopg_pool.ConnectionPool[Any]) -> list[tuple[str, Nrf24Config]]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT sensor_key, aes_key, address FROM radio_configs ORDER BY sensor_key").fetchall()
    return [(str(r[0]), Nrf24Config(aes_key=str(r[1]), address=int(r[2]))) for r in rows]


class RadioConfigPublisher:
    def __init__(self, settings: MqttSettings, pool: psycopg_pool.ConnectionPool[Any]) -> None:
        self.topics = Topics(settings.base_topic)
        self._settings = settings
        self._pool = pool
        self._connected = threading.Event()
        self.client = make_client(settings, client_id="citizenwatt-api")
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def start(self) -> None:
        run_in_background(self.client, self._settings)

    def stop(self) -> None:
        stop_in_background(self.client)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason: Any, props: object) -> None:
        if reason.is_failure:
            log.warning("broker refused the api: %s", reason)
            return
        self._connected.set()
        try:
            for sensor_key, config in saved_configs(self._pool):
                self._send(sensor_key, config)
            # Tempo colours from yesterday on, the ones a broker that lost them may still be asked for.
            for day, colour in recent_tempo_days(self._pool):
                client.publish(tempo_topic(self.topics.base, day), colour.encode(), qos=1, retain=True)
        except Exception:
            log.exception("could not publish the saved radio settings and Tempo colours again")

    def _on_disconnect(self, *args: object) -> None:
        self._connected.clear()

    def _send(self, sensor_key: str, config: Nrf24Config) -> paho.MQTTMessageInfo:
        return self.client.publish(self.topics.config(sensor_key), config.to_payload(), qos=1, retain=True)

    def publish(self, sensor_key: str, config: Nrf24Config) -> bool:
        """True once the broker has acknowledged it; False if it is down (sent on reconnection)."""
        if not self.connected:
            return False
        return self._delivered(self._send(sensor_key, config))

    def publish_retained(self, topic: str, payload: bytes) -> bool:
        """Any other retained household message (a Tempo day's colour); same answer as ``publish``."""
        if not self.connected:
            return False
        return self._delivered(self.client.publish(topic, payload, qos=1, retain=True))

    @staticmethod
    def _delivered(info: paho.MQTTMessageInfo) -> bool:
        try:
            info.wait_for_publish(PUBLISH_WAIT_S)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()
