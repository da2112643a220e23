"""The shipped broker security: no anonymous access, one account per service, ACLs that hold."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.services import MqttObserver, ServiceProcess, count_rows, wait_until
from tools.localstack import REPO, LocalMosquitto

# Its subject is not storage: one backend is enough (the suite runs storage tests on both).
pytestmark = pytest.mark.backends("plain")

ACCOUNTS = ("_aggregator", "_api", "_homeassistant", "meter1", "meter2")


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[LocalMosquitto, Path]]:
    folder = tmp_path / "mq"
    secrets = folder / "secrets"
    subprocess.run(
        ["sh", str(REPO / "mosquitto" / "init-accounts.sh"), str(secrets), *ACCOUNTS], check=True, capture_output=True
    )
    # Mosquitto reads the ACL after dropping root for its own user, which may not enter the
    # checkout (a clone in a private folder): it gets a copy in the folder it owns.
    acl = folder / "acl"
    shutil.copyfile(REPO / "mosquitto" / "acl", acl)
    broker = LocalMosquitto(
        folder,
        extra_config=f"allow_anonymous false\npassword_file {secrets / 'mosquitto.passwd'}\nacl_file {acl}",
    )
    broker.start()
    yield broker, secrets
    broker.stop()


def secret(secrets: Path, account: str) -> str:
    return (secrets / f"{account}.password").read_text().strip()


def connect_result(port: int, username: str | None, password: str | None) -> int:
    outcome: list[int] = []
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{username}", protocol=paho.MQTTv5)
    if username:
        client.username_pw_set(username, password)

    def on_connect(c: paho.Client, u: object, f: object, reason: ReasonCode, p: object) -> None:
        outcome.append(reason.value)
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(10)
    client.disconnect()
    client.loop_stop()
    return outcome[0]


def test_secrets_are_generated_once_and_differ(secured: tuple[LocalMosquitto, Path]) -> None:
    _, secrets = secured
    values = {account: secret(secrets, account) for account in ACCOUNTS}
    assert len(set(values.values())) == len(ACCOUNTS) and all(len(v) >= 20 for v in values.values())
    subprocess.run(
        ["sh", str(REPO / "mosquitto" / "init-accounts.sh"), str(secrets), *ACCOUNTS], check=True, capture_output=True
    )
    assert {account: secret(secrets, account) for account in ACCOUNTS} == values


def test_anonymous_and_wrong_passwords_are_refused(secured: tuple[LocalMosquitto, Path]) -> None:
    broker, secrets = secured
    assert connect_result(broker.port, None, None) == 135  # MQTT v5 "Not authorized"
    assert connect_result(broker.port, "meter1", "guess") == 135  # Mosquitto 2.0 answers the same for both
    assert connect_result(broker.port, "meter1", secret(secrets, "meter1")) == 0


def test_a_collector_can_publish_only_its_own_sensor(secured: tuple[LocalMosquitto, Path]) -> None:
    broker, secrets = secured
    home = MqttObserver(broker.url, "citizenwatt/#", "ha", "_homeassistant", secret(secrets, "_homeassistant"))
    meter = MqttObserver(broker.url, "citizenwatt/meter1/set", "meter1", "meter1", secret(secrets, "meter1"))
    now = time.time()
    forged = {"v": 1, "sensor": "meter2", "kind": "simulator", "ts": now, "power": 1.0}
    meter.publish("citizenwatt/meter2/reading", json.dumps(forged))
    meter.publish("citizenwatt/meter1/state", "{}")
    meter.publish("citizenwatt/meter1/alert", '{"v":1,"sensor":"meter1","active":[]}')  # only the aggregator's
    meter.publish("citizenwatt/meter1/alert/event", "{}")
    own = {"v": 1, "sensor": "meter1", "kind": "simulator", "ts": now, "power": 2.0}
    meter.publish("citizenwatt/meter1/reading", json.dumps(own))
    # Messages from one publisher arrive in order: once the last one is seen, the others were dropped.
    home.wait_for(lambda ms: any(t == "citizenwatt/meter1/reading" for t, _, _ in ms))
    assert [t for t, _, _ in home.messages] == ["citizenwatt/meter1/reading"]
    # Home Assistant may switch a relay but not forge a reading.
    home.publish("citizenwatt/meter1/reading", json.dumps({**own, "ts": now + 1}))
    home.publish("citizenwatt/meter1/set", "ON")
    meter.wait_for(lambda ms: ("citizenwatt/meter1/set", b"ON", False) in ms)
    assert [t for t, _, _ in home.messages if t.endswith("/reading")] == ["citizenwatt/meter1/reading"]
    home.close()
    meter.close()


def test_the_api_reads_readings_for_the_live_page_and_cannot_forge_one(secured: tuple[LocalMosquitto, Path]) -> None:
    """CW_API_LIVE_FROM_BROKER: the api's account subscribes to every reading; a reading it
    publishes is dropped by the broker (Home Assistant, reading all, never sees it)."""
    broker, secrets = secured
    home = MqttObserver(broker.url, "citizenwatt/+/reading", "ha", "_homeassistant", secret(secrets, "_homeassistant"))
    api = MqttObserver(broker.url, "citizenwatt/+/reading", "api", "_api", secret(secrets, "_api"))
    meter1 = MqttObserver(broker.url, "citizenwatt/meter1/committed", "meter1", "meter1", secret(secrets, "meter1"))
    # Each publish waits for the broker's PUBACK: a forged reading would reach home first.
    api.publish("citizenwatt/meter2/reading", b'{"forged": true}')
    meter1.publish("citizenwatt/meter1/reading", b"{}")
    api.wait_for(lambda ms: len(ms) >= 1)
    home.wait_for(lambda ms: len(ms) >= 1)
    assert [t for t, _, _ in api.messages] == ["citizenwatt/meter1/reading"]
    assert [t for t, _, _ in home.messages] == ["citizenwatt/meter1/reading"]
    for client in (home, api, meter1):
        client.close()


def test_radio_settings_reach_only_the_collector_they_are_for(secured: tuple[LocalMosquitto, Path]) -> None:
    """The api's config messages carry an AES key: only the named collector may read them."""
    broker, secrets = secured
    home = MqttObserver(broker.url, "citizenwatt/#", "ha", "_homeassistant", secret(secrets, "_homeassistant"))
    meter1 = MqttObserver(broker.url, "citizenwatt/+/config", "meter1", "meter1", secret(secrets, "meter1"))
    meter2 = MqttObserver(broker.url, "citizenwatt/+/config", "meter2", "meter2", secret(secrets, "meter2"))
    api = MqttObserver(broker.url, "citizenwatt/_api/none", "api", "_api", secret(secrets, "_api"))
    # Each publish waits for the broker's PUBACK, so every subscriber gets them in this order.
    api.publish("citizenwatt/meter1/config", b'{"v":1,"aes_key":"k1","address":1}', retain=True)
    api.publish("citizenwatt/meter2/config", b'{"v":1,"aes_key":"k2","address":2}', retain=True)
    meter2.publish("citizenwatt/meter2/reading", b"{}")
    meter1.wait_for(lambda ms: len(ms) >= 1)
    meter2.wait_for(lambda ms: len(ms) >= 1)
    home.wait_for(lambda ms: any(t.endswith("/reading") for t, _, _ in ms))
    assert [t for t, _, _ in meter1.messages] == ["citizenwatt/meter1/config"]
    assert [t for t, _, _ in meter2.messages] == ["citizenwatt/meter2/config"]
    assert [t for t, _, _ in home.messages] == ["citizenwatt/meter2/reading"]
    # A collector cannot plant a configuration, not even its own.
    meter1.publish("citizenwatt/meter1/config", b'{"v":1,"aes_key":"forged","address":3}', retain=True)
    late = MqttObserver(broker.url, "citizenwatt/meter1/config", "meter1-again", "meter1", secret(secrets, "meter1"))
    late.wait_for(lambda ms: len(ms) >= 1)
    assert late.messages[0][1] == b'{"v":1,"aes_key":"k1","address":1}'
    for client in (home, meter1, meter2, api, late):
        client.close()


