"""Every path of the legacy CitizenWatt API, same parameters, shapes and status codes.

Path parameters are taken as text and parsed here, so a malformed one gets the legacy
``400 Invalid parameters`` rather than a framework-specific error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from fastapi import APIRouter, Depends, Request, Response
from pydantic import TypeAdapter

from citizenwatt_common.energy import EMPTY_SECONDS, Energy
from citizenwatt_common.night import format_hhmm
from citizenwatt_common.store import Household, delete_readings, insert_reading, load_household

from . import queries
from .auth import ApiError, User, current_user, user_allowed_to_change
from .db import get_conn
from .errors import ErrorCode
from .limits import heavy_when, many_legacy_buckets
from .queries import Measure, Provider

router = APIRouter(prefix="/api", tags=["legacy"])
Handler = TypeVar("Handler", bound=Callable[..., Any])


def get_and_post(path: str, dependencies: Sequence[Any] = ()) -> Callable[[Handler], Handler]:
    """Every legacy read answers GET (session cookie) and POST (login/password form fields).

    Registered as two operations with their own ids, so the OpenAPI schema stays unambiguous.
    """

    def register(handler: Handler) -> Handler:
        for method in ("GET", "POST"):
            operation = f"{handler.__name__}_{method.lower()}"
            router.add_api_route(path, handler, methods=[method], operation_id=operation, dependencies=dependencies)
        return handler

    return register


Conn = psycopg.Connection[Any]
UNITS = ("watts", "kwatthours", "euros")


def invalid() -> ApiError:
    return ApiError(400, "Invalid parameters")


def as_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise invalid() from None


# 9999-12-31T23:59:59Z: past it no timestamp is storable (and a 400-digit one is not even a float).
LAST_STORABLE_SECOND = 253_402_300_799


def as_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise invalid() from None
    if not math.isfinite(value):
        raise invalid()
    return value


def as_unit(text: str) -> str:
    if text not in UNITS:
        raise invalid()
    return text


# A by_time call may answer 10 000 buckets: serialised once, by pydantic-core, that takes 4 ms;
# returned as a dict, FastAPI's validation and encoding took 25 ms more.
_ANY_JSON: TypeAdapter[Any] = TypeAdapter(Any)


def measure_envelope(request: Request, conn: Conn, data: Any) -> Response:
    household = load_household(conn)
    zone = request.app.state.settings.zone
    rate = None
    if household.night_window is not None:
        rate = "night" if household.night_window.is_night(time.time(), zone) else "day"
    return Response(_ANY_JSON.dump_json({"data": data, "rate": rate}), media_type="application/json")


def energy_json(energy: Energy | None) -> dict[str, float] | None:
    if energy is None or energy.is_empty:
        return None
    return {"value": energy.total_wh / 1000, "day_rate": energy.day_wh / 1000, "night_rate": energy.night_wh / 1000}


def power_json(energy: Energy | None) -> dict[str, float] | None:
    """A group's mean power, and each tariff's share of it: that tariff's energy over the same time
    as ``value``, so that ``day_rate + night_rate == value`` (0 for a tariff absent from the group).
    This is what the original answered and what legacy scripts that add the parts rely on; the mean
    power during each tariff's own hours is another figure, left to the v2 API."""
    if energy is None:
        return None
    # Energy.is_empty and then Energy.mean_power's first figure, written out: 10 000 buckets
    # spent 60 ms in the three means it computes and the properties.
    seconds = energy.day_seconds + energy.night_seconds
    if seconds < EMPTY_SECONDS:
        return None
    return {
        "value": energy.total_wh * 3600 / seconds,
        "day_rate": energy.day_wh * 3600 / seconds,
        "night_rate": energy.night_wh * 3600 / seconds,
    }


def cost_json(energy: Energy | None, provider: Provider | None) -> dict[str, float] | None:
    if energy is None or energy.is_empty or provider is None:
        return None
    day, night = provider.cost(energy)
    return {"value": day + night, "day_rate": day, "night_rate": night}


def in_unit(unit: str, energy: Energy | None, provider: Provider | None, grouped: bool) -> Any:
    if unit == "kwatthours":
        return energy_json(energy)
    if unit == "euros":
        return cost_json(energy, provider)
    return power_json(energy) if grouped else None


