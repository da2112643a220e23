"""The aggregator's run loop: receive, batch, commit, then acknowledge.

A message is acknowledged to the broker only after the transaction holding it committed
(paho's manual acknowledgement), and the broker keeps our session between runs, so a crash at
any moment loses nothing: whatever was not acknowledged comes back and the (sensor, ts) key
turns the redelivery into a no-op. The transactions are made by the writer process (writer.py).

With a journal (CW_JOURNAL_PATH, journal.py), a batch is appended to it and synced before it is
acknowledged, and the journaled messages are committed CW_COMMIT_SECONDS later (or once a batch
is full): a crash then loses nothing either, as the next run stores what the journal holds
before it takes any new message.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from citizenwatt_common.backoff import Backoff
from citizenwatt_common.contract import STATUS_OFFLINE, STATUS_ONLINE, Reading, Topics, parse_reading
from citizenwatt_common.mqtt import make_client
from citizenwatt_common.store import Household
from citizenwatt_common.tariff_store import tempo_topic_filter

from .alerting import AlertWatcher
from .batch import BatchOutcome, Incoming, seq_of_payload, seq_ranges
from .discovery import Announcer, DiscoveryContext
from .journal import Journal
from .settings import AggregatorSettings
from .state import publish_states, with_energy, with_reading
from .writer import Reply, Writer, WriterGone, Written

log = logging.getLogger(__name__)
# Days end once a day; this only bounds how long after its end (plus store.CLOSE_DAYS_AFTER_SECONDS)
# a day is closed, and costs one small query when nothing is due.
CLOSE_DAYS_EVERY_SECONDS = 600.0
# With a journal: how many batches' worth of journaled messages may wait for PostgreSQL (while it
# is down) before no more are taken; the broker then keeps the rest, as without a journal.
PENDING_BATCHES = 10


@dataclass
class Counters:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    quarantined: int = 0  # readings with an impossible time, kept aside (clock_check.py)
    batches: int = 0
    db_errors: int = 0


class Aggregator:
    def __init__(self, settings: AggregatorSettings) -> None:
        self.settings = settings
        # First: the writer process is forked, and nothing else may have started a thread yet.
        self._writer = Writer(settings)
        self.topics = Topics(settings.base_topic)
        self.counters = Counters()
        self.stop_event = threading.Event()
        self.db_ok = False
        self.mqtt_connected = False
        self.last_commit_at: float | None = None
        # Bounded whatever the broker does: the receive maximum below (two batches) only binds a
        # broker that honours it, and QoS 0 messages are outside it. When the inbox is full, paho's
        # thread waits in _on_message, stops reading the socket, and TCP pushes back on the
        # broker, which keeps the backlog (its queue limits are in mosquitto/).
        self._inbox: queue.Queue[Incoming] = queue.Queue(maxsize=2 * settings.batch_size)
        self.inbox_peak = 0
        self._generation = 0
        # Set on paho's thread (a new connection, Home Assistant's birth message), acted on by the
        # writer loop, which alone reads the database: announce every sensor's discovery again.
        self._rediscover = threading.Event()
        self._next_day_closing = 0.0  # time.monotonic() of the next close_days
        self._client = make_client(settings, settings.client_id, manual_ack=True)
        self._client.will_set(self.topics.service_status("aggregator"), STATUS_OFFLINE, qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._discovery = DiscoveryContext(
            self.topics,
            settings.ha_discovery_prefix,
            settings.ha_support_url,
            alerts=settings.alert_interval_seconds > 0,
        )
        self._announcer = Announcer(self._client, self._discovery)
        self._journal = Journal(Path(settings.journal_path)) if settings.journal_path else None
        self._pending: list[Incoming] = []  # journaled and acknowledged, not committed yet
        self._pending_since = 0.0  # time.monotonic() the oldest of them was journaled
        self._commit_backoff = Backoff(0.5, 30.0)
        self._next_commit_try = 0.0  # time.monotonic() of the next try while the database is down
        # With a journal, each sensor's state topic follows its readings as they are journaled, not
        # a minute late with the commits: the last payload published (energy figures from the last
        # commit), and the household (for the night flag), read at start and after each commit.
        self._states: dict[str, dict[str, Any]] = {}
        self._household: Household | None = None

    # -- MQTT (paho's thread) -----------------------------------------------------------------
    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.session_expiry_seconds
        # How many unacknowledged messages the broker may hand us: enough for two full batches.
        props.ReceiveMaximum = min(65_535, 2 * self.settings.batch_size)
        return props

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the aggregator: %s", reason)
            return
        self._generation += 1
        self.mqtt_connected = True
        log.info("connected to %s (session present: %s)", self.settings.mqtt_url, flags.session_present)
        client.subscribe(self.topics.all_readings, qos=1)
        # Tempo day colours, retained: the broker hands over every announced day at each subscription.
        client.subscribe(tempo_topic_filter(self.topics.base), qos=1)
        client.publish(self.topics.service_status("aggregator"), STATUS_ONLINE, qos=1, retain=True)
        if self.settings.ha_discovery:
            # QoS 0, as Home Assistant sends it: nothing to acknowledge, nothing queued while away.
            client.subscribe(self._discovery.ha_status_topic, qos=0)
            # A broker that crashed or lost power forgot retained messages newer than its last
            # snapshot (taken hourly): every sensor's discovery goes out again.
            self._rediscover.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self.mqtt_connected = False
        if not self.stop_event.is_set():
            log.warning("lost the broker (%s); unacknowledged messages will be redelivered", reason)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic == self._discovery.ha_status_topic:
            # Home Assistant (re)started: it may have lost its entities, or the broker the
            # retained configs. Nothing to store; acknowledged at once should it come with QoS 1.
            if bytes(message.payload).strip() == STATUS_ONLINE.encode():
                self._rediscover.set()
            if message.qos > 0:
                client.ack(message.mid, message.qos)
            return
        incoming = Incoming(message.topic, bytes(message.payload), message.mid, message.qos, self._generation)
        while not self.stop_event.is_set():
            try:
                self._inbox.put(incoming, timeout=0.5)
            except queue.Full:
                continue
            self.inbox_peak = max(self.inbox_peak, self._inbox.qsize())
            return

    # -- the writer loop (main thread) ---------------------------------------------------------
    def _next_batch(self) -> list[Incoming]:
        try:
            first = self._inbox.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_delay_seconds
        while len(batch) < self.settings.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._inbox.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _commit_with_retry(self, batch: list[Incoming]) -> Written | None:
        """Keep trying until the batch commits (the database may be down for a while)."""
        backoff = Backoff(0.5, 30.0)
        while True:
            reply = self._writer.write(batch)
            if reply.error is not None:
                self._outage(reply, f"holding {len(batch)} messages unacknowledged")
                if self.stop_event.wait(backoff.next_delay()):
                    return None
                continue
            if not self.db_ok:
                log.info("database available")
            self.db_ok = True
            written: Written = reply.value
            return written

    def _outage(self, reply: Reply, holding: str) -> None:
        """A batch that did not commit: an outage is counted and said once; anything else is a
        fault of ours, and stops the aggregator."""
        if not reply.outage:
            raise RuntimeError(f"could not store a batch: {reply.error}")
        self.counters.db_errors += 1
        if self.db_ok or self.counters.db_errors == 1:
            log.error("database unavailable, %s: %s", holding, reply.error)
        self.db_ok = False

    def _acknowledge(self, batch: list[Incoming]) -> None:
        # In arrival order, and only on the connection that delivered them: after a reconnect the
        # broker resends anything unacknowledged, and the unique key makes that harmless.
        for message in batch:
            if message.generation == self._generation and message.qos > 0:
                self._client.ack(message.mid, message.qos)

    def run(self) -> None:
        self._client.manual_ack_set(True)
        self._client.connect_async(
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            keepalive=30,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self._client.loop_start()
        # Alerts are checked in a thread of their own, on a connection of their own: never in
        # the way of a batch (alerting.py).
        alerts = AlertWatcher(self.settings, self._client, self.topics, lambda: self._generation)
        try:
            self._connection_or_wait()
            if self._journal is not None:
                if not self._store_journal_left():
                    return  # stopping while the database was down: the journal keeps it all
                self._read_live_context(with_states=True)
            alerts.start()
            while not self.stop_event.is_set():
                self._close_days_when_due()
                if self._rediscover.is_set():
                    self._rediscover.clear()
                    self._announce_everything()
                if self._journal is not None:
                    self._journal_step()
                    continue
                batch = self._next_batch()
                if not batch:
                    self._writer.check()
                    continue
                written = self._commit_with_retry(batch)
                if written is None:
                    break  # stopping while the database was down: nothing acknowledged, nothing lost
                outcome = written.outcome
                self._acknowledge(batch)
                self._confirm_to_collectors(outcome.kept_seqs)
                self._after_commit(written)
        finally:
            if self._journal is not None:
                try:
                    if self._pending and self.db_ok:
                        self._commit_pending()  # once: what it does not store, the journal keeps
                except (WriterGone, RuntimeError) as exc:
                    log.warning("%d journaled messages left for the next run: %s", len(self._pending), exc)
                finally:
                    self._journal.close()
            alerts.stop()
            self._client.publish(self.topics.service_status("aggregator"), STATUS_OFFLINE, qos=1, retain=True)
            self._client.disconnect()
            self._client.loop_stop()
            self._writer.stop()
            log.info("aggregator stopped: %s", asdict(self.counters))

    def _after_commit(self, written: Written) -> None:
        self._account(written.outcome)
        if self.settings.ha_discovery:
            self._announcer.learn(written.outcome.sensors.values())
        if written.states is None:
            return
        if self._journal is None:
            publish_states(self._client, self.topics, written.states)
            return
        for sensor, text in written.states:
            committed = json.loads(text)
            shown = self._states.get(sensor)
            state = self._states[sensor] = committed if shown is None else with_energy(shown, committed)
            self._client.publish(self.topics.state(sensor), json.dumps(state), qos=1, retain=True)

    def _read_live_context(self, with_states: bool) -> None:
        reply = self._writer.live_context(with_states)
        if reply.error is not None:
            log.warning("state topics wait for the next commit: %s", reply.error)
            return
        self._household, states = reply.value
        for sensor, text in states:
            self._states.setdefault(sensor, json.loads(text))

    def _publish_live_states(self, batch: list[Incoming]) -> None:
        """Each sensor's state with the newest reading of a journaled batch (a sensor whose state
        was never published waits for its first commit: the energy figures come from there)."""
        newest: dict[str, Reading] = {}
        for message in reversed(batch):
            sensor = self.topics.sensor_of(message.topic)
            if sensor is None or sensor in newest or sensor not in self._states:
                continue
            reading = parse_reading(sensor, message.payload)
            if isinstance(reading, Reading) and reading.ts <= time.time() + self.settings.max_future_seconds:
                newest[sensor] = reading
        for sensor, reading in newest.items():
            shown = self._states[sensor]
            if reading.ts <= shown["ts"]:
                continue
            night = self._household is not None and self._household.night(reading.ts, self.settings.zone)
            state = self._states[sensor] = with_reading(shown, reading, night)
            self._client.publish(self.topics.state(sensor), json.dumps(state), qos=1, retain=True)

    # -- with a journal ------------------------------------------------------------------------
    def _journal_step(self) -> None:
        """Take a batch into the journal (synced, then acknowledged and confirmed), and commit the
        journaled messages when the oldest has waited CW_COMMIT_SECONDS or a batch is full."""
        assert self._journal is not None
        if len(self._pending) < PENDING_BATCHES * self.settings.batch_size:
            batch = self._next_batch()
            if not batch:
                self._writer.check()
            elif len(batch) < self.settings.batch_size or not self._commit_full(batch):
                self._journal.append((message.topic, message.payload) for message in batch)
                self._journal.sync()
                self._acknowledge(batch)
                self._confirm_to_collectors(self._seqs_of(batch))
                self._publish_live_states(batch)
                if not self._pending:
                    self._pending_since = time.monotonic()
                self._pending.extend(batch)
        else:
            self.stop_event.wait(0.5)  # full: the broker keeps what comes until the database is back
        due = (
            len(self._pending) >= self.settings.batch_size
            or time.monotonic() - self._pending_since >= self.settings.commit_seconds
        )
        if self._pending and due and time.monotonic() >= self._next_commit_try:
            self._commit_pending()

    def _commit_full(self, batch: list[Incoming]) -> bool:
        """Commit a full batch before acknowledging it, as without a journal: its commit's WAL page
        is shared by CW_BATCH_SIZE readings already, and journaling it as well only added a write
        and a sync to each (a backlog drained at 0.77x a bare subscriber's rate, bench/ingest.py).
        False, nothing acknowledged, while the database cannot take it: it is journaled then."""
        if time.monotonic() < self._next_commit_try or (self._pending and not self._commit_pending()):
            return False
        reply = self._writer.write(batch)
        if reply.error is not None:
            self._outage(reply, "journaling what comes meanwhile")
            self._next_commit_try = time.monotonic() + self._commit_backoff.next_delay()
            return False
        self._database_back()
        self._acknowledge(batch)
        self._confirm_to_collectors(reply.value.outcome.kept_seqs)
        self._publish_live_states(batch)  # the newest readings; _after_commit adds the energy
        self._after_commit(reply.value)
        return True

    def _database_back(self) -> None:
        if not self.db_ok:
            log.info("database available")
        self.db_ok = True
        self._commit_backoff = Backoff(0.5, 30.0)

    def _commit_pending(self) -> bool:
        """Commit the journaled messages, a batch at a time; the journal is emptied once all are in."""
        assert self._journal is not None
        while self._pending:
            chunk = self._pending[: self.settings.batch_size]
            reply = self._writer.write(chunk)
            if reply.error is not None:
                self._outage(reply, f"keeping {len(self._pending)} messages in the journal")
                self._next_commit_try = time.monotonic() + self._commit_backoff.next_delay()
                return False
            self._database_back()
            del self._pending[: len(chunk)]
            self._after_commit(reply.value)
        self._journal.clear()
        self._read_live_context(with_states=False)  # a tariff changed in the page since, perhaps
        return True

    def _store_journal_left(self) -> bool:
        """Store what the last run journaled (perhaps committed already: then a no-op) before any
        new message; False if told to stop while the database is down."""
        assert self._journal is not None
        records = self._journal.read()
        if records:
            log.info("storing %d messages the last run journaled", len(records))
        left = [Incoming(topic, payload, 0, 0, -1) for topic, payload in records]  # nothing to acknowledge
        for first in range(0, len(left), self.settings.batch_size):
            written = self._commit_with_retry(left[first : first + self.settings.batch_size])
            if written is None:
                return False
            self._after_commit(written)
        self._journal.clear()
        return True

    def _seqs_of(self, batch: list[Incoming]) -> dict[str, list[int]]:
        """The seqs a journaled batch makes safe, per sensor: those of every reading message, as
        the commit keeps each (stored, a duplicate, or refused and kept as such)."""
        seqs: dict[str, list[int]] = {}
        for message in batch:
            sensor = self.topics.sensor_of(message.topic)
            seq = seq_of_payload(message.payload) if sensor is not None else None
            if sensor is not None and seq is not None:
                seqs.setdefault(sensor, []).append(seq)
        return seqs

    def _close_days_when_due(self) -> None:
        """Day rollups (store.close_days): at start, then every CLOSE_DAYS_EVERY_SECONDS. Between
        two batches, on the writer's connection: closing a day locks its sensor's row for a few
        ms, which a batch would wait for anyway."""
        if time.monotonic() < self._next_day_closing or not self.db_ok:
            return
        self._next_day_closing = time.monotonic() + CLOSE_DAYS_EVERY_SECONDS
        reply = self._writer.close_days(time.time(), self.settings.timezone)
        if reply.error is not None:
            log.warning("could not close the past days' energy rows (tried again later): %s", reply.error)
        elif reply.value:
            log.info("closed %d sensor-days of energy rows", reply.value)

    def _confirm_to_collectors(self, kept_seqs: dict[str, list[int]]) -> None:
        for sensor, seqs in kept_seqs.items():
            payload = json.dumps({"seqs": seq_ranges(seqs)})
            self._client.publish(self.topics.committed(sensor), payload, qos=1)

    def _announce_everything(self) -> None:
        """Every sensor's discovery: those seen this run and those in the database (a sensor
        silent now still has entities, its alert above all)."""
        reply = self._writer.stored_facts()
        if reply.error is not None:
            # Those seen this run still go out; the others with their next reading.
            log.warning("Home Assistant discovery from this run's sensors only: %s", reply.error)
        self._announcer.announce_all(reply.value or {})

    def _connection_or_wait(self) -> None:
        backoff = Backoff(0.5, 30.0)
        while not self.stop_event.is_set():
            reply = self._writer.connect()
            if reply.error is None:
                self.db_ok = True
                return
            log.error("cannot reach the database yet: %s", reply.error)
            self.stop_event.wait(backoff.next_delay())

    def _account(self, outcome: BatchOutcome) -> None:
        self.counters.batches += 1
        self.counters.stored += outcome.stored
        self.counters.duplicates += outcome.duplicates
        self.counters.rejected += outcome.rejected
        self.counters.quarantined += outcome.quarantined
        self.last_commit_at = time.time()

    def health(self) -> dict[str, Any]:
        healthy = self.db_ok and self.mqtt_connected
        return {
            "status": "ok" if healthy else "unhealthy",
            "database": "ok" if self.db_ok else "unavailable",
            "mqtt": "connected" if self.mqtt_connected else "disconnected",
            "last_commit_at": self.last_commit_at,
            "storage": self._writer.storage.as_json() if self._writer.storage else None,
            "writer_pid": self._writer.pid,
            "journal": None
            if self._journal is None
            else {"path": str(self._journal.path), "bytes": self._journal.size, "pending": len(self._pending)},
            "inbox": self._inbox.qsize(),
            "inbox_peak": self.inbox_peak,
            "inbox_limit": self._inbox.maxsize,
            **asdict(self.counters),
        }

    def health_json(self) -> bytes:
        return json.dumps(self.health()).encode()
