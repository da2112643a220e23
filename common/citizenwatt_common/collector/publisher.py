"""Publishes a collector's readings with QoS 1, in order, surviving broker outages.

Every reading goes into the outbox (see outbox.py) and is sent, oldest first, whenever the broker
is reachable; it leaves the outbox only when the aggregator confirms it is stored. The pump also
wakes up when the outbox has a reading due for an fsync (unconfirmed for 9 s). When the
outbox is full the oldest reading is dropped and counted. One thread (the pump) owns the outbox,
the send queue and the in-flight set; paho's callbacks only post events to it, because paho
calls ``on_publish`` while holding its own lock and calling back into ``publish`` from there
would deadlock.

Readings measured while the kernel says the wall clock is not synchronised come with ``hold``:
they go into the outbox as held readings (held.py), not into the send queue. The pump asks the
kernel once a second while it holds some; once synchronised it re-stamps them and sends them,
oldest first; ``clock_wait_seconds`` after boot it gives up and sends them as measured, marked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from ..contract import STATUS_OFFLINE, STATUS_ONLINE, Reading, Topics
from ..mqtt import MqttOptions, make_client
from .clock import Clock, Stamp
from .held import Held, is_held
from .outbox import Outbox

log = logging.getLogger(__name__)

_TICK_SECONDS = 5.0
_REPLAY_CHECK_SECONDS = 30.0
# A reading acknowledged by the broker but not confirmed stored this long after, while the
# aggregator is online, was lost on the way (a broker crash): send it again.
_UNCONFIRMED_SECONDS = 60.0
# While readings are held for the clock, the kernel is asked this often whether it is synchronised.
_CLOCK_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class PublisherStats:
    buffered: int  # waiting to be sent
    inflight: int  # sent, broker acknowledgement pending
    acknowledged: int  # acknowledged by the broker (this run)
    dropped: int  # removed unsent because the outbox was full
    connected: bool
    outbox: int = 0  # kept until the aggregator confirms them
    confirmed: int = 0  # confirmed stored by the aggregator (this run)
    held: int = 0  # in the outbox, waiting for the clock to be synchronised


class ReadingPublisher:
    def __init__(
        self,
        settings: MqttOptions,
        sensor_id: str,
        *,
        buffer_size: int = 100_000,
        inflight_window: int = 100,
        client_id: str | None = None,
        outbox_path: str | None = None,
        clock: Clock | None = None,
        clock_wait_seconds: float = 600.0,
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
        self._client.message_callback_add(self.topics.committed(sensor_id), self._on_committed)
        self._client.message_callback_add(self.topics.service_status("aggregator"), self._on_aggregator_status)
        self._extra_subscriptions: list[str] = []
        self._outbox_path = outbox_path
        self._clock = clock or Clock()
        self._clock_wait = clock_wait_seconds
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        # Owned by the pump thread only:
        self._outbox: Outbox | None = None
        self._buffer: deque[tuple[int, bytes]] = deque()  # (seq, payload) not yet handed to paho
        self._inflight: dict[int, int] = {}  # paho mid -> seq
        self._kept: set[int] = set()  # seqs in the outbox, mirrored in memory
        self._held: dict[int, Held] = {}  # seq -> a reading waiting for the clock (also in the outbox)
        self._acked_at: dict[int, float] = {}  # seq -> when the broker acknowledged it, until confirmed
        self._aggregator_online = False
        self._last_replay_check = time.monotonic()
        self._connected = False
        # Unknown until the collector has its device: "online" must mean readings can come (a test
        # or a dashboard seeing it may act at once, e.g. write to a serial port that is not open yet).
        self._device_online = False
        self._acknowledged = 0
        self._confirmed = 0
        self._dropped = 0
        self._stats = PublisherStats(0, 0, 0, 0, False)
        self._stats_changed = threading.Condition()
        self._pump = threading.Thread(target=self._run_pump, name=f"publisher-{sensor_id}", daemon=True)
        self._stopped = threading.Event()

    # -- public API, any thread ------------------------------------------------------------------
    @property
    def client(self) -> paho.Client:
        return self._client

    def subscribe(self, topic: str, on_message: Callable[[bytes], None]) -> None:
        """Also receive ``topic`` (QoS 1), now and after every reconnection, e.g. the AWOX ``set``.

        ``on_message`` runs on paho's thread: it must only hand the payload over.
        """
        self._client.message_callback_add(topic, lambda client, userdata, message: on_message(bytes(message.payload)))
        self._extra_subscriptions.append(topic)
        self._client.subscribe(topic, qos=1)  # refused while disconnected: then on_connect does it

    def start(self) -> None:
        self._pump.start()
        self._client.connect_async(self._settings.mqtt_host, self._settings.mqtt_port, keepalive=30)
        self._client.loop_start()

    def submit(self, reading: Reading) -> None:
        if reading.seq is None:
            raise ValueError("a published reading needs a seq: the outbox is keyed by it")
        self._events.put(("reading", (reading.seq, reading.to_payload())))

    def hold(self, reading: Reading, stamp: Stamp) -> None:
        """Keep a reading measured while the clock was not synchronised until it is (see above)."""
        if reading.seq is None:
            raise ValueError("a held reading needs a seq: the outbox is keyed by it")
        fields = json.loads(reading.to_payload())
        held = Held(boot=self._clock.boot_id, at=stamp.since_boot, wall=stamp.wall, fields=fields)
        self._events.put(("held", (reading.seq, held)))

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
        own = [self.topics.committed(self.sensor_id), self.topics.service_status("aggregator")]
        client.subscribe([(topic, 1) for topic in own + self._extra_subscriptions])
        self._events.put(("connected", None))

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self._events.put(("disconnected", reason))

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        self._events.put(("acked", mid))

    def _on_committed(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            ranges = [(int(low), int(high)) for low, high in json.loads(message.payload)["seqs"]]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed commit confirmation on %s", message.topic)
            return
        self._events.put(("committed", ranges))

    def _on_aggregator_status(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._events.put(("aggregator", message.payload == STATUS_ONLINE.encode()))

    # -- the pump ----------------------------------------------------------------------------------
    def _run_pump(self) -> None:
        self._outbox = Outbox(self._outbox_path, self._buffer_size)
        for kept_seq, payload in self._outbox.all_in_order():
            held = Held.from_payload(payload) if is_held(payload) else None
            if held is not None:
                self._held[kept_seq] = held
            else:
                self._buffer.append((kept_seq, payload))
        self._kept = {kept_seq for kept_seq, _ in self._outbox.all_in_order()}
        if self._kept:
            log.info("%s: %d readings from a previous run wait in the outbox", self.sensor_id, len(self._kept))
        self._release_other_boots()
        drain_deadline: float | None = None
        while True:
            timeout = _TICK_SECONDS if drain_deadline is None else max(0.0, drain_deadline - time.monotonic())
            if self._held:
                timeout = min(timeout, _CLOCK_POLL_SECONDS)
            sync_at = self._outbox.sync_deadline()
            if sync_at is not None:
                # Wake up when the outbox must sync, not up to a tick later: that keeps the power-cut window.
                timeout = max(0.0, min(timeout, sync_at - time.monotonic()))
            try:
                kind, value = self._events.get(timeout=timeout)
            except queue.Empty:
                kind, value = "tick", None
            if kind == "reading":
                self._enqueue(*value)
            elif kind == "held":
                self._enqueue(value[0], value[1].payload(), held=value[1])
            elif kind == "committed":
                self._confirm(value)
            elif kind == "acked":
                seq = self._inflight.pop(value, None)
                if seq is not None:
                    self._acknowledged += 1
                    if seq in self._kept:
                        self._acked_at[seq] = time.monotonic()
            elif kind == "aggregator":
                self._aggregator_online = bool(value)
                if value:
                    # It (re)connected: maybe after a broker crash that lost what it had not fetched yet.
                    self._replay_unconfirmed(older_than=0.0)

            elif kind == "connected":
                self._connected = True
                log.info("%s connected to broker %s", self.sensor_id, self._settings.mqtt_url)
                self._announce()
                # Send again everything not yet confirmed stored, oldest first: a broker that was
                # killed may have forgotten readings it had acknowledged.
                self._buffer = deque((s, p) for s, p in self._outbox.all_in_order() if s not in self._held)
                self._inflight.clear()
                self._acked_at.clear()
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
            now = time.monotonic()
            if self._aggregator_online and now - self._last_replay_check >= _REPLAY_CHECK_SECONDS:
                self._last_replay_check = now
                self._replay_unconfirmed(older_than=_UNCONFIRMED_SECONDS)
            self._check_clock()
            self._outbox.sync_if_due()
            self._fill_window()
            self._publish_stats()
            if drain_deadline is not None and (
                (not self._buffer and not self._inflight) or time.monotonic() >= drain_deadline
            ):
                self._finish()
                return

    def _enqueue(self, seq: int, payload: bytes, held: Held | None = None) -> None:
        assert self._outbox is not None
        dropped = self._outbox.add(seq, payload)
        if held is None:
            self._buffer.append((seq, payload))
        else:
            if not self._held:
                log.warning(
                    "%s: the kernel says the clock is not synchronised: holding readings until it is"
                    " (at most until %.0f s after boot, CW_CLOCK_WAIT_SECONDS)",
                    self.sensor_id,
                    self._clock_wait,
                )
            self._held[seq] = held
        self._kept.add(seq)
        if dropped:
            oldest_kept = self._outbox.oldest_seq() or seq
            self._kept = {s for s in self._kept if s >= oldest_kept}
            self._held = {s: h for s, h in self._held.items() if s >= oldest_kept}
            while self._buffer and self._buffer[0][0] < oldest_kept:
                self._buffer.popleft()
            before = self._dropped
            self._dropped += dropped
            if before == 0 or before // 1000 != self._dropped // 1000:
                log.warning(
                    "%s outbox full (%d readings): dropped %d oldest so far",
                    self.sensor_id,
                    self._buffer_size,
                    self._dropped,
                )

    # -- readings held for the clock -----------------------------------------------------------------
    def _same_boot(self, held: Held) -> bool:
        # The clock since boot restarts at a reboot: a stamp ahead of it is from another boot too.
        return held.boot == self._clock.boot_id and held.at <= self._clock.since_boot()

    def _release_other_boots(self) -> None:
        """Held readings a previous boot left cannot be re-stamped: sent as measured, marked."""
        other = {seq: held.as_measured() for seq, held in self._held.items() if not self._same_boot(held)}
        if other:
            log.warning("%s: %d held readings from a previous boot sent marked unsynced", self.sensor_id, len(other))
            self._release(other)

    def _check_clock(self) -> None:
        if not self._held:
            return
        if self._clock.synchronised():
            # Asked before reading the clocks: the wall time read now is right.
            wall, since_boot = self._clock.wall(), self._clock.since_boot()
            released = {
                seq: held.restamped(wall, since_boot) if self._same_boot(held) else held.as_measured()
                for seq, held in self._held.items()
            }
            newest = next(reversed(self._held.values()))
            log.info(
                "%s: the clock is synchronised: %d held readings sent, re-stamped (the clock was %+.1f s off)",
                self.sensor_id,
                len(released),
                newest.wall - (wall - (since_boot - newest.at)),
            )
            self._release(released)
        elif self._clock.since_boot() >= self._clock_wait:
            log.warning(
                "%s: the clock is still not synchronised %.0f s after boot: %d held readings and the next ones"
                " sent with the clock as it is, marked clock=unsynced; is NTP reachable?",
                self.sensor_id,
                self._clock_wait,
                len(self._held),
            )
            self._release({seq: held.as_measured() for seq, held in self._held.items()})

    def _release(self, payloads: dict[int, bytes]) -> None:
        """Replace held records by what will be sent, durably first: a restart must never send a
        reading again with another ts (it would be a second row)."""
        assert self._outbox is not None
        for seq, payload in payloads.items():
            self._outbox.add(seq, payload)
            self._held.pop(seq, None)
        self._outbox.sync_now()
        self._buffer = deque(sorted([*self._buffer, *payloads.items()]))

    def _confirm(self, ranges: list[tuple[int, int]]) -> None:
        assert self._outbox is not None
        self._confirmed += self._outbox.confirm(ranges)

        def confirmed(seq: int) -> bool:
            return any(low <= seq <= high for low, high in ranges)

        self._kept = {s for s in self._kept if not confirmed(s)}
        for seq in [s for s in self._acked_at if confirmed(s)]:
            del self._acked_at[seq]

    def _replay_unconfirmed(self, older_than: float) -> None:
        """Send again readings the broker acknowledged long ago but the aggregator never confirmed."""
        assert self._outbox is not None
        now = time.monotonic()
        due = {seq for seq, at in self._acked_at.items() if now - at >= older_than}
        if not due:
            return
        for seq in due:
            del self._acked_at[seq]
        log.info("%s: sending %d unconfirmed readings again", self.sensor_id, len(due))
        again = [(seq, payload) for seq, payload in self._outbox.all_in_order() if seq in due]
        self._buffer = deque(sorted([*again, *self._buffer]))

    def _fill_window(self) -> None:
        topic = self.topics.reading(self.sensor_id)
        while self._connected and self._buffer and len(self._inflight) < self._window:
            if self._buffer[0][0] not in self._kept:
                self._buffer.popleft()  # confirmed stored while it waited here
                continue
            info = self._client.publish(topic, self._buffer[0][1], qos=1)
            if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
                break  # paho refused it (queue full): keep it here and retry on the next event
            # Accepted: from now on paho owns the message and resends it after any reconnect,
            # even when the connection dropped just before this call (MQTT_ERR_NO_CONN).
            seq, _ = self._buffer.popleft()
            self._inflight[info.mid] = seq
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
            outbox=len(self._kept),
            confirmed=self._confirmed,
            held=len(self._held),
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
        if self._outbox is not None:
            self._outbox.close()
        self._stopped.set()