def test_services_work_end_to_end_with_their_accounts(
    secured: tuple[LocalMosquitto, Path], database_url: str, tmp_path: Path
) -> None:
    broker, secrets = secured
    common = {"CW_MQTT_URL": broker.url, "CW_DATABASE_URL": database_url, "CW_HEALTH_PORT": "0"}
    aggregator_env = {
        **common,
        "CW_MQTT_USERNAME": "_aggregator",
        "CW_MQTT_PASSWORD_FILE": str(secrets / "_aggregator.password"),
        # Alerts checked often, a collector silent after 1 s: its alert must reach Home Assistant.
        "CW_ALERT_INTERVAL_SECONDS": "0.2",
        "CW_ALERT_SILENT_MIN_SECONDS": "1",
        "CW_ALERT_SILENT_FACTOR": "3",
    }
    collector_env = {
        **common,
        "CW_MQTT_USERNAME": "meter1",
        "CW_SENSOR_ID": "meter1",
        "CW_PERIOD_SECONDS": "0.1",
        "CW_MQTT_PASSWORD_FILE": str(secrets / "meter1.password"),
    }
    home = MqttObserver(broker.url, "citizenwatt/#", "ha", "_homeassistant", secret(secrets, "_homeassistant"))
    aggregator = ServiceProcess("citizenwatt_aggregator", aggregator_env, tmp_path / "agg.log").start()
    home.wait_for(lambda ms: ("citizenwatt/_services/aggregator/status", b"online") in [(t, p) for t, p, _ in ms])
    simulator = ServiceProcess("citizenwatt_simulator", collector_env, tmp_path / "sim.log").start()
    try:
        wait_until(lambda: count_rows(database_url) >= 20, message="readings stored")
        home.wait_for(lambda ms: any(t == "citizenwatt/meter1/state" for t, _, _ in ms))
        assert simulator.stop() == 0
        # The aggregator's account may publish alerts (the broker drops what the ACL refuses).
        home.wait_for(lambda ms: any(t == "citizenwatt/meter1/alert/event" for t, _, _ in ms))
        states = [json.loads(p) for t, p, _ in home.messages if t == "citizenwatt/meter1/alert"]
        assert [a["kind"] for a in states[-1]["active"]] == ["silent"]
    finally:
        aggregator.stop()
        home.close()
    log = (tmp_path / "sim.log").read_text()
    assert "not authorized" not in log.lower()


