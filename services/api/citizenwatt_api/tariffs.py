"""Tariffs in the modern API: dated versions a household can type, its dated choice, Tempo days.

One rule for prices and hours: a change is a version from a date (today by default, in the
household's zone), and costs before that date never move. Builtin (seeded) tariffs take new
versions too, so a household can enter a new regulated price before an update ships it.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from citizenwatt_common.tariff_store import load_choices, load_tariffs, store_colour, tempo_topic
from citizenwatt_common.tariffs import COLOURS, Tariff, TariffError, Version, Window, version_from_json

from .auth import ApiError, User, admin_allowed_to_change, current_user
from .db import get_conn
from .errors import ErrorCode
from .radio_config import RadioConfigPublisher

router = APIRouter(prefix="/api/v2", tags=["tariffs"])
Conn = psycopg.Connection[Any]
MAX_TEMPO_DAYS = 3700
Price = float | dict[str, float]


class WindowJson(BaseModel):
    start: str = Field(description="local HH:MM the window starts", examples=["22:00"])
    end: str = Field(description="local HH:MM it ends, excluded (at or before start: the next day)", examples=["06:00"])
    period: str = Field(description="the period its minutes are priced at", examples=["offpeak"])


class VersionIn(BaseModel):
    valid_from: date | None = Field(None, description="local date it applies from (at local midnight)")
    subscription_euros_per_month: float = 0
    periods: dict[str, Price] = Field(
        description="EUR/kWh per period; Tempo: per period, {blue, white, red}", examples=[{"base": 0.1952}]
    )
    default_period: str | None = Field(None, description="period of every minute outside the windows")
    windows: list[WindowJson] = Field(default_factory=list, description="must not overlap")
    export_euros_per_kwh: float = 0


class VersionOut(BaseModel):
    valid_from: date
    subscription_euros_per_month: float
    periods: dict[str, Price]
    default_period: str
    windows: list[WindowJson]
    export_euros_per_kwh: float


class TariffOut(BaseModel):
    id: int
    name: str
    kind: str = Field(description="base, hc, tempo, or custom (typed by the household)")
    builtin: bool
    versions: list[VersionOut]


class TariffIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    versions: list[VersionIn] = Field(min_length=1)


class ChoiceJson(BaseModel):
    valid_from: date
    tariff_id: int


class ChoiceIn(BaseModel):
    tariff_id: int
    valid_from: date | None = Field(None, description="default: today in the household's zone")


class TariffsOut(BaseModel):
    tariffs: list[TariffOut]
    household: list[ChoiceJson] = Field(description="the household's tariff from each date on")
    current_tariff_id: int


class TempoDay(BaseModel):
    day: date
    colour: str
    source: str = Field(description="api or mqtt")
    delivered: bool | None = Field(None, description="(PUT) the broker took the retained message now")


class TempoIn(BaseModel):
    colour: str = Field(description="blue, white or red", examples=["red"])


def today(request: Request) -> date:
    return datetime.now(request.app.state.settings.zone).date()


def tariff_json(tariff: Tariff) -> TariffOut:
    return TariffOut.model_validate(
        {
            "id": tariff.id,
            "name": tariff.name,
            "kind": tariff.kind,
            "builtin": tariff.builtin,
            "versions": [v.as_json() for v in tariff.versions],
        }
    )


def checked_version(valid_from: date, body: VersionIn) -> Version:
    try:
        return version_from_json(valid_from, body.model_dump(exclude={"valid_from"}))
    except TariffError as exc:
        raise ApiError(
            400,
            f"version {valid_from.isoformat()}: {exc}",
            code=ErrorCode.INVALID_TARIFF_VERSION,
            params={"valid_from": valid_from.isoformat(), "detail": str(exc)},
        ) from None


def save_version(conn: Conn, tariff_id: int, version: Version) -> None:
    body = version.as_json()
    conn.execute(
        "INSERT INTO tariff_versions (tariff_id, valid_from, subscription_euros_per_month, periods, default_period,"
        " windows, export_euros_per_kwh) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tariff_id, valid_from) DO UPDATE SET subscription_euros_per_month ="
        " excluded.subscription_euros_per_month, periods = excluded.periods, default_period = excluded.default_period,"
        " windows = excluded.windows, export_euros_per_kwh = excluded.export_euros_per_kwh",
        (
            tariff_id,
            version.valid_from,
            version.subscription_per_month,
            json.dumps(body["periods"]),
            version.default_period,
            json.dumps(body["windows"]),
            version.export_per_kwh,
        ),
    )


def _tariff(conn: Conn, tariff_id: int) -> Tariff:
    tariff = load_tariffs(conn).get(tariff_id)
    if tariff is None:
        raise ApiError(
            404, f"no tariff with id {tariff_id}", code=ErrorCode.UNKNOWN_TARIFF, params={"tariff": tariff_id}
        )
    return tariff


def create_tariff(conn: Conn, name: str, versions: list[Version]) -> int:
    if conn.execute("SELECT 1 FROM tariffs WHERE name = %s", (name,)).fetchone():
        raise ApiError(
            409, f"a tariff named {name!r} exists already", code=ErrorCode.TARIFF_NAME_TAKEN, params={"name": name}
        )
    row = conn.execute(
        "INSERT INTO tariffs (name, kind, builtin) VALUES (%s, 'custom', false) RETURNING id", (name,)
    ).fetchone()
    assert row is not None
    for version in versions:
        save_version(conn, int(row[0]), version)
    return int(row[0])


def choose_tariff(conn: Conn, tariff_id: int, valid_from: date) -> None:
    conn.execute(
        "INSERT INTO household_tariffs (valid_from, tariff_id) VALUES (%s, %s)"
        " ON CONFLICT (valid_from) DO UPDATE SET tariff_id = excluded.tariff_id",
        (valid_from, tariff_id),
    )


def household_json(conn: Conn) -> list[ChoiceJson]:
    return [ChoiceJson(valid_from=c.valid_from, tariff_id=c.tariff_id) for c in load_choices(conn)]


@router.get("/tariffs", response_model=TariffsOut)
def list_tariffs(request: Request, user: User = Depends(current_user), conn: Conn = Depends(get_conn)) -> TariffsOut:
    """Every tariff with its dated versions, and the household's dated choice of tariff."""
    tariffs = load_tariffs(conn)
    choices = load_choices(conn)
    now = today(request)
    current = [c for c in choices if c.valid_from <= now] or list(choices[:1])
    return TariffsOut(
        tariffs=[tariff_json(t) for t in tariffs.values()],
        household=household_json(conn),
        current_tariff_id=current[-1].tariff_id,
    )


