"""Each sensor's retained ``state`` topic: what Home Assistant and dashboards read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho
import psycopg

from citizenwatt_common.contract import SCHEMA_VERSION, Topics


def publish_states(
    conn: psycopg.Connection[Any], client: paho.Client, topics: Topics, sensors: Sequence[str], since: float
) -> None:
    """Publish each sensor's state from its newest reading, which is measured at ``since`` or later
    (the caller has just stored a reading of each at or after it): a time bound, so TimescaleDB
    plans only the newest chunks instead of every chunk at every batch."""
    rows = conn.execute(
        """
        SELECT s.key, s.meter_wh, s.meter_import_wh, s.meter_export_wh, last.ts, last.power, last.night_rate
        FROM sensors s
        CROSS JOIN LATERAL (
            SELECT extract(epoch FROM r.ts)::float8 AS ts, r.power, r.night_rate FROM readings r
            WHERE r.sensor_id = s.id AND r.ts >= to_timestamp(%s) ORDER BY r.ts DESC LIMIT 1
        ) AS last
        WHERE s.key = ANY(%s)
        """,
        (since, list(sensors)),
    ).fetchall()
    for key, meter_wh, import_wh, export_wh, ts, power, night in rows:
        payload = {
            "v": SCHEMA_VERSION,
            "sensor": key,
            "ts": ts,
            "power": power,
            # The net energy's highest total so far, as it always was: for a sensor that never
            # exports, its consumption; for one that does, it stalls while it exports.
            "energy_kwh": round(float(meter_wh) / 1000, 6),
            # Each direction on its own meter, never decreasing: what an exporting sensor needs.
            "energy_import_kwh": round(float(import_wh) / 1000, 6),
            "energy_export_kwh": round(float(export_wh) / 1000, 6),
            "rate": "night" if night else "day",
        }
        client.publish(topics.state(key), json.dumps(payload), qos=1, retain=True)


def publish_discovery(client: paho.Client, topics: Topics, sensor: str, prefix: str) -> None:
    """Home Assistant MQTT discovery: power, energy, and energy imported and exported, per sensor,
    read from ``state``.

    The energy entities are ``total_increasing`` kWh so Home Assistant's energy dashboard can use
    them directly; that is why the state's energy figures never decrease. With solar panels, the
    dashboard's "grid consumption" is the import entity and its "return to grid" the export one.
    Both are announced for every sensor, whether it has exported yet or not: what discovery says
    then never depends on the data (panels installed later need nothing redone), and a sensor that
    never exports shows an export of 0 and an import equal to its energy.
    """
    device = _device(sensor)
    entities = {
        "power": {
            "unit_of_measurement": "W",
            "device_class": "power",
            "state_class": "measurement",
            "value_template": "{{ value_json.power }}",
        },
        "energy": {
            "unit_of_measurement": "kWh",
            "device_class": "energy",
            "state_class": "total_increasing",
            "value_template": "{{ value_json.energy_kwh }}",
        },
        "energy_import": {
            "name": "Energy imported",
            "unit_of_measurement": "kWh",
            "device_class": "energy",
            "state_class": "total_increasing",
            # An older aggregator's retained state has no such field: unknown, rather than 0 (which
            # Home Assistant would take for a meter reset).
            "value_template": "{{ value_json.energy_import_kwh if value_json.energy_import_kwh is defined else None }}",
        },
        "energy_export": {
            "name": "Energy exported",
            "unit_of_measurement": "kWh",
            "device_class": "energy",
            "state_class": "total_increasing",
            "value_template": "{{ value_json.energy_export_kwh if value_json.energy_export_kwh is defined else None }}",
        },
    }
    for name, fields in entities.items():
        config = {
            "name": name.capitalize(),  # unless the entity names itself
            "unique_id": f"citizenwatt_{sensor}_{name}",
            "state_topic": topics.state(sensor),
            "availability_topic": topics.status(sensor),
            "device": device,
            **fields,
        }
        client.publish(f"{prefix}/sensor/citizenwatt_{sensor}/{name}/config", json.dumps(config), qos=1, retain=True)


def _device(sensor: str) -> dict[str, Any]:
    return {"identifiers": [f"citizenwatt_{sensor}"], "name": f"CitizenWatt {sensor}", "manufacturer": "CitizenWatt"}


def publish_alert_discovery(client: paho.Client, topics: Topics, sensor: str, prefix: str) -> None:
    """Home Assistant discovery for a sensor's ``alert`` topic: a problem binary sensor (its
    attributes are the whole message, active alerts included), the standby power and its cost.

    Their availability is the aggregator's, not the collector's: a silent collector is exactly
    when the problem entity must stay available and on.
    """
    availability = topics.service_status("aggregator")
    entities = {
        ("binary_sensor", "alert"): {
            "name": "Alert",
            "device_class": "problem",
            "value_template": "{{ 'ON' if value_json.active else 'OFF' }}",
            "json_attributes_topic": topics.alert(sensor),
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
    for (component, name), fields in entities.items():
        config = {
            "unique_id": f"citizenwatt_{sensor}_{name}",
            "state_topic": topics.alert(sensor),
            "availability_topic": availability,
            "device": _device(sensor),
            **fields,
        }
        client.publish(
            f"{prefix}/{component}/citizenwatt_{sensor}/{name}/config", json.dumps(config), qos=1, retain=True
        )