# -- sensors, types, time ------------------------------------------------------------------------
@get_and_post("/sensors")
def sensors(user: User = Depends(current_user), conn: Conn = Depends(get_conn)) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT s.id, s.name, t.name, s.type_id FROM sensors s JOIN measure_types t ON t.id = s.type_id ORDER BY s.id"
    ).fetchall()
    data = [{"id": r[0], "name": r[1], "type": r[2], "type_id": r[3]} for r in rows]
    return {"data": data or None}


@get_and_post("/sensors/{sensor_id}")
def sensor(sensor_id: str, user: User = Depends(current_user), conn: Conn = Depends(get_conn)) -> dict[str, Any]:
    row = conn.execute(
        "SELECT s.id, s.name, t.name, s.type_id FROM sensors s JOIN measure_types t ON t.id = s.type_id"
        " WHERE s.id = %s",
        (as_int(sensor_id),),
    ).fetchone()
    return {"data": {"id": row[0], "name": row[1], "type": row[2], "type_id": row[3]} if row else None}


@get_and_post("/types")
def types(user: User = Depends(current_user), conn: Conn = Depends(get_conn)) -> dict[str, Any]:
    rows = conn.execute("SELECT id, name FROM measure_types ORDER BY id").fetchall()
    return {"data": [{"id": r[0], "name": r[1]} for r in rows] or None}


@get_and_post("/time")
def server_time(user: User = Depends(current_user)) -> dict[str, Any]:
    return {"data": time.time()}


