"""Home Assistant MQTT discovery: which entities each sensor gets, and when they are announced.

One retained config per entity (``<prefix>/<platform>/citizenwatt_<sensor>/<entity>/config``),
not Home Assistant's device-based discovery (one ``<prefix>/device/<id>/config`` with ``cmps``):
the per-entity form works with every Home Assistant version (device-based needs 2024.11 or
later), lets an entity be added alone when a sensor first reports a new field, and keeps the
topics and unique ids installations already have, so nothing has to be migrated or cleared.
Every payload carries the same ``device`` and ``origin`` blocks.

What a sensor gets is decided from what it has sent (``SensorFacts``): power and the energy
meters always, voltage, current, battery and state of charge once a reading carried them, and a
switch for its relay once a reading carried ``state`` (or from the start for an AWOX plug).
Facts only grow, so an entity is never withdrawn; a new one is announced when its field first
appears. The whole set is announced again when Home Assistant says it is back online, and after
each (re)connection to the broker, which may have lost its retained messages in a crash.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as paho
import psycopg

from citizenwatt_common.contract import STATUS_OFFLINE, STATUS_ONLINE, Reading, Topics

log = logging.getLogger(__name__)

# The project's version (pyproject.toml). The images run the sources from PYTHONPATH without
# installing the package, so importlib.metadata cannot tell it there; a test keeps the two equal.
SW_VERSION: Final = "2.0.0"

HUB_ID: Final = "citizenwatt_aggregator"  # the device every sensor is reached through

# Optional reading fields that give an entity of their own (the relay's ``state`` gives the switch).
OPTIONAL_FIELDS: Final = ("voltage", "current", "battery", "soc", "state")

# What Home Assistant shows as each kind's model and maker.
_MODELS: Final[dict[str, tuple[str, str]]] = {
    "nrf24": ("CitizenWatt radio sensor (nRF24L01+)", "CitizenWatt"),
    "ina219": ("INA219 current sensor", "CitizenWatt"),
    "acs712": ("ACS712 current sensor (Arduino)", "CitizenWatt"),
    "awox": ("AWOX SMP-B16 smart plug", "AWOX"),
    "simulator": ("Simulated sensor", "CitizenWatt"),
}


@dataclass(frozen=True)
class SensorFacts:
    """What a sensor is known to provide: its kind and the optional fields its readings carried."""

    kind: str
    fields: frozenset[str] = frozenset()

    @property
    def has_relay(self) -> bool:
        return "state" in self.fields or self.kind == "awox"

    def merged(self, other: SensorFacts) -> SensorFacts:
        # A collector replaced by one of another kind keeps its sensor id: the newest kind wins.
        return SensorFacts(other.kind, self.fields | other.fields)

    @classmethod
    def of(cls, reading: Reading) -> SensorFacts:
        return cls(reading.kind, frozenset(name for name in OPTIONAL_FIELDS if getattr(reading, name) is not None))


@dataclass(frozen=True)
class DiscoveryContext:
    topics: Topics
    prefix: str  # Home Assistant's discovery prefix
    support_url: str
    alerts: bool  # the alert watcher runs: its entities exist

    @property
    def origin(self) -> dict[str, str]:
        return {"name": "CitizenWatt", "sw_version": SW_VERSION, "support_url": self.support_url}

    @property
    def ha_status_topic(self) -> str:
        """Where Home Assistant announces itself (its birth message): ``online`` when it (re)starts."""
        return f"{self.prefix}/status"

    def config_topic(self, platform: str, sensor: str, entity: str) -> str:
        return f"{self.prefix}/{platform}/citizenwatt_{sensor}/{entity}/config"


def device_block(sensor: str, kind: str) -> dict[str, Any]:
    model, manufacturer = _MODELS.get(kind, (kind, "CitizenWatt"))
    return {
        "identifiers": [f"citizenwatt_{sensor}"],  # as before device blocks had a model: same device
        "name": f"CitizenWatt {sensor}",
        "model": model,
        "manufacturer": manufacturer,
        "sw_version": SW_VERSION,
        "via_device": HUB_ID,
    }


def _measurement(name: str, field: str, unit: str, device_class: str) -> dict[str, Any]:
    return {
        "name": name,
        "unit_of_measurement": unit,
        "device_class": device_class,
        "state_class": "measurement",
        # The state carries a field only when the newest reading had it: unknown rather than an error.
        "value_template": f"{{{{ value_json.{field} if value_json.{field} is defined else None }}}}",
    }


def _energy(name: str, field: str) -> dict[str, Any]:
    # total_increasing kWh: what the energy dashboard takes. An older aggregator's retained state
    # may lack the field: unknown, rather than 0 (which Home Assistant would take for a meter reset).
    return {
        "name": name,
        "unit_of_measurement": "kWh",
        "device_class": "energy",
        "state_class": "total_increasing",
        "value_template": f"{{{{ value_json.{field} if value_json.{field} is defined else None }}}}",
    }


def sensor_configs(ctx: DiscoveryContext, sensor: str, facts: SensorFacts) -> dict[str, dict[str, Any]]:
    """Every discovery config of one sensor, by config topic.

    The measured entities read the aggregator's ``state`` and so are available only while both
    the collector and the aggregator are online (``availability_mode: all``): with either one
    down the figures stop changing and must not look current. The alert entities depend on the
    aggregator alone: a silent collector is exactly when the problem entity must stay on.
    """
    topics = ctx.topics
    measured: dict[str, dict[str, Any]] = {
        "power": {
            "name": "Power",
            "unit_of_measurement": "W",
            "device_class": "power",
            "state_class": "measurement",
            "value_template": "{{ value_json.power }}",
        },
        "energy": _energy("Energy", "energy_kwh"),
        "energy_import": _energy("Energy imported", "energy_import_kwh"),
        "energy_export": _energy("Energy exported", "energy_export_kwh"),
    }
    if "voltage" in facts.fields:
        measured["voltage"] = _measurement("Voltage", "voltage", "V", "voltage")
    if "current" in facts.fields:
        measured["current"] = _measurement("Current", "current", "A", "current")
    if "battery" in facts.fields:  # the sensor's battery voltage (V)
        measured["battery"] = _measurement("Battery voltage", "battery", "V", "voltage")
    if "soc" in facts.fields:
        measured["soc"] = _measurement("Battery", "soc", "%", "battery")
    both = {
        "availability": [{"topic": topics.status(sensor)}, {"topic": topics.service_status("aggregator")}],
        "availability_mode": "all",
    }
    common = {"device": device_block(sensor, facts.kind), "origin": ctx.origin}
    configs = {
        ctx.config_topic("sensor", sensor, name): {
            "unique_id": f"citizenwatt_{sensor}_{name}",
            "state_topic": topics.state(sensor),
            **fields,
            **both,
            **common,
        }
        for name, fields in measured.items()
    }
    if facts.has_relay:
        configs[ctx.config_topic("switch", sensor, "relay")] = {
            "name": "Relay",
            "unique_id": f"citizenwatt_{sensor}_relay",
            "state_topic": topics.state(sensor),
            # ``state`` is the newest reading's relay, true or false; absent: unknown.
            "value_template": "{{ ('ON' if value_json.state else 'OFF') if value_json.state is defined else None }}",
            "command_topic": topics.set(sensor),
            "payload_on": "ON",
            "payload_off": "OFF",
            "device_class": "outlet" if facts.kind == "awox" else "switch",
            "optimistic": False,  # on or off only once the plug's next reading says so
            "qos": 1,
            **both,
            **common,
        }
    if ctx.alerts:
        configs.update(_alert_configs(ctx, sensor, common))
    return configs


def _alert_configs(ctx: DiscoveryContext, sensor: str, common: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``alert`` topic's entities: a problem binary sensor (its attributes are the whole
    message, active alerts included), the standby power and its cost per year."""
    alert = ctx.topics.alert(sensor)
    entities: dict[tuple[str, str], dict[str, Any]] = {
        ("binary_sensor", "alert"): {
            "name": "Alert",
            "device_class": "problem",
            "value_template": "{{ 'ON' if value_json.active else 'OFF' }}",
            "json_attributes_topic": alert,
        },
        ("sensor", "standby"): {
            "name": "Standby power",
            "unit_of_measurement": "W",
            "device_class": "power",
            "state_class": "measurement",
            "value_template": "{{ value_json.standby_w }}",
        },
        ("sensor", "standby_cost"): {
            "name": "Standby cost per year",
            "unit_of_measurement": "EUR",
            "device_class": "monetary",
            "value_template": "{{ value_json.standby_euros_per_year }}",
        },
    }
    return {
        ctx.config_topic(platform, sensor, name): {
            "unique_id": f"citizenwatt_{sensor}_{name}",
            "state_topic": alert,
            "availability_topic": ctx.topics.service_status("aggregator"),
            **fields,
            **common,
        }
        for (platform, name), fields in entities.items()
    }


