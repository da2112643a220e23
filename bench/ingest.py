"""How fast the aggregator stores a backlog, against a bare paho-mqtt subscriber on the same broker.

Both drain the same kind of queue: ``CW_BENCH_INGEST_READINGS`` (default 20 000) QoS 1 readings
of 4 sensors, published while the consumer was away and kept for it by the broker in its
persistent session (MQTT v5, as the aggregator's). The bare subscriber only receives and
acknowledges (paho's automatic PUBACK). The aggregator validates each reading, stores it with its
energy rollups in a durable PostgreSQL (fsync on), commits, and only then acknowledges and
confirms to the collectors: it is done when the confirmations cover every reading.
Each rate is readings / (last one done - first one delivered). The whole comparison runs on plain
PostgreSQL, then on TimescaleDB (readings in a hypertable, as in the Pi's containers).

Each round also drains a second backlog into the aggregator as shipped, with its journal
(CW_JOURNAL_PATH): there a full batch (CW_BATCH_SIZE) is committed, then acknowledged, as without
a journal, and a smaller one acknowledged once appended to the journal and synced, committed up to
a minute later; its rate counts the confirmations too. The bare subscriber drains that backlog as
well: each ratio compares rates measured on the same backlog.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tools.localstack import REPO, LocalMosquitto, LocalPostgres

SENSORS = 4


def _client(client_id: str, port: int) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    return client


def _session() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    return props


class BareSubscriber:
    """A persistent QoS 1 session that counts what it receives and does nothing else."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.expected = 0
        self.done = threading.Event()
        self.subscribed = threading.Event()
        self.client = _client("bench-bare", port)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not flags.session_present:
            client.subscribe("citizenwatt/+/reading", qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        if self.first_at is None:
            self.first_at = now
        self.received += 1
        if self.received >= self.expected > 0:
            self.last_at = now
            self.done.set()

    def connect(self) -> None:
        self.client.connect("127.0.0.1", self.port, clean_start=False, properties=_session())
        self.client.loop_start()

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish_backlog(port: int, count: int, round_number: int) -> None:
    client = _client("bench-publisher", port)
    client.connect("127.0.0.1", port)
    client.loop_start()
    # Each round's readings are new ones, of sensors of its own: a repeat would skip the rollups,
    # and readings older than their sensor's newest would be kept aside as a clock gone back
    # (schema migration 8), a path of its own: measured so, rounds after the first took half as long.
    start = time.time() - (count // SENSORS + 1) * 8.0
    last = None
    for i in range(count):
        sensor = _sensor(round_number, i % SENSORS)
        payload = {
            "v": 1,
            "sensor": sensor,
            "kind": "simulator",
            "ts": round(start + (i // SENSORS) * 8.0 + (i % SENSORS) * 0.5, 3),
            "seq": round_number * count + i // SENSORS + 1,
            "power": 100.0 + (i * 37) % 900,
            "voltage": 230.0,
            "current": round((100.0 + (i * 37) % 900) / 230.0, 3),
        }
        last = client.publish(f"citizenwatt/{sensor}/reading", json.dumps(payload), qos=1)
    assert last is not None
    last.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def _sensor(round_number: int, index: int) -> str:
    return f"ingest{round_number}-{index}"


class Confirmations:
    """Watches the aggregator's status and its commit confirmations."""

    def __init__(self, port: int, count: int, round_number: int = 0) -> None:
        self.wanted = {
            _sensor(round_number, s): count // SENSORS + (1 if s < count % SENSORS else 0) for s in range(SENSORS)
        }
        self.confirmed = dict.fromkeys(self.wanted, 0)
        self.online_at: float | None = None
        self.done_at: float | None = None
        self.online = threading.Event()
        self.done = threading.Event()
        self.ready = threading.Event()
        self.client = _client("bench-confirmations", port)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(
            [("citizenwatt/+/committed", 1), ("citizenwatt/_services/aggregator/status", 1)]
        )
        self.client.on_subscribe = lambda *args: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise TimeoutError("could not subscribe to the confirmations")

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        if message.topic.endswith("/status"):
            if message.payload == b"online" and not message.retain:
                self.online_at = now
                self.online.set()
            return
        sensor = message.topic.split("/")[1]
        if sensor in self.confirmed:
            self.confirmed[sensor] += sum(high - low + 1 for low, high in json.loads(message.payload)["seqs"])
            if all(self.confirmed[s] >= n for s, n in self.wanted.items()) and self.done_at is None:
                self.done_at = now
                self.done.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run() -> None:
    """Print the bare subscriber's and the aggregator's drain rates and their ratio: on plain
    PostgreSQL, then on TimescaleDB (a hypertable, as the Pi's stack stores readings) when its
    tree can be built."""
    from bench.__main__ import _timescaledb_tree

    _run_on("PostgreSQL", {})
    tree, why = _timescaledb_tree()
    if tree is None:
        print(f"ingest: TimescaleDB unavailable ({why}): plain PostgreSQL only")
    else:
        _run_on("TimescaleDB", {"bin_dir": tree, "timescaledb": True})


def _run_on(backend: str, server: dict[str, Any]) -> None:
    count = int(os.environ.get("CW_BENCH_INGEST_READINGS", "20000"))
    # The machine may be busy with something else for a moment: several rounds, alternating the
    # two consumers, and the best of each is compared.
    rounds = int(os.environ.get("CW_BENCH_INGEST_ROUNDS", "3"))
    bare_rates: list[float] = []
    stored_rates: list[float] = []
    journal_bare_rates: list[float] = []
    journal_rates: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cw-ingest-") as folder:
        root = Path(folder)
        postgres = LocalPostgres(root / "pg", **server)  # durable: fsync on, as on a Pi
        broker = LocalMosquitto(root / "mq")
        postgres.start()
        broker.start()
        env = {**os.environ, "CW_DATABASE_URL": postgres.url, "CW_MQTT_URL": broker.url, "CW_HEALTH_PORT": "0"}
        env.pop("CW_JOURNAL_PATH", None)

        def aggregator(journal: bool = False) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "citizenwatt_aggregator"],
                env={**env, "CW_JOURNAL_PATH": str(root / "journal")} if journal else env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        try:
            # Both sessions exist before a backlog is published, so the broker queues it for both.
            bare = BareSubscriber(broker.port)
            bare.connect()
            if not bare.subscribed.wait(10):
                raise TimeoutError("the bare subscriber could not subscribe")
            bare.disconnect()
            confirmations = Confirmations(broker.port, count)
            first = aggregator()
            if not confirmations.online.wait(60):
                raise TimeoutError("the aggregator did not come online")
            first.terminate()
            first.wait(30)
            confirmations.close()

            for round_number in range(rounds):
                for journal, bares, drained in (
                    (False, bare_rates, stored_rates),
                    (True, journal_bare_rates, journal_rates),
                ):
                    backlog = 2 * round_number + journal  # sensors of its own (see _publish_backlog)
                    _publish_backlog(broker.port, count, backlog)

                    bare = BareSubscriber(broker.port)
                    bare.expected = count
                    bare.connect()
                    if not bare.done.wait(600):
                        raise TimeoutError(f"the bare subscriber received {bare.received} of {count}")
                    bare.disconnect()
                    assert bare.first_at is not None and bare.last_at is not None
                    bares.append(count / (bare.last_at - bare.first_at))

                    confirmations = Confirmations(broker.port, count, backlog)
                    second = aggregator(journal)
                    try:
                        if not confirmations.done.wait(900):
                            raise TimeoutError(f"the aggregator confirmed {confirmations.confirmed} of {count}")
                    finally:
                        second.terminate()  # with a journal: commits what it holds, then exits
                        second.wait(60)
                        confirmations.close()
                    assert confirmations.online_at is not None and confirmations.done_at is not None
                    drained.append(count / (confirmations.done_at - confirmations.online_at))
        finally:
            broker.stop()
            postgres.stop()
    rates = ", ".join(f"{b:,.0f}/{a:,.0f}" for b, a in zip(bare_rates, stored_rates, strict=True))
    print(
        f"ingest, {backend}: {count} queued QoS 1 readings of {SENSORS} sensors, one broker, best of {rounds} rounds"
        f" (bare/aggregator each round: {rates}): bare paho subscriber {max(bare_rates):,.0f} readings/s"
        f" received and acknowledged; aggregator {max(stored_rates):,.0f} readings/s validated, committed"
        f" (fsync on) with rollups, then acknowledged; ratio {max(stored_rates) / max(bare_rates):.2f}"
    )
    rates = ", ".join(f"{b:,.0f}/{a:,.0f}" for b, a in zip(journal_bare_rates, journal_rates, strict=True))
    print(
        f"ingest, {backend}, the aggregator with its journal (as shipped), the same way (bare/aggregator each"
        f" round: {rates}): bare {max(journal_bare_rates):,.0f} readings/s; aggregator"
        f" {max(journal_rates):,.0f} readings/s validated, committed (fsync on) with rollups, then"
        f" acknowledged, a full batch at a time (a smaller one journaled and synced); ratio"
        f" {max(journal_rates) / max(journal_bare_rates):.2f}"
    )


if __name__ == "__main__":
    run()
