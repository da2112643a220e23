"""CSV export (``/api/v2/export/...``): raw readings and energy/cost per calendar bucket, streamed.

A year of one sensor's 8-second readings is about 4 million rows (some 300 MB of CSV), so nothing
here holds a whole export in memory, and nothing holds a pooled connection for the length of a
download: a phone on Wi-Fi may take minutes to read it, and the api has only ``CW_POOL_SIZE``
(4) connections for everyone.

- Readings are read in pages of ``READINGS_PAGE`` rows by keyset (``ts > last ts of the page
  before``, on the (sensor, ts) primary key), each page on a connection borrowed from the pool
  and given back before the page is written out. A server-side cursor would bound memory just
  as well, but it keeps its connection and an open transaction (a snapshot that also holds back
  vacuum) for as long as the client takes to read; pages cost one index descent each and give
  the connection back between them. Several sensors ("all") are merged in time order from one
  page stream per sensor, so memory stays at one page per sensor.
- Energy buckets are computed ``ENERGY_PAGE`` buckets at a time by ``queries.energy_in_intervals``
  (exact, the same arithmetic as ``/api/v2/energy``), also on a borrowed connection per page.

Every parameter is checked before the first byte is sent, so a bad one is a ``400`` with its
reason; once streaming has started the status is already ``200`` and a failure can only cut the
download short (a CSV without its final newline-terminated row).

Timestamps are written twice: ISO 8601 in the household's zone (or ``tz``) with its UTC offset,
so a DST day's repeated hour stays unambiguous, and Unix seconds.
"""

from __future__ import annotations

import csv
import heapq
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from psycopg_pool import ConnectionPool

from citizenwatt_common.store import load_household

from .auth import ApiError, User, current_user_for_stream, released_conn
from .costs import bucket_costs
from .errors import ErrorCode
from .limits import always, heavy_when, many_counted
from .v2 import Bucket, _zone, calendar_buckets

router = APIRouter(prefix="/api/v2/export", tags=["export"])
Conn = psycopg.Connection[Any]
Pool = ConnectionPool[Conn]

READINGS_PAGE = 5000
# A year (a leap one) of raw readings per file at most: what one request may cost is then bounded
# (bench/request_cost.py measures a year of one sensor's 8-s readings).
MAX_READINGS_DAYS = 366
ENERGY_PAGE = 500
# An hour bucket per row: two years of hours, or 54 years of days, in one export.
MAX_EXPORT_BUCKETS = 20_000
READINGS_COLUMNS = ("time", "unix_time", "sensor", "power_w", "voltage_v", "current_a", "rate")
ENERGY_COLUMNS = (
    "start",
    "end",
    "start_unix_time",
    "kwh",
    "day_kwh",
    "night_kwh",
    "euros",
    "day_euros",
    "night_euros",
    "mean_watts",
    # Added with tariff versions (costs.py): each direction's energy, the import priced, the
    # export credited, the subscription prorated per month, and all of it together.
    "import_kwh",
    "export_kwh",
    "import_euros",
    "export_credit_euros",
    "subscription_euros",
    "cost_euros",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV, one header row, streamed"},
    400: {"description": "a parameter is malformed or out of range (the reason in `error`)"},
    404: {"description": "no sensor with that id"},
}


def _unix(moment: datetime) -> str:
    """Exact Unix seconds of a timestamp (microseconds, as PostgreSQL keeps them), no float noise."""
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    seconds, fraction = divmod(abs(micros), 1_000_000)
    sign = "-" if micros < 0 else ""
    return f"{sign}{seconds}" if fraction == 0 else f"{sign}{seconds}.{fraction:06d}".rstrip("0")


