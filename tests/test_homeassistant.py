"""Home Assistant MQTT discovery, checked against Home Assistant's documented schema.

Everything runs for real: the shipped broker configuration with its accounts and ACL, the
aggregator as a process with its own account, and Home Assistant played by a client logged in with
Home Assistant's account (so it receives only what the ACL lets it read). Collectors are clients
on their own accounts, or the real AWOX collector with a fake Bluetooth link (the hardware
boundary) for the relay.

The rules below are written out from Home Assistant's documentation (URLs beside each), not taken
from the aggregator's code.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from citizenwatt_aggregator.discovery import SW_VERSION
from tests.services import MqttObserver, ServiceProcess
from tools.localstack import REPO, LocalMosquitto

pytestmark = pytest.mark.backends("plain")  # the subject is MQTT, not storage

Messages = list[tuple[str, bytes, bool]]
AGGREGATOR_STATUS = "citizenwatt/_services/aggregator/status"
HUB_CONFIG = "homeassistant/binary_sensor/citizenwatt/aggregator/config"
ACCOUNTS = ("_aggregator", "_homeassistant", "house", "plug", "node")

# --- Home Assistant's schema ------------------------------------------------------------------
# Options every MQTT entity accepts in a discovery payload, from the "Configuration Variables" of
# each platform page below, plus "platform" and "origin" from the discovery page:
# https://www.home-assistant.io/integrations/mqtt/#discovery-messages
COMMON_KEYS = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "default_entity_id",
    "device",
    "enabled_by_default",
    "encoding",
    "entity_category",
    "entity_picture",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "name",
    "object_id",
    "origin",
    "payload_available",
    "payload_not_available",
    "platform",
    "qos",
    "unique_id",
}
ALLOWED_KEYS = {
    # https://www.home-assistant.io/integrations/sensor.mqtt/
    "sensor": COMMON_KEYS
    | {
        "device_class",
        "expire_after",
        "force_update",
        "last_reset_value_template",
        "options",
        "state_class",
        "state_topic",
        "suggested_display_precision",
        "unit_of_measurement",
        "value_template",
    },
    # https://www.home-assistant.io/integrations/binary_sensor.mqtt/
    "binary_sensor": COMMON_KEYS
    | {"device_class", "expire_after", "force_update", "off_delay", "payload_off", "payload_on"}
    | {"state_topic", "value_template"},
    # https://www.home-assistant.io/integrations/switch.mqtt/
    "switch": COMMON_KEYS
    | {"command_template", "command_topic", "device_class", "optimistic", "payload_off", "payload_on", "retain"}
    | {"state_off", "state_on", "state_topic", "value_template"},
}
# Required per platform (state_topic for the two sensors, command_topic for a switch), and
# unique_id: the device mapping "only works through MQTT discovery and when unique_id is set".
REQUIRED_KEYS = {
    "sensor": {"state_topic", "unique_id", "device", "origin"},
    "binary_sensor": {"state_topic", "unique_id", "device", "origin"},
    "switch": {"command_topic", "unique_id", "device", "origin"},
}
# The device mapping's options (same on every platform page); identifiers or connections required.
DEVICE_KEYS = {
    "configuration_url",
    "connections",
    "hw_version",
    "identifiers",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "serial_number",
    "suggested_area",
    "sw_version",
    "via_device",
}
# https://www.home-assistant.io/integrations/mqtt/#adding-information-about-the-origin-of-a-discovery-message
# ("name" required); the brief asks for all three.
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
# https://www.home-assistant.io/integrations/mqtt/#using-availability-topics
AVAILABILITY_ITEM_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
AVAILABILITY_MODES = {"all", "any", "latest"}
# https://www.home-assistant.io/integrations/sensor/#device-class: the units each class takes,
# and https://developers.home-assistant.io/docs/core/entity/sensor/#available-state-classes with
# the energy dashboard's rules (https://www.home-assistant.io/docs/energy/faq/#troubleshooting-missing-entities):
# energy must be total or total_increasing in Wh/kWh to be offered, power a measurement in W/kW.
SENSOR_CLASSES: dict[str, tuple[set[str], set[str | None]]] = {
    "energy": ({"Wh", "kWh"}, {"total", "total_increasing"}),
    "power": ({"W", "kW"}, {"measurement"}),
    "voltage": ({"V", "mV"}, {"measurement"}),
    "current": ({"A", "mA"}, {"measurement"}),
    "battery": ({"%"}, {"measurement"}),
    "monetary": ({"EUR"}, {None, "total"}),  # an ISO 4217 code; never a measurement
}
# https://www.home-assistant.io/integrations/binary_sensor/#device-class and .../switch/#device-class
BINARY_SENSOR_CLASSES = {"problem", "connectivity"}
SWITCH_CLASSES = {None, "outlet", "switch"}
# https://www.home-assistant.io/integrations/mqtt/#discovery-topic: <prefix>/<component>/[<node_id>/]<object_id>/config
CONFIG_TOPIC = re.compile(r"^homeassistant/(sensor|binary_sensor|switch)/([a-zA-Z0-9_-]+/)?[a-zA-Z0-9_-]+/config$")


def schema_problems(topic: str, config: dict[str, Any]) -> list[str]:
    """Everything in one discovery payload Home Assistant would refuse or ignore."""
    match = CONFIG_TOPIC.match(topic)
    if match is None:
        return [f"{topic}: not a discovery topic of a sensor, binary_sensor or switch"]
    platform = match.group(1)
    problems = [f"unknown key {key!r}" for key in sorted(set(config) - ALLOWED_KEYS[platform])]
    problems += [f"missing {key!r}" for key in sorted(REQUIRED_KEYS[platform] - set(config))]
    device, origin = config.get("device", {}), config.get("origin", {})
    problems += [f"unknown device key {key!r}" for key in sorted(set(device) - DEVICE_KEYS)]
    if not device.get("identifiers"):
        problems.append("device without identifiers")
    if not {"name", "model", "manufacturer", "sw_version"} <= set(device):
        problems.append(f"device block incomplete: {sorted(device)}")
    if set(origin) != ORIGIN_KEYS or not all(isinstance(v, str) and v for v in origin.values()):
        problems.append(f"origin block {origin}")
    if "availability" in config:
        if "availability_topic" in config:
            problems.append("availability and availability_topic together")
        for item in config["availability"]:
            if "topic" not in item or set(item) - AVAILABILITY_ITEM_KEYS:
                problems.append(f"availability item {item}")
    if config.get("availability_mode", "latest") not in AVAILABILITY_MODES:
        problems.append(f"availability_mode {config['availability_mode']!r}")
    device_class = config.get("device_class")
    if platform == "sensor" and (device_class is not None or "state_class" in config):
        units, state_classes = SENSOR_CLASSES.get(str(device_class), (set(), set()))
        if config.get("unit_of_measurement") not in units:
            problems.append(f"unit {config.get('unit_of_measurement')!r} for device class {device_class!r}")
        if config.get("state_class") not in state_classes:
            problems.append(f"state_class {config.get('state_class')!r} for device class {device_class!r}")
    if platform == "binary_sensor" and device_class not in BINARY_SENSOR_CLASSES:
        problems.append(f"binary sensor device class {device_class!r}")
    if platform == "switch":
        if device_class not in SWITCH_CLASSES:
            problems.append(f"switch device class {device_class!r}")
        if config.get("optimistic") is not False:
            problems.append("a switch with a state topic must not be optimistic")
    return [f"{topic}: {problem}" for problem in problems]


def template_fields(config: dict[str, Any]) -> set[str]:
    """The fields of the JSON state a value template reads (``value_json.<field>``)."""
    return set(re.findall(r"value_json\.(\w+)", config.get("value_template", "")))


def available(config: dict[str, Any], latest: dict[str, bytes]) -> bool:
    """Home Assistant's availability rule for an entity, given the last payload of each topic
    (https://www.home-assistant.io/integrations/mqtt/#using-availability-topics): with "all",
    every topic must have said its payload_available (default "online"); an entity without
    availability is always available."""
    if "availability_topic" in config:
        return bool(latest.get(config["availability_topic"]) == config.get("payload_available", "online").encode())
    items = config.get("availability", [])
    if not items:
        return True
    said = [latest.get(item["topic"]) == item.get("payload_available", "online").encode() for item in items]
    mode = config.get("availability_mode", "latest")
    assert mode == "all", "only the mode the aggregator uses is worked out here"
    return all(said)


# --- the stack --------------------------------------------------------------------------------


class Stack:
    def __init__(self, broker: LocalMosquitto, secrets: Path, database_url: str, folder: Path) -> None:
        self.broker, self.secrets, self.database_url, self.folder = broker, secrets, database_url, folder
        self.aggregator: ServiceProcess | None = None
        self.clients: list[MqttObserver] = []

    def password(self, account: str) -> str:
        return (self.secrets / f"{account}.password").read_text().strip()

    def client(self, account: str, topic: str) -> MqttObserver:
        client = MqttObserver(self.broker.url, topic, f"{account}-{len(self.clients)}", account, self.password(account))
        self.clients.append(client)
        return client

    def start_aggregator(self) -> ServiceProcess:
        env = {
            "CW_MQTT_URL": self.broker.url,
            "CW_DATABASE_URL": self.database_url,
            "CW_HEALTH_PORT": "0",
            "CW_MQTT_USERNAME": "_aggregator",
            "CW_MQTT_PASSWORD_FILE": str(self.secrets / "_aggregator.password"),
            "CW_ALERT_INTERVAL_SECONDS": "0.5",  # each sensor's alert state soon after its first reading
        }
        self.aggregator = ServiceProcess("citizenwatt_aggregator", env, self.folder / "agg.log").start()
        return self.aggregator


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    """The shipped broker set-up (accounts made by init-accounts.sh, the repository's ACL)."""
    folder = tmp_path / "mq"
    secrets = folder / "secrets"
    subprocess.run(
        ["sh", str(REPO / "mosquitto" / "init-accounts.sh"), str(secrets), *ACCOUNTS], check=True, capture_output=True
    )
    acl = folder / "acl"  # a copy Mosquitto's own user can read (see test_mqtt_security.py)
    shutil.copyfile(REPO / "mosquitto" / "acl", acl)
    broker = LocalMosquitto(
        folder, extra_config=f"allow_anonymous false\npassword_file {secrets / 'mosquitto.passwd'}\nacl_file {acl}"
    )
    broker.start()
    running = Stack(broker, secrets, database_url, tmp_path)
    try:
        yield running
    finally:
        if running.aggregator is not None and running.aggregator.running:
            running.aggregator.stop()
        for client in running.clients:
            client.close()
        broker.kill()


def reading(sensor: str, kind: str, ts: float, power: float, **optional: Any) -> str:
    return json.dumps({"v": 1, "sensor": sensor, "kind": kind, "ts": ts, "power": power, **optional})


def configs_of(messages: Messages, start: int = 0) -> dict[str, dict[str, Any]]:
    """The discovery payloads seen from message ``start`` on, the last one per topic."""
    return {
        t: json.loads(p)
        for t, p, _ in messages[start:]
        if t.startswith("homeassistant/") and t.endswith("/config") and p
    }


def seen_online(messages: Messages) -> bool:
    return (AGGREGATOR_STATUS, b"online") in [(t, p) for t, p, _ in messages]


def state_at(messages: Messages, sensor: str, ts: float) -> dict[str, Any] | None:
    states = [json.loads(p) for t, p, _ in messages if t == f"citizenwatt/{sensor}/state"]
    return next((s for s in reversed(states) if s["ts"] == ts), None)


def entities(sensor: str, sensors: list[str], binary: list[str], switches: list[str]) -> set[str]:
    return (
        {f"homeassistant/sensor/citizenwatt_{sensor}/{name}/config" for name in sensors}
        | {f"homeassistant/binary_sensor/citizenwatt_{sensor}/{name}/config" for name in binary}
        | {f"homeassistant/switch/citizenwatt_{sensor}/{name}/config" for name in switches}
    )


# Worked out from what each sensor sends (README's topic table): power and the three energy meters
# for everyone, the alert entities for everyone (alerts are on by default), one more sensor per
# optional field, a switch for the relay.
# What each sensor's device model must name (its kind).
KINDS = {"house": "Simulated", "plug": "AWOX", "node": "nRF24"}
BASE = ["power", "energy", "energy_import", "energy_export", "standby", "standby_cost"]
EXPECTED = (
    {HUB_CONFIG}
    # house: a simulator, power only, then a reading with voltage.
    | entities("house", [*BASE, "voltage"], ["alert"], [])
    # plug: an AWOX plug, power, voltage and its relay.
    | entities("plug", [*BASE, "voltage"], ["alert"], ["relay"])
    # node: a radio sensor reporting its battery (V), its charge (%), voltage and current.
    | entities("node", [*BASE, "voltage", "current", "battery", "soc"], ["alert"], [])
)


def feed_three_sensors(stack: Stack, home: MqttObserver) -> None:
    """Readings of three sensors; the house's voltage appears only in its second reading."""
    house, plug, node = (stack.client(s, f"citizenwatt/{s}/set") for s in ("house", "plug", "node"))
    now = float(round(time.time()) - 60)  # whole seconds: the state gives back what PostgreSQL stored
    house.publish("citizenwatt/house/reading", reading("house", "simulator", now, 500.0))
    plug.publish("citizenwatt/plug/reading", reading("plug", "awox", now, 12.5, voltage=231.0, state=True))
    node.publish(
        "citizenwatt/node/reading",
        reading("node", "nrf24", now, 80.0, voltage=229.0, current=0.35, battery=3.1, soc=87.0),
    )
    home.wait_for(lambda ms: all(state_at(ms, s, now) for s in ("house", "plug", "node")))
    # Discovery goes out before the state, from the same client: the first round is all here.
    first = configs_of(home.messages)
    assert "homeassistant/sensor/citizenwatt_house/voltage/config" not in first  # no voltage yet
    house.publish("citizenwatt/house/reading", reading("house", "simulator", now + 5, 510.0, voltage=232.5))
    home.wait_for(lambda ms: state_at(ms, "house", now + 5))


def test_every_discovery_payload_follows_home_assistants_schema(stack: Stack) -> None:
    home = stack.client("_homeassistant", "#")  # sees what Home Assistant's account may read
    stack.start_aggregator()
    home.wait_for(seen_online)
    feed_three_sensors(stack, home)
    # Home Assistant's birth message makes the aggregator announce everything, the hub last: once
    # the hub's config comes after it, every config the aggregator means to publish has been seen.
    start = len(home.messages)
    home.publish("homeassistant/status", "online")
    home.wait_for(lambda ms: HUB_CONFIG in configs_of(ms, start))
    configs = configs_of(home.messages)
    assert set(configs) == EXPECTED  # nothing a sensor does not provide (no switch for house, ...)
    # All retained, as they were last published: what a Home Assistant starting later gets.
    late = stack.client("_homeassistant", "homeassistant/#")
    late.wait_for(lambda ms: set(configs_of(ms)) == EXPECTED)
    assert all(retained for _, _, retained in late.messages) and configs_of(late.messages) == configs
    problems = [problem for topic, config in configs.items() for problem in schema_problems(topic, config)]
    assert problems == []
    unique_ids = [config["unique_id"] for config in configs.values()]
    assert len(unique_ids) == len(set(unique_ids))
    # Each entity reads fields its state topic really carries (the newest state of its sensor).
    alerts = {f"citizenwatt/{sensor}/alert" for sensor in ("house", "plug", "node")}
    home.wait_for(lambda ms: alerts <= {t for t, _, _ in ms})
    for topic, config in configs.items():
        if template_fields(config):
            state = json.loads(next(p for t, p, _ in reversed(home.messages) if t == config["state_topic"]))
            assert template_fields(config) <= set(state), topic
    # The relay: commands on the plug's set topic, ON/OFF, state from the reading's relay state.
    relay = configs["homeassistant/switch/citizenwatt_plug/relay/config"]
    assert (relay["command_topic"], relay["payload_on"], relay["payload_off"], relay["optimistic"]) == (
        "citizenwatt/plug/set",
        "ON",
        "OFF",
        False,
    )
    assert (relay["state_topic"], template_fields(relay)) == ("citizenwatt/plug/state", {"state"})
    # Energy dashboard: the three meters of every sensor are total_increasing kWh energy.
    for sensor in ("house", "plug", "node"):
        for name in ("energy", "energy_import", "energy_export"):
            energy = configs[f"homeassistant/sensor/citizenwatt_{sensor}/{name}/config"]
            assert (energy["device_class"], energy["unit_of_measurement"], energy["state_class"]) == (
                "energy",
                "kWh",
                "total_increasing",
            )
    # One device per sensor, its model from its kind, reached through the aggregator's device.
    plug_device = relay["device"]
    assert plug_device["identifiers"] == ["citizenwatt_plug"] and plug_device["manufacturer"] == "AWOX"
    assert plug_device["via_device"] == configs[HUB_CONFIG]["device"]["identifiers"][0]
    models = {s: configs[f"homeassistant/sensor/citizenwatt_{s}/power/config"]["device"]["model"] for s in KINDS}
    assert all(hint in models[sensor] for sensor, hint in KINDS.items()), models
    assert relay["origin"] == {
        "name": "CitizenWatt",
        "sw_version": SW_VERSION,
        "support_url": "https://github.com/CitoyensCapteurs/CitizenWatt",
    }


def test_home_assistant_coming_online_gets_every_config_again(stack: Stack) -> None:
    """Its birth message (``online`` on homeassistant/status, as Home Assistant's own account may
    publish it) brings every config back, the same; its last will (``offline``) brings nothing."""
    home = stack.client("_homeassistant", "#")
    stack.start_aggregator()
    home.wait_for(seen_online)
    feed_three_sensors(stack, home)
    before = configs_of(home.messages)
    start = len(home.messages)
    home.publish("homeassistant/status", "offline")
    home.publish("homeassistant/status", "online")
    home.wait_for(lambda ms: HUB_CONFIG in configs_of(ms, start))
    again = [t for t, p, _ in home.messages[start:] if t.endswith("/config") and p]
    # Exactly one round (the offline message triggered none), the same payloads.
    assert sorted(again) == sorted(EXPECTED)
    assert configs_of(home.messages, start) == before


def test_a_broker_that_lost_its_retained_messages_gets_them_back(stack: Stack) -> None:
    """A broker killed before its hourly snapshot forgets the retained configs. The aggregator,
    reconnected, announces everything again; so does a new aggregator, which knows the sensors only
    from the database (none of them has sent anything since)."""
    home = stack.client("_homeassistant", "#")
    aggregator = stack.start_aggregator()
    home.wait_for(seen_online)
    feed_three_sensors(stack, home)
    before = configs_of(home.messages)

    def lose_the_broker_state() -> None:
        stack.broker.kill()
        (stack.broker.folder / "mosquitto.db").unlink(missing_ok=True)  # no snapshot to come back from
        stack.broker.start()

    def retained_configs() -> dict[str, dict[str, Any]]:
        late = stack.client("_homeassistant", "homeassistant/#")  # only what the broker retains now
        late.wait_for(lambda ms: set(configs_of(ms)) == EXPECTED)
        return configs_of(late.messages)

    lose_the_broker_state()  # the same aggregator process reconnects by itself
    assert retained_configs() == before
    assert aggregator.running
    aggregator.stop()
    lose_the_broker_state()
    stack.start_aggregator()
    assert retained_configs() == before


class FakePlug:
    """The plug at the end of the Bluetooth link: answers each status request, switches its relay."""

    def __init__(self) -> None:
        self.relay_on = False
        self.on_chunk: Any = None

    async def connect(self, on_chunk: Any) -> None:
        self.on_chunk = on_chunk

    async def send(self, frame: bytes) -> None:
        from citizenwatt_awox.decoder import STATUS_REQUEST, SWITCH_OFF, SWITCH_ON
        from tests.test_collector_awox import status_frame

        if frame == STATUS_REQUEST:
            self.on_chunk(status_frame(self.relay_on, 40_000 if self.relay_on else 1_000, 230))
        elif frame in (SWITCH_ON, SWITCH_OFF):
            self.relay_on = frame == SWITCH_ON
            self.on_chunk(bytes.fromhex("0f0403000004ffff"))  # the plug's confirmation

    async def disconnect(self) -> None:
        self.on_chunk = None


def test_the_plug_is_switched_from_home_assistant(stack: Stack) -> None:
    """Home Assistant publishes the switch's payload_on to its command_topic with its own account;
    the real AWOX collector (the plug's account) receives it, switches the plug, and the next
    reading's relay state reaches the state topic the switch reads: 40 W and on, then 1 W and off
    (the fake plug answers 40 000 mW on, 1 000 mW off)."""
    from citizenwatt_awox.service import run_plug
    from citizenwatt_awox.settings import AwoxSettings
    from citizenwatt_common.collector import CollectorRuntime

    home = stack.client("_homeassistant", "#")
    stack.start_aggregator()
    home.wait_for(seen_online)
    settings = AwoxSettings(
        mqtt_url=stack.broker.url,
        mqtt_username="plug",
        mqtt_password=stack.password("plug"),
        sensor_id="plug",
        period_seconds=0.2,
        awox_address="AA:BB:CC:DD:EE:FF",
    )
    plug = FakePlug()
    runtime = CollectorRuntime(settings, "awox")
    runtime.publisher.start()
    thread = threading.Thread(target=run_plug, args=(runtime, lambda address: plug), daemon=True)
    thread.start()

    def relay_state(ms: Messages) -> list[tuple[float, bool]]:
        states = [json.loads(p) for t, p, _ in ms if t == "citizenwatt/plug/state"]
        return [(s["power"], s["state"]) for s in states if "state" in s]

    try:
        topic = "homeassistant/switch/citizenwatt_plug/relay/config"
        relay = home.wait_for(lambda ms: configs_of(ms).get(topic))
        home.wait_for(lambda ms: (1.0, False) in relay_state(ms))
        home.publish(relay["command_topic"], relay["payload_on"])
        home.wait_for(lambda ms: (40.0, True) in relay_state(ms))
        home.publish(relay["command_topic"], relay["payload_off"])
        home.wait_for(lambda ms: relay_state(ms)[-1] == (1.0, False))
    finally:
        runtime.stop_event.set()
        thread.join(10)
        runtime.publisher.stop()
    assert plug.relay_on is False


def test_entities_go_unavailable_when_the_aggregator_does(stack: Stack) -> None:
    """The measured entities need the collector and the aggregator; the alert ones the aggregator
    only. Killed (no goodbye), the aggregator's last will says offline: every one of its sensors'
    entities is then unavailable, and only the hub's connectivity entity stays available (off)."""
    home = stack.client("_homeassistant", "#")
    aggregator = stack.start_aggregator()
    home.wait_for(seen_online)
    for sensor in ("house", "plug", "node"):  # each collector online, as it says once its device answers
        stack.client(sensor, f"citizenwatt/{sensor}/set").publish(f"citizenwatt/{sensor}/status", "online", retain=True)
    feed_three_sensors(stack, home)
    start = len(home.messages)
    home.publish("homeassistant/status", "online")
    home.wait_for(lambda ms: HUB_CONFIG in configs_of(ms, start))
    configs = configs_of(home.messages)

    def latest(ms: Messages) -> dict[str, bytes]:
        return {t: p for t, p, _ in ms}

    now = latest(home.messages)
    assert all(available(config, now) for config in configs.values())
    aggregator.kill()
    home.wait_for(lambda ms: latest(ms).get(AGGREGATOR_STATUS) == b"offline")
    after = latest(home.messages)
    still = [topic for topic, config in configs.items() if available(config, after)]
    assert still == [HUB_CONFIG]
    hub = configs[HUB_CONFIG]
    assert (hub["state_topic"], hub["payload_off"]) == (AGGREGATOR_STATUS, "offline")


def test_the_origin_version_is_the_projects() -> None:
    with (REPO / "pyproject.toml").open("rb") as handle:
        assert tomllib.load(handle)["project"]["version"] == SW_VERSION