def hub_configs(ctx: DiscoveryContext) -> dict[str, dict[str, Any]]:
    """The aggregator as a device of its own (the sensors' ``via_device``), with one entity: its
    connection to the broker, from its retained status and last will. No availability: offline
    is what it shows."""
    status = ctx.topics.service_status("aggregator")
    return {
        f"{ctx.prefix}/binary_sensor/citizenwatt/aggregator/config": {
            "name": "Aggregator",
            "unique_id": f"{HUB_ID}_status",
            "device_class": "connectivity",
            "entity_category": "diagnostic",
            "state_topic": status,
            "payload_on": STATUS_ONLINE,
            "payload_off": STATUS_OFFLINE,
            "device": {
                "identifiers": [HUB_ID],
                "name": "CitizenWatt",
                "model": "CitizenWatt aggregator",
                "manufacturer": "CitizenWatt",
                "sw_version": SW_VERSION,
            },
            "origin": ctx.origin,
        }
    }


def stored_facts(conn: psycopg.Connection[Any]) -> dict[str, SensorFacts]:
    """Every known sensor's kind and the optional fields of its newest reading.

    Bounded to the newest reading's time (``last_seen``), so TimescaleDB opens one chunk per sensor.
    """
    rows = conn.execute(
        """
        SELECT s.key, s.kind, last.voltage IS NOT NULL, last.current IS NOT NULL, last.battery IS NOT NULL,
               last.soc IS NOT NULL, last.state IS NOT NULL
        FROM sensors s
        LEFT JOIN LATERAL (
            SELECT r.voltage, r.current, r.battery, r.soc, r.state FROM readings r
            WHERE r.sensor_id = s.id AND r.ts >= s.last_seen ORDER BY r.ts DESC LIMIT 1
        ) AS last ON true
        ORDER BY s.key
        """
    ).fetchall()
    return {
        str(key): SensorFacts(
            str(kind), frozenset(name for name, has in zip(OPTIONAL_FIELDS, flags, strict=True) if has)
        )
        for key, kind, *flags in rows
    }