# -- measures by id ---------------------------------------------------------------------------------
@get_and_post("/{sensor}/get/{unit}/by_id/{id1}")
def get_by_id(
    request: Request,
    sensor: str,
    unit: str,
    id1: str,
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> Response:
    sensor_id, measure_id = as_int(sensor), as_int(id1)
    if as_unit(unit) != "watts":
        raise invalid()
    found = queries.measure_by_id(conn, sensor_id, measure_id)
    return measure_envelope(request, conn, found.as_legacy() if found else None)


def _id_range(request: Request, sensor: str, id1: str, id2: str, strict: bool) -> tuple[int, int, int]:
    sensor_id, first, end = as_int(sensor), as_int(id1), as_int(id2)
    if (first < 0 < end) or (end < 0 < first) or end < first or (strict and end == first):
        raise invalid()
    if end - first > request.app.state.settings.max_returned_values:
        limit = request.app.state.settings.max_returned_values
        raise ApiError(
            403, f"Too many values: at most {limit}", code=ErrorCode.TOO_MANY_VALUES, params={"limit": limit}
        )
    return sensor_id, first, end


@get_and_post("/{sensor}/get/{unit}/by_id/{id1}/{id2}")
def get_by_id_range(
    request: Request,
    sensor: str,
    unit: str,
    id1: str,
    id2: str,
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> Response:
    unit = as_unit(unit)
    sensor_id, first, end = _id_range(request, sensor, id1, id2, strict=False)
    found = queries.measures_by_ids(conn, sensor_id, first, end)
    if not found:
        return measure_envelope(request, conn, None)
    if unit == "watts":
        return measure_envelope(request, conn, [m.as_legacy() for m in found])
    household = load_household(conn)
    energy = queries.energy_of_groups(found, len(found), household.max_gap_seconds)[0]
    data = in_unit(unit, energy, queries.current_provider(conn), grouped=False)
    if data is None and unit != "watts":
        data = {"value": 0.0, "day_rate": 0.0, "night_rate": 0.0}
    return measure_envelope(request, conn, data)


@get_and_post("/{sensor}/get/{unit}/by_id/{id1}/{id2}/{step}")
def get_by_id_groups(
    request: Request,
    sensor: str,
    unit: str,
    id1: str,
    id2: str,
    step: str,
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> Response:
    unit = as_unit(unit)
    sensor_id, first, end = _id_range(request, sensor, id1, id2, strict=True)
    size = as_int(step)
    if size <= 0:
        raise invalid()
    found = queries.measures_by_ids(conn, sensor_id, first, end)
    if not found:
        return measure_envelope(request, conn, None)
    household = load_household(conn)
    groups = queries.energy_of_groups(found, size, household.max_gap_seconds)
    provider = queries.current_provider(conn)
    return measure_envelope(request, conn, [in_unit(unit, g, provider, grouped=True) for g in groups])


# -- measures by time -------------------------------------------------------------------------------
@get_and_post("/{sensor}/get/{unit}/by_time/{t1}")
def get_by_time(
    request: Request,
    sensor: str,
    unit: str,
    t1: str,
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> Response:
    sensor_id, at = as_int(sensor), as_float(t1)
    if as_unit(unit) != "watts" or at < 0:
        raise invalid()
    found = queries.measure_at(conn, sensor_id, at)
    return measure_envelope(request, conn, found.as_legacy() if found else None)


@get_and_post("/{sensor}/get/{unit}/by_time/{t1}/{t2}")
def get_by_time_range(
    request: Request,
    sensor: str,
    unit: str,
    t1: str,
    t2: str,
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> Response:
    unit = as_unit(unit)
    sensor_id, start, end = as_int(sensor), as_float(t1), as_float(t2)
    if start < 0 or end < start:
        raise invalid()
    if unit == "watts":
        limit = request.app.state.settings.max_returned_values * 100
        found = queries.measures_between(conn, sensor_id, start, end, limit)
        return measure_envelope(request, conn, [m.as_legacy() for m in found] or None)
    household = load_household(conn)
    energy = queries.energy_in_intervals(conn, sensor_id, [(start, end)], household.max_gap_seconds)[0]
    return measure_envelope(request, conn, in_unit(unit, energy, queries.current_provider(conn), grouped=False))


@get_and_post("/{sensor}/get/{unit}/by_time/{t1}/{t2}/{step}", [heavy_when(many_legacy_buckets)])
def get_by_time_buckets(
    request: Request,
    sensor: str,
    unit: str,
    t1: str,
    t2: str,
    step: str,
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> Response:
    unit = as_unit(unit)
    sensor_id, start, end, width = as_int(sensor), as_float(t1), as_float(t2), as_float(step)
    if start < 0 or end < 0 or width <= 0 or end < start:
        raise invalid()
    limit = request.app.state.settings.max_buckets
    ratio = (end - start) / width  # infinite for a subnormal step such as 1e-320
    if not ratio <= limit:
        asked = f"{math.ceil(ratio)} asked" if math.isfinite(ratio) else "too many asked"
        raise ApiError(
            400,
            f"Too many buckets: {asked}, at most {limit}; use a larger step",
            code=ErrorCode.TOO_MANY_BUCKETS,
            params={"limit": limit},
        )
    count = math.ceil(ratio)
    buckets = [(start + k * width, min(start + (k + 1) * width, end)) for k in range(count)]
    household = load_household(conn)
    energies = queries.energy_in_intervals(conn, sensor_id, buckets, household.max_gap_seconds)
    provider = queries.current_provider(conn)
    return measure_envelope(request, conn, [in_unit(unit, e, provider, grouped=True) for e in energies])


# -- deleting and inserting: POST only --------------------------------------------------------------
def _refuse_get() -> ApiError:
    return ApiError(405, "This route changes data: use POST (with login and password, or from CitizenWatt's pages)")


def _delete(conn: Conn, sensor_id: int, measures: list[Measure]) -> int | None:
    if not measures:
        return None
    # Their time range tells TimescaleDB which chunks and compressed batches hold them.
    between = (min(m.timestamp for m in measures), max(m.timestamp for m in measures))
    with conn.transaction():
        deleted = delete_readings(conn, sensor_id, [m.id for m in measures], between=between)
    return deleted or None


@router.get("/{sensor}/delete/{selector}/{a}", include_in_schema=False)
@router.get("/{sensor}/delete/{selector}/{a}/{b}", include_in_schema=False)
@router.get("/{sensor}/insert/{value}/{timestamp}/{night_rate}", include_in_schema=False)
def refuse_changes_by_get() -> None:
    raise _refuse_get()


@router.post("/{sensor}/delete/by_id/{id1}")
def delete_by_id(
    request: Request,
    sensor: str,
    id1: str,
    user: User = Depends(user_allowed_to_change),
    conn: Conn = Depends(get_conn),
) -> Response:
    sensor_id = as_int(sensor)
    found = queries.measure_by_id(conn, sensor_id, as_int(id1))
    return measure_envelope(request, conn, _delete(conn, sensor_id, [found] if found else []))


@router.post("/{sensor}/delete/by_id/{id1}/{id2}")
def delete_by_id_range(
    request: Request,
    sensor: str,
    id1: str,
    id2: str,
    user: User = Depends(user_allowed_to_change),
    conn: Conn = Depends(get_conn),
) -> Response:
    sensor_id, first, end = _id_range(request, sensor, id1, id2, strict=False)
    found = queries.measures_by_ids(conn, sensor_id, first, end)
    return measure_envelope(request, conn, _delete(conn, sensor_id, found))


@router.post("/{sensor}/delete/by_time/{t1}")
def delete_by_time(
    request: Request,
    sensor: str,
    t1: str,
    user: User = Depends(user_allowed_to_change),
    conn: Conn = Depends(get_conn),
) -> Response:
    sensor_id, at = as_int(sensor), as_float(t1)
    if at < 0:
        raise invalid()
    found = queries.measure_at(conn, sensor_id, at)
    return measure_envelope(request, conn, _delete(conn, sensor_id, [found] if found else []))


@router.post("/{sensor}/delete/by_time/{t1}/{t2}")
def delete_by_time_range(
    request: Request,
    sensor: str,
    t1: str,
    t2: str,
    user: User = Depends(user_allowed_to_change),
    conn: Conn = Depends(get_conn),
) -> Response:
    sensor_id, start, end = as_int(sensor), as_float(t1), as_float(t2)
    if start < 0 or end < start:
        raise invalid()
    found = queries.measures_between(conn, sensor_id, start, end)
    return measure_envelope(request, conn, _delete(conn, sensor_id, found))


@router.post("/{sensor}/insert/{value}/{timestamp}/{night_rate}")
def insert(
    request: Request,
    sensor: str,
    value: str,
    timestamp: str,
    night_rate: str,
    user: User = Depends(user_allowed_to_change),
    conn: Conn = Depends(get_conn),
) -> Response:
    sensor_id, power, at, night = as_int(sensor), as_float(value), as_int(timestamp), as_int(night_rate)
    if not 0 <= at <= LAST_STORABLE_SECOND or abs(power) > 1_000_000:
        raise invalid()
    if not queries.sensor_exists(conn, sensor_id):
        return measure_envelope(request, conn, False)
    with conn.transaction():
        stored = insert_reading(conn, sensor_id, float(at), power, night != 0)
    return measure_envelope(request, conn, stored)


# -- providers and prices -----------------------------------------------------------------------------
def provider_json(provider: Provider, current_id: int | None, household: Household) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": provider.id,
        "name": provider.name,
        "type_id": provider.type_id,
        "day_slope_watt_euros": provider.day_slope,
        "day_constant_watt_euros": provider.day_constant,
        "night_slope_watt_euros": provider.night_slope,
        "night_constant_watt_euros": provider.night_constant,
        "current": int(provider.id == current_id),
        "threshold": provider.threshold,
    }
    window = household.night_window
    if window is not None and (provider.day_slope, provider.day_constant) != (
        provider.night_slope,
        provider.night_constant,
    ):
        data["start_night_rate"] = format_hhmm(window.start_minute)
        data["end_night_rate"] = format_hhmm(window.end_minute)
    return data


@get_and_post("/energy_providers")
def energy_providers(user: User = Depends(current_user), conn: Conn = Depends(get_conn)) -> dict[str, Any]:
    household, current_id = load_household(conn), queries.current_provider_id(conn)
    return {"data": [provider_json(p, current_id, household) for p in queries.providers(conn)] or None}


def _provider(conn: Conn, which: str) -> Provider | None:
    wanted = queries.current_provider_id(conn) if which == "current" else as_int(which)
    return next((p for p in queries.providers(conn) if p.id == wanted), None)


@get_and_post("/energy_providers/{which}")
def energy_provider(which: str, user: User = Depends(current_user), conn: Conn = Depends(get_conn)) -> dict[str, Any]:
    provider = _provider(conn, which)
    if provider is None:
        return {"data": None}
    return {"data": provider_json(provider, queries.current_provider_id(conn), load_household(conn))}


@get_and_post("/{which}/watt_to_euros/{tariff}/{consumption}")
def watt_to_euros(
    which: str,
    tariff: str,
    consumption: str,
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> dict[str, Any]:
    kwh = as_float(consumption)
    if tariff not in ("day", "night"):
        raise invalid()
    provider = _provider(conn, which)
    if provider is None:
        return {"data": None}
    if tariff == "day":
        return {"data": provider.day_constant + provider.day_slope * kwh}
    return {"data": provider.night_constant + provider.night_slope * kwh}
