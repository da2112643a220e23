"""Publishes a collector's readings with QoS 1, in order, surviving broker outages.

Readings wait in a bounded buffer while the broker is unreachable and go out, oldest first, when
it comes back; when the buffer is full the oldest reading is dropped and counted. One thread
(the pump) owns the buffer and the in-flight set; paho's callbacks only post events to it,
because paho calls ``on_publish`` while holding its own lock and calling back into ``publish``
from there would deadlock.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from ..contract import STATUS_OFFLINE, STATUS_ONLINE, Reading, Topics
from ..mqtt import make_client
from ..settings import MqttSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublisherStats:
    buffered: int
    inflight: int
    acknowledged: int
    dropped: int
    connected: bool


class ReadingPublisher:
    def __init__(
        self,
        settings: MqttSettings,
        sensor_id: str,
        *,
        buffer_size: int = 100_000,
        inflight_window: int = 100,
        client_id: str | None = None,
    ) -> None:
        self.sensor_id = sensor_id
        self.topics = Topics(settings.base_topic)
        self._settings = settings
        self._buffer_size = buffer_size
        self._window = inflight_window
        self._client = make_client(settings, client_id or f"citizenwatt-{sensor_id}")
        self._client.will_set(self.topics.status(sensor_id), STATUS_OFFLINE, qos=1, retain=True)
        self._client.max_inflight_messages_set(inflight_window)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        # Owned by the pump thread only:
        self._buffer: deque[Reading] = deque()
        self._inflight: set[int] = set()
        self._connected = False
        self._device_online = True
        self._acknowledged = 0
        self._dropped = 0
        self._stats = PublisherStats(0, 0, 0, 0, False)
        self._stats_changed = threading.Condition()
        self._pump = threading.Thread(target=self._run_pump, name=f"publisher-{sensor_id}", daemon=True)
        self._stopped = threading.Event()

    # -- public API, any thread ------------------------------------------------------------------
    @property
    def client(self) -> paho.Client:
        """For collectors that also subscribe (the AWOX plug's ``set`` topic)."""
        return self._client

    def start(self) -> None:
        self._pump.start()
        self._client.connect_async(self._settings.mqtt_host, self._settings.mqtt_port, keepalive=30)
        self._client.loop_start()

    def submit(self, reading: Reading) -> None:
        self._events.put(("reading", reading))

    def set_device_online(self, online: bool) -> None:
        """Status is ``online`` only while both the broker and the device are reachable."""
        self._events.put(("device", online))

    def publish_extra(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        """Events and relay states: best effort, not buffered."""
        self._client.publish(topic, payload, qos=1, retain=retain)

    def stats(self) -> PublisherStats:
        with self._stats_changed:
            return self._stats

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        """Block until ``predicate(stats)`` holds (tests and shutdown use it); False on timeout."""
        with self._stats_changed:
            return bool(self._stats_changed.wait_for(lambda: predicate(self._stats), timeout))

    def stop(self, drain_seconds: float = 5.0) -> None:
        """Try to deliver what is buffered, announce ``offline``, disconnect."""
        self._events.put(("stop", drain_seconds))
        self._stopped.wait(drain_seconds + 5)
        self._client.loop_stop()

    # -- paho callbacks (paho's thread): only post events -------------------------------------
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused connection for %s: %s", self.sensor_id, reason)
            return
        self._events.put(("connected", None))

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self._events.put(("disconnected", reason))

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        self._events.put(("acked", mid))

    # -- the pump ----------------------------------------------------------------------------------
    def _run_pump(self) -> None:
        drain_deadline: float | None = None
        while True:
            timeout = None if drain_deadline is None else max(0.0, drain_deadline - time.monotonic())
            try:
                kind, value = self._events.get(timeout=timeout)
            except queue.Empty:
                kind, value = "tick", None
            if kind == "reading":
                self._enqueue(value)
            elif kind == "acked":
                if value in self._inflight:
                    self._inflight.discard(value)
                    self._acknowledged += 1
            elif kind == "connected":
                self._connected = True
                log.info("%s connected to broker %s", self.sensor_id, self._settings.mqtt_url)
                self._announce()
            elif kind == "disconnected":
                if self._connected:
                    log.warning("%s lost the broker (%s); buffering readings", self.sensor_id, value)
                self._connected = False
            elif kind == "device":
                if value != self._device_online:
                    self._device_online = bool(value)
                    self._announce()
            elif kind == "stop" and drain_deadline is None:
                drain_deadline = time.monotonic() + float(value)
            self._fill_window()
            self._publish_stats()
            if drain_deadline is not None and (
                (not self._buffer and not self._inflight) or time.monotonic() >= drain_deadline
            ):
                self._finish()
                return

    def _enqueue(self, reading: Reading) -> None:
        if len(self._buffer) >= self._buffer_size:
            self._buffer.popleft()
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning(
                    "%s buffer full (%d readings): dropped %d oldest so far",
                    self.sensor_id,
                    self._buffer_size,
                    self._dropped,
                )
        self._buffer.append(reading)

    def _fill_window(self) -> None:
        topic = self.topics.reading(self.sensor_id)
        while self._connected and self._buffer and len(self._inflight) < self._window:
            info = self._client.publish(topic, self._buffer[0].to_payload(), qos=1)
            if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
                break  # paho refused it (queue full): keep it here and retry on the next event
            # Accepted: from now on paho owns the message and resends it after any reconnect,
            # even when the connection dropped just before this call (MQTT_ERR_NO_CONN).
            self._buffer.popleft()
            self._inflight.add(info.mid)
            if info.rc == paho.MQTT_ERR_NO_CONN:
                self._connected = False

    def _announce(self) -> None:
        if self._connected:
            status = STATUS_ONLINE if self._device_online else STATUS_OFFLINE
            self._client.publish(self.topics.status(self.sensor_id), status, qos=1, retain=True)

    def _publish_stats(self) -> None:
        stats = PublisherStats(
            buffered=len(self._buffer),
            inflight=len(self._inflight),
            acknowledged=self._acknowledged,
            dropped=self._dropped,
            connected=self._connected,
        )
        with self._stats_changed:
            self._stats = stats
            self._stats_changed.notify_all()

    def _finish(self) -> None:
        if self._buffer or self._inflight:
            log.warning(
                "%s stopping with %d readings undelivered", self.sensor_id, len(self._buffer) + len(self._inflight)
            )
        if self._connected:
            info = self._client.publish(self.topics.status(self.sensor_id), STATUS_OFFLINE, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._stopped.set()
