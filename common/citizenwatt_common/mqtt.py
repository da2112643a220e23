"""A paho-mqtt client configured from the shared settings, identically for every service."""

from __future__ import annotations

import ssl
from typing import Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class MqttOptions(Protocol):
    """What a client needs of a service's settings: settings.MqttSettings (pydantic, aggregator and api)
    or envsettings.MqttEnvSettings (the collectors) alike."""

    @property
    def mqtt_url(self) -> str: ...
    @property
    def mqtt_username(self) -> str | None: ...
    @property
    def base_topic(self) -> str: ...
    @property
    def mqtt_host(self) -> str: ...
    @property
    def mqtt_port(self) -> int: ...
    @property
    def mqtt_tls(self) -> bool: ...
    def mqtt_secret(self) -> str | None: ...


RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 60


def make_client(settings: MqttOptions, client_id: str, *, manual_ack: bool = False) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5,
        manual_ack=manual_ack,
    )
    if settings.mqtt_username:
        client.username_pw_set(settings.mqtt_username, settings.mqtt_secret())
    if settings.mqtt_tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    # paho retries the connection itself, doubling the wait from 1 s up to 60 s.
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client


def run_in_background(client: paho.Client, settings: MqttOptions) -> None:
    """Connect when the broker is there (paho retries by itself), on paho's own network thread."""
    client.connect_async(settings.mqtt_host, settings.mqtt_port)
    client.loop_start()


def stop_in_background(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


def session_properties(expiry_seconds: int) -> Properties:
    """CONNECT properties asking the broker to keep our session (subscriptions, queued messages)."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = expiry_seconds
    return props