@router.post("/tariffs", response_model=TariffOut, status_code=201)
def add_tariff(body: TariffIn, user: User = Depends(admin_allowed_to_change), conn: Conn = Depends(get_conn)) -> Any:
    """A tariff of the household's own (kind ``custom``), with its versions."""
    versions: list[Version] = []
    for item in body.versions:
        if item.valid_from is None:
            raise ApiError(400, "every version needs its valid_from", code=ErrorCode.VERSION_WITHOUT_DATE)
        versions.append(checked_version(item.valid_from, item))
    if len({v.valid_from for v in versions}) != len(versions):
        raise ApiError(400, "two versions have the same valid_from", code=ErrorCode.DUPLICATE_VERSION_DATE)
    with conn.transaction():
        tariff_id = create_tariff(conn, body.name.strip(), versions)
    return tariff_json(_tariff(conn, tariff_id))


@router.put("/tariffs/{tariff_id}/versions/{valid_from}", response_model=TariffOut)
def put_version(
    tariff_id: int,
    valid_from: date,
    body: VersionIn,
    user: User = Depends(admin_allowed_to_change),
    conn: Conn = Depends(get_conn),
) -> Any:
    """Add or replace the version of a tariff that applies from ``valid_from``."""
    if body.valid_from is not None and body.valid_from != valid_from:
        raise ApiError(
            400, "valid_from in the body differs from the one in the path", code=ErrorCode.VERSION_DATE_MISMATCH
        )
    version = checked_version(valid_from, body)
    with conn.transaction():
        _tariff(conn, tariff_id)
        save_version(conn, tariff_id, version)
    return tariff_json(_tariff(conn, tariff_id))


@router.delete("/tariffs/{tariff_id}/versions/{valid_from}", response_model=TariffOut)
def delete_version(
    tariff_id: int, valid_from: date, user: User = Depends(admin_allowed_to_change), conn: Conn = Depends(get_conn)
) -> Any:
    with conn.transaction():
        tariff = _tariff(conn, tariff_id)
        if valid_from not in {v.valid_from for v in tariff.versions}:
            raise ApiError(
                404,
                f"tariff {tariff_id} has no version from {valid_from.isoformat()}",
                code=ErrorCode.UNKNOWN_VERSION,
                params={"tariff": tariff_id, "valid_from": valid_from.isoformat()},
            )
        if len(tariff.versions) == 1:
            raise ApiError(409, "a tariff keeps at least one version", code=ErrorCode.LAST_VERSION)
        conn.execute("DELETE FROM tariff_versions WHERE tariff_id = %s AND valid_from = %s", (tariff_id, valid_from))
    return tariff_json(_tariff(conn, tariff_id))