def test_tempo_colours_are_written_by_the_api_and_read_by_the_aggregator(secured: tuple[LocalMosquitto, Path]) -> None:
    """The day's Tempo colour prices a whole day: the api (a colour set in the page) and Home
    Assistant (whose RTE Tempo integration knows tomorrow's) may announce it; the aggregator (which
    stores it) reads it; a collector may not forge one."""
    broker, secrets = secured
    topic = "citizenwatt/_household/tempo/+"
    aggregator = MqttObserver(broker.url, topic, "aggregator", "_aggregator", secret(secrets, "_aggregator"))
    home = MqttObserver(broker.url, topic, "ha", "_homeassistant", secret(secrets, "_homeassistant"))
    meter = MqttObserver(broker.url, "citizenwatt/meter1/set", "meter1", "meter1", secret(secrets, "meter1"))
    api = MqttObserver(broker.url, "citizenwatt/_api/none", "api", "_api", secret(secrets, "_api"))
    meter.publish("citizenwatt/_household/tempo/2026-01-08", b"red", retain=True)
    home.publish("citizenwatt/_household/tempo/2026-01-09", b"blue", retain=True)
    # Each publish waits for the broker's PUBACK: once the api's is seen, the others were handled.
    api.publish("citizenwatt/_household/tempo/2026-01-08", b"white", retain=True)
    for observer in (aggregator, home):
        observer.wait_for(lambda ms: len(ms) >= 2)
        assert [(t, p) for t, p, _ in observer.messages] == [
            ("citizenwatt/_household/tempo/2026-01-09", b"blue"),
            ("citizenwatt/_household/tempo/2026-01-08", b"white"),
        ]
    for client in (aggregator, home, meter, api):
        client.close()


def test_home_assistants_birth_message_reaches_the_aggregator(secured: tuple[LocalMosquitto, Path]) -> None:
    """Home Assistant announces itself on homeassistant/status (its birth message and last will) and
    the aggregator answers with discovery: Home Assistant's account may publish there, the
    aggregator's may read it; a collector may do neither, and Home Assistant may not plant a
    discovery config (only the aggregator writes them)."""
    broker, secrets = secured
    aggregator = MqttObserver(
        broker.url, "homeassistant/status", "aggregator", "_aggregator", secret(secrets, "_aggregator")
    )
    home = MqttObserver(broker.url, "homeassistant/#", "ha", "_homeassistant", secret(secrets, "_homeassistant"))
    meter = MqttObserver(broker.url, "homeassistant/status", "meter1", "meter1", secret(secrets, "meter1"))
    meter.publish("homeassistant/status", "offline")
    home.publish("homeassistant/sensor/citizenwatt_meter1/power/config", "{}", retain=True)
    # Each publish waits for the broker's PUBACK: once Home Assistant's own is seen, the others were handled.
    home.publish("homeassistant/status", "online")
    aggregator.wait_for(lambda ms: len(ms) >= 1)
    home.wait_for(lambda ms: ("homeassistant/status", b"online", False) in ms)
    assert [(t, p) for t, p, _ in aggregator.messages] == [("homeassistant/status", b"online")]
    assert meter.messages == []  # the collector's subscription was refused
    assert [t for t, _, _ in home.messages] == ["homeassistant/status"]
    for client in (aggregator, home, meter):
        client.close()
