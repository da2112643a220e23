"""Each sensor's retained ``state`` topic: what Home Assistant and dashboards read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho
import psycopg

from citizenwatt_common.contract import SCHEMA_VERSION, Reading, Topics

from .discovery import OPTIONAL_FIELDS


def sensor_states(conn: psycopg.Connection[Any], sensors: Sequence[str], since: float) -> list[tuple[str, str]]:
    """Each sensor's state payload, (sensor, JSON), from its newest reading, which is measured at
    ``since`` or later (the caller has just stored a reading of each at or after it): a time
    bound, so TimescaleDB plans only the newest chunks instead of every chunk at every batch."""
    rows = conn.execute(
        """
        SELECT s.key, s.meter_wh, s.meter_import_wh, s.meter_export_wh, last.ts, last.power, last.night_rate,
               last.voltage, last.current, last.battery, last.soc, last.state
        FROM sensors s
        CROSS JOIN LATERAL (
            SELECT extract(epoch FROM r.ts)::float8 AS ts, r.power, r.night_rate,
                   r.voltage, r.current, r.battery, r.soc, r.state
            FROM readings r
            WHERE r.sensor_id = s.id AND r.ts >= to_timestamp(%s) ORDER BY r.ts DESC LIMIT 1
        ) AS last
        WHERE s.key = ANY(%s)
        """,
        (since, list(sensors)),
    ).fetchall()
    states = []
    for key, meter_wh, import_wh, export_wh, ts, power, night, *optional in rows:
        payload: dict[str, Any] = {
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
        # The newest reading's other figures and relay state, when it had them (Home Assistant's
        # voltage, battery and switch entities read them: see discovery.py).
        extra = zip(OPTIONAL_FIELDS, optional, strict=True)
        payload.update((name, value) for name, value in extra if value is not None)
        states.append((str(key), json.dumps(payload)))
    return states


def publish_states(client: paho.Client, topics: Topics, states: Sequence[tuple[str, str]]) -> None:
    for sensor, payload in states:
        client.publish(topics.state(sensor), payload, qos=1, retain=True)


def with_reading(shown: dict[str, Any], reading: Reading, night: bool) -> dict[str, Any]:
    """A state payload moved on to a newer reading not committed yet (the aggregator's journal):
    its power, time, night flag and other figures; the energy figures stay the last commit's."""
    state = {**shown, "ts": reading.ts, "power": reading.power, "rate": "night" if night else "day"}
    for name in OPTIONAL_FIELDS:
        value = getattr(reading, name)
        if value is None:
            state.pop(name, None)
        else:
            state[name] = value
    return state


def with_energy(shown: dict[str, Any], committed: dict[str, Any]) -> dict[str, Any]:
    """The payload a commit read from the database, unless the journal already showed a newer
    reading: then that one, with the commit's energy figures."""
    if shown["ts"] <= committed["ts"]:
        return committed
    return {**shown, **{key: value for key, value in committed.items() if key.startswith("energy")}}