class Announcer:
    """Publishes discovery as the aggregator learns about sensors. Used from one thread only
    (the aggregator's writer loop); the MQTT client's publish is thread-safe."""

    def __init__(self, client: paho.Client, ctx: DiscoveryContext) -> None:
        self._client = client
        self.ctx = ctx
        self._facts: dict[str, SensorFacts] = {}  # as last announced

    def learn(self, readings: Iterable[Reading]) -> list[str]:
        """Announce the sensors that are new or whose readings carry a new field; returns them."""
        announced = []
        for reading in readings:
            known = self._facts.get(reading.sensor)
            facts = SensorFacts.of(reading) if known is None else known.merged(SensorFacts.of(reading))
            if facts != known:
                self._announce(reading.sensor, facts)
                announced.append(reading.sensor)
        return announced

    def announce_all(self, stored: Mapping[str, SensorFacts]) -> None:
        """Everything again: every sensor known here or in the database, then the hub (last, so a
        client that sees the hub's config knows the round is complete)."""
        for sensor in sorted(set(stored) | set(self._facts)):
            known, found = self._facts.get(sensor), stored.get(sensor)
            # What this run saw of its kind wins over the stored one.
            facts = found.merged(known) if known and found else known or found
            assert facts is not None
            self._announce(sensor, facts)
        self._publish(hub_configs(self.ctx))

    def _announce(self, sensor: str, facts: SensorFacts) -> None:
        self._publish(sensor_configs(self.ctx, sensor, facts))
        self._facts[sensor] = facts

    def _publish(self, configs: Mapping[str, dict[str, Any]]) -> None:
        for topic, config in configs.items():
            self._client.publish(topic, json.dumps(config), qos=1, retain=True)