def _number(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return ""
    if digits is None:
        return repr(float(value))
    text = f"{value:.{digits}f}"
    # Rollups are kept by adding and subtracting deltas: float dust must not print as "-0.000000".
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _csv_lines(rows: Iterable[Sequence[str]], flush_every: int) -> Iterator[str]:
    """CSV text in chunks of ``flush_every`` rows (one write per chunk, not per row)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    pending = 0
    for row in rows:
        writer.writerow(row)
        pending += 1
        if pending >= flush_every:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if pending:
        yield buffer.getvalue()


def _sensors(conn: Conn, sensor: str) -> list[tuple[int, str]]:
    """(id, key) of the sensors asked for: one id, or 'all'."""
    if sensor == "all":
        return [(int(r[0]), str(r[1])) for r in conn.execute("SELECT id, key FROM sensors ORDER BY id").fetchall()]
    try:
        sensor_id = int(sensor)
    except ValueError:
        raise ApiError(400, "sensor must be an integer id or 'all'", code=ErrorCode.INVALID_SENSOR) from None
    if not -(2**31) <= sensor_id < 2**31:
        raise ApiError(
            404, f"no sensor with id {sensor_id}", code=ErrorCode.UNKNOWN_SENSOR, params={"sensor": sensor_id}
        )
    row = conn.execute("SELECT id, key FROM sensors WHERE id = %s", (sensor_id,)).fetchone()
    if row is None:
        raise ApiError(
            404, f"no sensor with id {sensor_id}", code=ErrorCode.UNKNOWN_SENSOR, params={"sensor": sensor_id}
        )
    return [(int(row[0]), str(row[1]))]


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _attachment(filename: str) -> dict[str, str]:
    # Filenames are built from ids, dates and keywords only: nothing to escape.
    return {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}


# -- readings -----------------------------------------------------------------------------------
# Each CSV line is written by the database, in the session's time zone (set per page): formatting
# 4 million rows in Python cost 8 us each (35 s of the api's CPU for a year of one sensor); here
# the api only joins the lines. The text is the same as Python's: ISO time with its offset (and
# microseconds only when there are some), exact Unix seconds without trailing zeros, floats in
# their shortest round-trip form with Python's ".0" on whole numbers (no stored value is large
# enough for either side to switch to an exponent where the other does not: power is bounded at
# 1e6 W, voltage and current at 1e3), an empty field for a missing value.
def _float_sql(column: str) -> str:
    # A whole number is the one case where PostgreSQL's text ("229") is not Python's ("229.0").
    return f"coalesce(CASE WHEN {column} = trunc({column}) THEN {column}::text || '.0' ELSE {column}::text END, '')"


# One to_char for the whole ISO time, its ".000000" dropped when the reading fell on a whole second
# (isoformat writes microseconds only when there are some; to_char's offset never holds that text).
_LINE_SQL = (
    "replace(to_char(ts, 'YYYY-MM-DD\"T\"HH24:MI:SS.USTZH:TZM'), '.000000', '')"
    " || ',' || rtrim(rtrim(extract(epoch FROM ts)::text, '0'), '.')"
    " || ',' || %(key)s::text"
    f" || ',' || {_float_sql('power')} || ',' || {_float_sql('voltage')} || ',' || {_float_sql('current')}"
    " || ',' || CASE WHEN night_rate THEN 'night' ELSE 'day' END"
)


def _reading_pages(
    pool: Pool, sensor_id: int, key: str, lo: datetime, hi: datetime, zone: ZoneInfo
) -> Iterator[tuple[datetime, str]]:
    """One sensor's readings in [lo, hi) as (ts, CSV line), in time order, a page at a time."""
    after: datetime | None = None
    while True:
        with pool.connection() as conn, conn.transaction():
            conn.execute("SELECT set_config('TimeZone', %s, true)", (zone.key,))
            if after is None:
                condition, bound = "ts >= %(bound)s", lo
            else:
                condition, bound = "ts > %(bound)s", after
            page = conn.execute(
                f"SELECT ts, {_LINE_SQL} AS line FROM readings"
                f" WHERE sensor_id = %(sensor)s AND {condition} AND ts < %(hi)s ORDER BY ts LIMIT %(page)s",
                {"key": key, "sensor": sensor_id, "bound": bound, "hi": hi, "page": READINGS_PAGE},
            ).fetchall()
        yield from page
        if len(page) < READINGS_PAGE:
            return
        after = page[-1][0]


def _reading_lines(
    pool: Pool, sensors: list[tuple[int, str]], lo: datetime, hi: datetime, zone: ZoneInfo
) -> Iterator[str]:
    """The CSV text: its header, then every reading's line, in chunks of about 1000 lines."""
    streams = [_reading_pages(pool, sensor_id, key, lo, hi, zone) for sensor_id, key in sensors]
    chunk = [",".join(READINGS_COLUMNS)]
    # heapq.merge is lazy and stable: equal timestamps come out in sensor id order.
    for _, line in heapq.merge(*streams, key=lambda item: item[0]):
        chunk.append(line)
        if len(chunk) >= 1000:
            yield "\r\n".join(chunk) + "\r\n"
            chunk = []
    if chunk:
        yield "\r\n".join(chunk) + "\r\n"


@router.get(
    "/readings.csv", response_class=StreamingResponse, responses=_CSV_RESPONSE, dependencies=[heavy_when(always)]
)
def export_readings(
    request: Request,
    sensor: str = Query("all", description="a sensor id, or 'all' for every sensor (merged in time order)"),
    start: date = Query(..., description="first local date exported (ISO, e.g. 2026-11-01)"),
    end: date | None = Query(None, description="last local date exported, included (default: start)"),
    tz: str | None = Query(None, description="IANA time zone of the dates and timestamps (default: the household's)"),
    user: User = Depends(current_user_for_stream),
    conn: Conn = Depends(released_conn, scope="function"),
) -> StreamingResponse:
    """Raw readings as CSV: local ISO time with its offset, Unix time, sensor key, power (W),
    voltage (V), current (A), tariff (day/night); oldest first. Streamed, any length."""
    zone = _zone(tz, request.app.state.settings.zone)
    last = start if end is None else end
    if last < start:
        raise ApiError(400, "end must be on or after start", code=ErrorCode.END_BEFORE_START)
    if (last - start).days + 1 > MAX_READINGS_DAYS:
        raise ApiError(
            400,
            f"at most {MAX_READINGS_DAYS} days of readings in one file",
            code=ErrorCode.RANGE_TOO_LONG,
            params={"max_days": MAX_READINGS_DAYS},
        )
    try:
        lo, hi = _local_midnight(start, zone), _local_midnight(last + timedelta(days=1), zone)
    except (OverflowError, ValueError):
        raise ApiError(400, "start and end must be dates before 9999-12-31", code=ErrorCode.OUTSIDE_CALENDAR) from None
    sensors = _sensors(conn, sensor)
    try:  # the database must know the zone too: it writes the lines
        with conn.transaction():
            conn.execute("SELECT set_config('TimeZone', %s, true)", (zone.key,))
    except psycopg.errors.InvalidParameterValue:
        raise ApiError(
            400, f"unknown time zone {zone.key}", code=ErrorCode.UNKNOWN_TIME_ZONE, params={"zone": zone.key}
        ) from None
    body = _reading_lines(request.app.state.pool, sensors, lo, hi, zone)
    name = f"citizenwatt-readings-{sensor}-{start.isoformat()}-{last.isoformat()}.csv"
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=_attachment(name))


