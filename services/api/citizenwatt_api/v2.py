"""The modern API (``/api/v2``): sensors with their health, calendar energy in a time zone, live stream.

Typed responses (so they are documented in /docs), ISO dates, explicit time zones; the same
authentication as the legacy paths.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, TypeAdapter

from citizenwatt_common.store import load_household

from .auth import ApiError, User, current_user, current_user_for_stream
from .db import get_conn
from .errors import ErrorCode
from .limits import heavy_when, many_counted
from .live_hub import LiveHub

router = APIRouter(prefix="/api/v2", tags=["v2"])
Conn = psycopg.Connection[Any]
Bucket = Literal["hour", "day", "week", "month"]
# A sensor that has not been heard from for this long is shown offline.
ONLINE_SECONDS = 120


class Sensor(BaseModel):
    id: int
    key: str
    name: str
    kind: str
    online: bool
    last_seen: float | None
    power: float | None
    battery: float | None
    readings_today: int
    # A simulator's readings (its live ones and the history it publishes on a first start) are
    # made up: the page says so.
    simulated: bool
    # It has reported negative power (export, e.g. solar panels) at least once: the page shows its
    # energy imported, exported and net.
    exports: bool


class EnergyBucket(BaseModel):
    start: datetime
    end: datetime
    # kwh, day_kwh and night_kwh are net energy (export counts negative), as they always were.
    # euros is what the energy cost at the tariff versions in force (imported energy priced,
    # export credited, no subscription), as /api/v2/costs has it; day_euros is the part in each
    # version's default period, night_euros the rest (its windows). import_kwh and export_kwh are
    # each direction, both >= 0, and net_kwh = import_kwh - export_kwh = kwh.
    kwh: float | None
    day_kwh: float | None
    night_kwh: float | None
    import_kwh: float | None
    export_kwh: float | None
    net_kwh: float | None
    euros: float | None
    day_euros: float | None
    night_euros: float | None
    mean_watts: float | None


class EnergyReport(BaseModel):
    sensor: int | Literal["all"]
    timezone: str
    bucket: Bucket
    buckets: list[EnergyBucket]
    total_kwh: float
    total_import_kwh: float
    total_export_kwh: float
    total_net_kwh: float
    total_euros: float | None


@router.get("/sensors", response_model=list[Sensor])
def sensors(request: Request, user: User = Depends(current_user), conn: Conn = Depends(get_conn)) -> list[Sensor]:
    zone: ZoneInfo = request.app.state.settings.zone
    midnight = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = conn.execute(
        """
        SELECT s.id, s.key, s.name, s.kind, extract(epoch FROM s.last_seen)::float8, last.power, last.battery,
               (SELECT count(*) FROM readings r WHERE r.sensor_id = s.id AND r.ts >= %s), s.exports
        FROM sensors s
        LEFT JOIN LATERAL (SELECT power, battery FROM readings r WHERE r.sensor_id = s.id
                           ORDER BY ts DESC LIMIT 1) AS last ON true
        ORDER BY s.id
        """,
        (midnight,),
    ).fetchall()
    now = time.time()
    return [
        Sensor(
            id=r[0],
            key=r[1],
            name=r[2],
            kind=r[3],
            last_seen=r[4],
            power=r[5],
            battery=r[6],
            readings_today=int(r[7]),
            online=r[4] is not None and now - float(r[4]) < ONLINE_SECONDS,
            simulated=r[3] == "simulator",
            exports=bool(r[8]),
        )
        for r in rows
    ]


def _zone(name: str | None, default: ZoneInfo) -> ZoneInfo:
    if not name:
        return default
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(
            400, f"unknown time zone {name!r}", code=ErrorCode.UNKNOWN_TIME_ZONE, params={"zone": name}
        ) from None


def calendar_buckets(first: date, bucket: Bucket, count: int, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """``count`` consecutive local calendar periods from ``first`` (a week starts on Monday)."""
    if bucket == "week":
        first -= timedelta(days=first.weekday())
    if bucket == "month":
        first = first.replace(day=1)
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    edges = [start]
    for _ in range(count):
        current = edges[-1]
        if bucket == "hour":
            # Step in real time, not wall time: a DST day has 23 or 25 hourly buckets.
            nxt = (current.astimezone(ZoneInfo("UTC")) + timedelta(hours=1)).astimezone(zone)
        elif bucket == "day":
            nxt = datetime.combine(current.date() + timedelta(days=1), datetime.min.time(), zone)
        elif bucket == "week":
            nxt = datetime.combine(current.date() + timedelta(days=7), datetime.min.time(), zone)
        else:
            year, month = (current.year + 1, 1) if current.month == 12 else (current.year, current.month + 1)
            nxt = datetime(year, month, 1, tzinfo=zone)
        edges.append(nxt)
    return list(itertools.pairwise(edges))


@router.get("/energy", response_model=EnergyReport, dependencies=[heavy_when(many_counted)])
def energy(
    request: Request,
    sensor: str = Query("all", description="a sensor id, or 'all' for the household total"),
    start: date = Query(..., description="local date of the first bucket (ISO, e.g. 2026-11-24)"),
    bucket: Bucket = Query("day"),
    count: int = Query(1, ge=1, le=1000, description="number of buckets"),
    tz: str | None = Query(None, description="IANA time zone (default: the household's)"),
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> Response:
    zone = _zone(tz, request.app.state.settings.zone)
    if sensor == "all":
        sensor_ids = [int(r[0]) for r in conn.execute("SELECT id FROM sensors ORDER BY id").fetchall()]
    else:
        try:
            sensor_ids = [int(sensor)]
        except ValueError:
            raise ApiError(400, "sensor must be an integer id or 'all'", code=ErrorCode.INVALID_SENSOR) from None
    try:
        periods = calendar_buckets(start, bucket, count, zone)
    except (OverflowError, ValueError):
        raise ApiError(400, "start and count reach outside the calendar", code=ErrorCode.OUTSIDE_CALENDAR) from None
    max_gap = load_household(conn).max_gap_seconds
    # Energy and euros from the tariff versions in force (costs.py): every bucket cut where the price
    # changes, all sensors and pieces summed by one database pass. Euros are the energy's cost
    # (import priced, export credited), no subscription: the figures /api/v2/costs shows.
    from .costs import bucket_costs  # costs builds on this module's calendar

    household_zone = request.app.state.settings.zone  # tariff hours are the household's wall clock
    costed = bucket_costs(conn, sensor_ids, periods, household_zone, max_gap, subscription=False)
    # Built as plain data and serialised once, by pydantic-core, in the EnergyReport's shape (its
    # fields, in its order; response_model stays, for the documentation): models for 365 buckets,
    # then FastAPI's validation of the report against response_model, cost a year by day 6 ms.
    buckets: list[dict[str, Any]] = []
    total_kwh = total_import_kwh = total_export_kwh = total_euros = 0.0
    for cost in costed:
        e = cost.energy
        # Energy.mean_power()[0] and Energy.is_empty, inlined (the same arithmetic): 0.5 ms a year.
        seconds, total_wh = e.day_seconds + e.night_seconds, e.day_wh + e.night_wh
        if seconds < 1e-6:
            buckets.append({"start": cost.start, "end": cost.end, **_NO_ENERGY, "mean_watts": None})
            continue
        mean_watts = total_wh * 3600 / seconds
        kwh, import_kwh, export_kwh = total_wh / 1000, e.import_wh / 1000, e.export_wh / 1000
        euros = float(cost.energy_euros)
        buckets.append(
            {
                "start": cost.start,
                "end": cost.end,
                "kwh": kwh,
                "day_kwh": e.day_wh / 1000,
                "night_kwh": e.night_wh / 1000,
                "import_kwh": import_kwh,
                "export_kwh": export_kwh,
                "net_kwh": kwh,
                "euros": euros,
                "day_euros": float(cost.day_euros),
                "night_euros": float(cost.night_euros),
                "mean_watts": mean_watts,
            }
        )
        total_kwh += kwh
        total_import_kwh += import_kwh
        total_export_kwh += export_kwh
        total_euros += euros
    report = {
        "sensor": "all" if sensor == "all" else int(sensor),
        "timezone": str(zone),
        "bucket": bucket,
        "buckets": buckets,
        "total_kwh": total_kwh,
        "total_import_kwh": total_import_kwh,
        "total_export_kwh": total_export_kwh,
        "total_net_kwh": total_kwh,
        "total_euros": total_euros,
    }
    return Response(_ANY_JSON.dump_json(report), media_type="application/json")


_NO_ENERGY = dict.fromkeys(
    ("kwh", "day_kwh", "night_kwh", "import_kwh", "export_kwh", "net_kwh", "euros", "day_euros", "night_euros")
)
_ANY_JSON: TypeAdapter[Any] = TypeAdapter(Any)


# With no reading to send for this long, the stream sends a ``heartbeat`` event: the page's watchdog
# reconnects when it hears nothing at all for a while (a frozen api, a dead proxy). An event and not
# an SSE comment line, because EventSource never shows comments to the page.
LIVE_HEARTBEAT_SECONDS = 3.0


class LiveReading(BaseModel):
    sensor: int
    ts: float
    power: float
    rate: Literal["day", "night"]


@router.get("/readings", response_model=list[LiveReading])
def readings(
    sensor: str = Query("all", description="a sensor id, or 'all'"),
    since: float = Query(..., description="Unix time of the oldest reading wanted"),
    limit: int = Query(3600, ge=1, le=20_000, description="at most this many, the newest ones"),
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> list[LiveReading]:
    """Raw readings since a time, oldest first: what the live graph starts from before the stream."""
    if not math.isfinite(since):
        raise ApiError(400, "since must be a finite Unix time", code=ErrorCode.INVALID_SINCE)
    where, params = "r.ts >= to_timestamp(%s)", [since]
    if sensor != "all":
        try:
            params.append(int(sensor))
        except ValueError:
            raise ApiError(400, "sensor must be an integer id or 'all'", code=ErrorCode.INVALID_SENSOR) from None
        where += " AND r.sensor_id = %s"
    rows = conn.execute(
        "SELECT * FROM (SELECT r.sensor_id, extract(epoch FROM r.ts)::float8 AS ts, r.power, r.night_rate"
        f" FROM readings r WHERE {where} ORDER BY r.ts DESC LIMIT %s) newest ORDER BY ts",
        (*params, limit),
    ).fetchall()
    return [LiveReading(sensor=r[0], ts=r[1], power=r[2], rate="night" if r[3] else "day") for r in rows]


@router.get(
    "/live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}},
)
async def live(request: Request, user: User = Depends(current_user_for_stream)) -> StreamingResponse:
    """Server-sent events: one ``reading`` event per new reading of any sensor measured in the last
    day, checked every second; the first event is the newest reading of that day. After
    LIVE_HEARTBEAT_SECONDS without one, a ``heartbeat`` event (data: the server's Unix time). A client
    too slow to take the readings is disconnected (its EventSource reconnects after the ``retry``
    delay, from the newest reading)."""
    hub: LiveHub = request.app.state.live_hub

    async def events() -> AsyncIterator[str]:
        # Every open page reads the same hub (live_hub.py): no database connection is held here,
        # and leaving (the client disconnecting cancels this generator) frees the queue at once.
        async with hub.subscribe() as stream:
            yield "retry: 2000\n\n"
            while True:
                try:
                    text = await asyncio.wait_for(stream.queue.get(), LIVE_HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield f"event: heartbeat\ndata: {json.dumps({'now': time.time()})}\n\n"
                    continue
                if text is None:  # too far behind, or the api is stopping
                    return
                yield text

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