@router.put("/settings/tariff", response_model=list[ChoiceJson])
def put_household_tariff(
    body: ChoiceIn, request: Request, user: User = Depends(admin_allowed_to_change), conn: Conn = Depends(get_conn)
) -> Any:
    """The household is on this tariff from ``valid_from`` (default today); the past keeps its prices."""
    with conn.transaction():
        _tariff(conn, body.tariff_id)
        choose_tariff(conn, body.tariff_id, body.valid_from or today(request))
    return household_json(conn)


def set_own_hours(conn: Conn, windows: list[tuple[int, int]] | None, valid_from: date) -> None:
    """The night window as the one rule has it: a new version, from ``valid_from``, of the tariff the
    household is on then, with these off-peak hours ((start, end) minutes; None: none). A builtin
    tariff is not changed for everyone: a copy named "<name> (own hours)" takes the version, and
    the household switches to it from that date."""
    tariffs, choices = load_tariffs(conn), load_choices(conn)
    current = [c for c in choices if c.valid_from <= valid_from] or list(choices[:1])
    tariff = tariffs[current[-1].tariff_id]
    if tariff.builtin:
        name = f"{tariff.name} (own hours)"
        copy = next((t for t in tariffs.values() if t.name == name), None)
        if copy is None:
            copy_id = create_tariff(conn, name, list(tariff.versions))
            copy = load_tariffs(conn)[copy_id]
        choose_tariff(conn, copy.id, valid_from)
        tariff = copy
    save_version(conn, tariff.id, _with_windows(tariff.version_on(valid_from), windows or [], valid_from))


def _with_windows(version: Version, windows: list[tuple[int, int]], valid_from: date) -> Version:
    """``version`` from ``valid_from`` with these off-peak hours instead of its own windows."""
    prices = dict(version.prices)
    offpeak = next((p for p in prices if p != version.default_period), None)
    if offpeak is None:  # a single-price tariff: its off-peak hours cost the same until a price is typed
        offpeak = "offpeak"
        prices[offpeak] = prices[version.default_period]
    default = version.default_period
    own = tuple(Window(start, end, offpeak) for start, end in windows if start != end)
    if any(start == end for start, end in windows):
        default, own = offpeak, ()  # start = end: the legacy "always night"
    return Version(valid_from, version.subscription_per_month, prices, default, own, version.export_per_kwh)


# -- Tempo days ------------------------------------------------------------------------------------
@router.get("/tempo", response_model=list[TempoDay])
def tempo_days(
    start: date = Query(..., description="first local date"),
    end: date | None = Query(None, description="last local date, included (default: start)"),
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> list[TempoDay]:
    """The Tempo colours known for these days (a day without one is priced as blue)."""
    last = end or start
    if last < start or (last - start).days > MAX_TEMPO_DAYS:
        raise ApiError(
            400,
            f"end must be on or after start, at most {MAX_TEMPO_DAYS} days later",
            code=ErrorCode.TEMPO_RANGE,
            params={"max_days": MAX_TEMPO_DAYS},
        )
    rows = conn.execute(
        "SELECT day, colour, source FROM tempo_days WHERE day BETWEEN %s AND %s ORDER BY day", (start, last)
    ).fetchall()
    return [TempoDay(day=r[0], colour=r[1], source=r[2]) for r in rows]


@router.put("/tempo/{day}", response_model=TempoDay)
def put_tempo_day(
    day: date,
    body: TempoIn,
    request: Request,
    user: User = Depends(admin_allowed_to_change),
    conn: Conn = Depends(get_conn),
) -> TempoDay:
    """Set a day's Tempo colour (announced the day before); also published, retained, on
    ``citizenwatt/_household/tempo/<day>`` for Home Assistant and Node-RED."""
    colour = body.colour.strip().lower()
    if colour not in COLOURS:
        raise ApiError(
            400,
            f"colour must be one of {', '.join(COLOURS)}",
            code=ErrorCode.INVALID_COLOUR,
            params={"colours": ", ".join(COLOURS)},
        )
    store_colour(conn, day, colour, "api")
    row = conn.execute("SELECT colour, source FROM tempo_days WHERE day = %s", (day,)).fetchone()
    assert row is not None
    publisher: RadioConfigPublisher | None = request.app.state.radio_publisher
    delivered = None
    if publisher is not None:
        topic = tempo_topic(request.app.state.settings.base_topic, day)
        delivered = publisher.publish_retained(topic, colour.encode())
    return TempoDay(day=day, colour=row[0], source=row[1], delivered=delivered)
