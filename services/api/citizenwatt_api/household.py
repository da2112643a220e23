"""Household settings in the modern API: provider and tariff, night window, nRF24 radio settings."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, ValidationError, field_validator

from citizenwatt_common.contract import SENSOR_ID_PATTERN, Nrf24Config
from citizenwatt_common.night import format_hhmm, parse_hhmm

from . import queries
from .auth import ApiError, User, admin_allowed_to_change, current_user
from .db import get_conn
from .errors import ErrorCode
from .radio_config import RadioConfigPublisher
from .tariffs import set_own_hours, today
from .v2 import ONLINE_SECONDS

router = APIRouter(prefix="/api/v2/settings", tags=["settings"])
Conn = psycopg.Connection[Any]


class ProviderOut(BaseModel):
    id: int
    name: str
    day_euros_per_kwh: float
    night_euros_per_kwh: float
    day_subscription_euros_per_month: float
    night_subscription_euros_per_month: float


class NightWindowIn(BaseModel):
    start: str = Field(description="local time HH:MM when the night price starts", examples=["22:00"])
    end: str = Field(description="local time HH:MM when it ends (before start: the next morning)", examples=["06:00"])

    @field_validator("start", "end")
    @classmethod
    def _time_of_day(cls, text: str) -> str:
        return format_hhmm(parse_hhmm(text))


class RadioOut(BaseModel):
    sensor: str = Field(description="the nRF24 collector's sensor id (CW_SENSOR_ID)")
    address: str = Field(description="pipe address, hexadecimal")
    key_set: bool
    updated_at: float


class RadioIn(BaseModel):
    sensor: str = Field(pattern=f"^{SENSOR_ID_PATTERN}$", examples=["citizenwatt"])
    aes_key: str = Field(description="32 hex digits, or 16 numbers 0-255 joined by '-'")
    address: str = Field(description="40-bit pipe address in hexadecimal", examples=["0xE056D446D0"])


class RadioSaved(BaseModel):
    sensor: str
    address: str
    delivered: bool = Field(description="the broker took it now; otherwise it is sent when the api reconnects")


class HouseholdSettings(BaseModel):
    provider_id: int | None
    providers: list[ProviderOut]
    night_window: NightWindowIn | None
    timezone: str
    radios: list[RadioOut]
    online_seconds: int = Field(description="a sensor unheard of for this long is offline and left out of live totals")


class ProviderChoice(BaseModel):
    provider_id: int


def _radios(conn: Conn) -> list[RadioOut]:
    rows = conn.execute(
        "SELECT sensor_key, address, extract(epoch FROM updated_at)::float8 FROM radio_configs ORDER BY sensor_key"
    ).fetchall()
    return [RadioOut(sensor=r[0], address=f"0x{int(r[1]):010X}", key_set=True, updated_at=r[2]) for r in rows]


@router.get("", response_model=HouseholdSettings)
def read_settings(request: Request, user: User = Depends(current_user), conn: Conn = Depends(get_conn)) -> Any:
    """Everything the settings page shows. The AES key itself is never sent back."""
    row = conn.execute("SELECT night_start_minute, night_end_minute FROM household").fetchone()
    window = None
    if row is not None and row[0] is not None:
        window = NightWindowIn(start=format_hhmm(row[0]), end=format_hhmm(row[1]))
    return HouseholdSettings(
        provider_id=queries.current_provider_id(conn),
        providers=[
            ProviderOut(
                id=p.id,
                name=p.name,
                day_euros_per_kwh=p.day_slope,
                night_euros_per_kwh=p.night_slope,
                day_subscription_euros_per_month=p.day_constant,
                night_subscription_euros_per_month=p.night_constant,
            )
            for p in queries.providers(conn)
        ],
        night_window=window,
        timezone=str(request.app.state.settings.zone),
        radios=_radios(conn),
        online_seconds=ONLINE_SECONDS,
    )


@router.put("/provider", response_model=ProviderChoice)
def choose_provider(
    body: ProviderChoice, user: User = Depends(admin_allowed_to_change), conn: Conn = Depends(get_conn)
) -> ProviderChoice:
    if conn.execute("SELECT 1 FROM energy_providers WHERE id = %s", (body.provider_id,)).fetchone() is None:
        provider = body.provider_id
        raise ApiError(404, f"No provider {provider}", code=ErrorCode.UNKNOWN_PROVIDER, params={"provider": provider})
    conn.execute("UPDATE household SET provider_id = %s", (body.provider_id,))
    return body


@router.put("/night-window", response_model=NightWindowIn | None)
def set_night_window(
    request: Request,
    body: NightWindowIn | None = None,
    valid_from: date | None = Query(None, description="local date the new hours apply from (default: today)"),
    user: User = Depends(admin_allowed_to_change),
    conn: Conn = Depends(get_conn),
) -> NightWindowIn | None:
    """Off-peak hours, by the one rule for prices and hours: a new version, from ``valid_from``
    (today by default), of the household's tariff (of a copy, "<name> (own hours)", for a seeded
    one); costs before that date keep the hours they had. Readings stored from now on are also
    tagged with this window (the legacy API's day/night flag).

    An empty body (or ``null``) removes the window: every minute at the tariff's default price.
    """
    start = valid_from or today(request)
    with conn.transaction():
        if body is None:
            conn.execute("UPDATE household SET night_start_minute = NULL, night_end_minute = NULL")
            set_own_hours(conn, None, start)
            return None
        first, last = parse_hhmm(body.start), parse_hhmm(body.end)
        conn.execute("UPDATE household SET night_start_minute = %s, night_end_minute = %s", (first, last))
        set_own_hours(conn, [(first, last)], start)
    return body


@router.put("/radio", response_model=RadioSaved)
def save_radio(
    body: RadioIn,
    request: Request,
    user: User = Depends(admin_allowed_to_change),
    conn: Conn = Depends(get_conn),
) -> RadioSaved:
    """Save an nRF24 collector's AES key and pipe address and hand them to it over MQTT (retained)."""
    try:
        config = Nrf24Config(aes_key=body.aes_key, address=int(body.address.strip(), 16))
    except (ValueError, ValidationError) as exc:
        raise ApiError(
            400,
            f"aes_key or address refused: {_first_error(exc)}",
            code=ErrorCode.INVALID_RADIO_CONFIG,
            params={"detail": _first_error(exc)},
        ) from None
    conn.execute(
        "INSERT INTO radio_configs (sensor_key, aes_key, address) VALUES (%s, %s, %s)"
        " ON CONFLICT (sensor_key) DO UPDATE SET aes_key = excluded.aes_key, address = excluded.address,"
        " updated_at = now()",
        (body.sensor, config.aes_key, config.address),
    )
    publisher: RadioConfigPublisher | None = request.app.state.radio_publisher
    delivered = publisher.publish(body.sensor, config) if publisher else False
    return RadioSaved(sensor=body.sensor, address=f"0x{config.address:010X}", delivered=delivered)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return str(first.get("msg", "invalid"))
    return str(exc)