def _with_header(header: Sequence[str], rows: Iterable[Sequence[str]]) -> Iterator[Sequence[str]]:
    yield header
    yield from rows


# -- energy per bucket --------------------------------------------------------------------------
def _energy_rows(
    pool: Pool,
    sensor_ids: list[int],
    periods: list[tuple[datetime, datetime]],
    max_gap: float,
    household_zone: ZoneInfo,
) -> Iterator[list[str]]:
    for first in range(0, len(periods), ENERGY_PAGE):
        page = periods[first : first + ENERGY_PAGE]
        with pool.connection() as conn:
            costed = bucket_costs(conn, sensor_ids, page, household_zone, max_gap, subscription=True)
        for cost in costed:
            a, b, energy = cost.start, cost.end, cost.energy
            subscription = _number(float(cost.subscription), 6)
            if cost.empty:
                yield [a.isoformat(), b.isoformat(), _unix(a), *[""] * 11, subscription, subscription]
                continue
            imported = sum((p.euros for p in cost.parts.values()), Decimal(0))
            yield [
                a.isoformat(),
                b.isoformat(),
                _unix(a),
                _number(energy.total_wh / 1000, 6),
                _number(energy.day_wh / 1000, 6),
                _number(energy.night_wh / 1000, 6),
                _number(float(cost.energy_euros), 6),
                _number(float(cost.day_euros), 6),
                _number(float(cost.night_euros), 6),
                _number(energy.mean_power()[0], 3),
                _number(max(energy.import_wh, 0.0) / 1000, 6),
                _number(max(energy.export_wh, 0.0) / 1000, 6),
                _number(float(imported), 6),
                _number(float(cost.export_euros), 6),
                subscription,
                _number(float(cost.energy_euros + cost.subscription), 6),
            ]


@router.get(
    "/energy.csv", response_class=StreamingResponse, responses=_CSV_RESPONSE, dependencies=[heavy_when(many_counted)]
)
def export_energy(
    request: Request,
    sensor: str = Query("all", description="a sensor id, or 'all' for the household total"),
    start: date = Query(..., description="local date of the first bucket (ISO, e.g. 2026-11-24)"),
    bucket: Bucket = Query("day"),
    count: int = Query(1, ge=1, le=MAX_EXPORT_BUCKETS, description="number of buckets"),
    tz: str | None = Query(None, description="IANA time zone (default: the household's)"),
    user: User = Depends(current_user_for_stream),
    conn: Conn = Depends(released_conn, scope="function"),
) -> StreamingResponse:
    """Energy and cost per local calendar bucket as CSV, exactly as ``/api/v2/energy`` and
    ``/api/v2/costs`` compute them (kWh in total, day and night; euros of the energy at the tariff
    versions in force; mean watts; import and export kWh; import priced, export credited, the
    subscription prorated per month, and the cost with it); a bucket without readings has empty
    cells but its subscription. Streamed."""
    zone = _zone(tz, request.app.state.settings.zone)
    try:
        periods = calendar_buckets(start, bucket, count, zone)
    except (OverflowError, ValueError):
        raise ApiError(400, "start and count reach outside the calendar", code=ErrorCode.OUTSIDE_CALENDAR) from None
    sensor_ids = [sensor_id for sensor_id, _ in _sensors(conn, sensor)]
    max_gap = load_household(conn).max_gap_seconds
    # Buckets in the zone asked for; tariff hours on the household's wall clock.
    rows = _energy_rows(request.app.state.pool, sensor_ids, periods, max_gap, request.app.state.settings.zone)
    body = _csv_lines(_with_header(ENERGY_COLUMNS, rows), flush_every=ENERGY_PAGE)
    name = f"citizenwatt-energy-{sensor}-{bucket}-{start.isoformat()}-{count}.csv"
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=_attachment(name))
