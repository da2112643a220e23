"""Tariffs, the household's dated choice of tariff and Tempo colours, read from and written to the
database (schema migration 7). Shared by the api (routes, costs) and the aggregator (Tempo
colours from MQTT, the readings' legacy night flag)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Final

import psycopg

from .tariffs import COLOURS, Choice, Plan, Tariff, TariffError, Version, version_from_json

Conn = psycopg.Connection[Any]
TEMPO_SOURCES: Final = ("api", "mqtt")


def _version(row: tuple[Any, ...]) -> Version:
    valid_from, subscription, periods, default_period, windows, export = row
    body = {
        "subscription_euros_per_month": str(subscription),
        "periods": periods,
        "default_period": default_period,
        "windows": windows,
        "export_euros_per_kwh": str(export),
    }
    return version_from_json(valid_from, body)


def load_tariffs(conn: Conn) -> dict[int, Tariff]:
    rows = conn.execute(
        "SELECT t.id, t.name, t.kind, t.builtin, v.valid_from, v.subscription_euros_per_month, v.periods,"
        " v.default_period, v.windows, v.export_euros_per_kwh"
        " FROM tariffs t JOIN tariff_versions v ON v.tariff_id = t.id ORDER BY t.id, v.valid_from"
    ).fetchall()
    return _tariffs_of(rows)


def _tariffs_of(rows: Sequence[Sequence[Any]]) -> dict[int, Tariff]:
    versions: dict[int, list[Version]] = {}
    heads: dict[int, tuple[str, str, bool]] = {}
    for tariff_id, name, kind, builtin, *version in rows:
        heads[int(tariff_id)] = (str(name), str(kind), bool(builtin))
        versions.setdefault(int(tariff_id), []).append(_version(tuple(version)))
    return {i: Tariff(i, *heads[i], tuple(versions[i])) for i in heads}


# The household's tariffs and choices as two JSON columns, for a statement that reads the household
# row anyway (the aggregator's batch: no extra round trip).
PLAN_JSON_COLUMNS: Final = """
    (SELECT json_agg(json_build_array(valid_from, tariff_id) ORDER BY valid_from) FROM household_tariffs),
    (SELECT json_agg(json_build_array(t.id, t.name, t.kind, t.builtin, v.valid_from,
                                      v.subscription_euros_per_month::text, v.periods, v.default_period,
                                      v.windows, v.export_euros_per_kwh::text) ORDER BY t.id, v.valid_from)
     FROM tariffs t JOIN tariff_versions v ON v.tariff_id = t.id)"""


def plan_from_json(choices: list[list[Any]] | None, versions: list[list[Any]] | None) -> Plan | None:
    """The plan from PLAN_JSON_COLUMNS; None before migration 7's rows exist."""
    if not choices or not versions:
        return None
    rows = [(i, name, kind, builtin, date.fromisoformat(day), *rest) for i, name, kind, builtin, day, *rest in versions]
    return Plan(_tariffs_of(rows), tuple(Choice(date.fromisoformat(day), int(i)) for day, i in choices))


def load_choices(conn: Conn) -> tuple[Choice, ...]:
    rows = conn.execute("SELECT valid_from, tariff_id FROM household_tariffs ORDER BY valid_from").fetchall()
    return tuple(Choice(r[0], int(r[1])) for r in rows)


def load_plan(conn: Conn) -> Plan:
    return Plan(load_tariffs(conn), load_choices(conn))


def load_colours(conn: Conn, first: date, last: date) -> dict[date, str]:
    rows = conn.execute("SELECT day, colour FROM tempo_days WHERE day BETWEEN %s AND %s", (first, last)).fetchall()
    return {r[0]: str(r[1]) for r in rows}


def store_colour(conn: Conn, day: date, colour: str, source: str) -> bool:
    """Record a day's Tempo colour; True if it changed. The same colour heard again (a retained
    message at every reconnection, or the api's own publication coming back) keeps its source."""
    if colour not in COLOURS or source not in TEMPO_SOURCES:
        raise TariffError(f"colour must be one of {', '.join(COLOURS)}")
    row = conn.execute(
        "INSERT INTO tempo_days (day, colour, source) VALUES (%s, %s, %s)"
        " ON CONFLICT (day) DO UPDATE SET colour = excluded.colour, source = excluded.source, updated_at = now()"
        " WHERE tempo_days.colour <> excluded.colour RETURNING day",
        (day, colour, source),
    ).fetchone()
    return row is not None


def parse_tempo_payload(payload: bytes) -> str:
    """``red`` or ``{"colour": "red"}`` (``color`` is taken too) -> ``"red"``; TariffError otherwise."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise TariffError("the payload is not UTF-8 text") from None
    colour: object = text.strip('"').lower()
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except ValueError:
            raise TariffError("the payload is neither a colour nor JSON") from None
        colour = body.get("colour", body.get("color")) if isinstance(body, Mapping) else None
        colour = colour.lower() if isinstance(colour, str) else colour
    if colour not in COLOURS:
        raise TariffError(f"the colour must be one of {', '.join(COLOURS)}, not {text[:40]!r}")
    return str(colour)


def tempo_topic(base: str, day: date) -> str:
    return f"{base}/_household/tempo/{day.isoformat()}"


def tempo_topic_filter(base: str) -> str:
    return f"{base}/_household/tempo/+"


def day_of_tempo_topic(base: str, topic: str) -> date | str | None:
    """The day a Tempo topic names; None if the topic is not a Tempo one; the reason as text if
    it is one but its last level is not a date."""
    prefix = f"{base}/_household/tempo/"
    if not topic.startswith(prefix):
        return None
    try:
        return date.fromisoformat(topic[len(prefix) :])
    except ValueError:
        return f"{topic[len(prefix) :][:40]!r} is not a date as YYYY-MM-DD"
