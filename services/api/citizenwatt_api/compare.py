"""Comparisons (``/api/v2/energy/compare``, ``/api/v2/energy/by-sensor``): a calendar period next to
the one before it and to the same period a year earlier, and split between the sensors.

Both routes take a *period* (the local day, week, month or year holding ``start``) rather than a
bucket count, because "the same buckets, one period earlier" is only well defined on the calendar:
the 31 days before 1 March are not February, and the 24 hours before a day that follows a DST
change do not start at midnight. Every bucket of the current period is moved back on the local
calendar (same wall-clock hour, same day of the month, same weekday) to find its counterpart:

- ``previous``: the period just before (the day before; the week before; the month before; the
  year before).
- ``year``: the same period a year earlier. Days, months and years keep their calendar dates
  (2026-03-15 -> 2025-03-15); a **week** goes back **52 weeks** (364 days), so Monday faces Monday
  (2026-W13 -> 2025-W13, the week of 2025-03-24).

A bucket whose counterpart does not exist on the calendar has none (``null`` in the reference's
list), never a neighbour's value counted twice: 29 February a year earlier in a month or year of
days, the 29th to 31st of a month compared with a shorter one, the hour a spring DST change skips,
and the second 02:00 of an autumn DST day (its first one takes the reference's single 02:00). A
reference *period* is clamped to its month instead: a day view of 29 February 2028 compares with
28 February 2027, hour by hour. The reference's totals are those of its whole period, counterpart
or not (all of February's when March is compared with it); the change in % is worked out like for
like, over the buckets measured in both series, so a day in progress is compared with the same
hours of the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from citizenwatt_common.energy import Energy
from citizenwatt_common.store import load_household

from .auth import ApiError, User, current_user
from .costs import bucket_costs
from .db import get_conn
from .errors import ErrorCode
from .limits import heavy_when, many_by_sensor, many_compared
from .v2 import Bucket, _zone, calendar_buckets

router = APIRouter(prefix="/api/v2", tags=["v2"])
Conn = psycopg.Connection[Any]
Period = Literal["day", "week", "month", "year"]
Reference = Literal["previous", "year"]

# The buckets a period may be cut into (the default first). Weeks do not tile months or years, and
# a year of hours (8 760 bars) is no chart: those are refused with a 400.
BUCKETS_OF: dict[str, tuple[Bucket, ...]] = {
    "day": ("hour",),
    "week": ("day", "hour"),
    "month": ("day",),
    "year": ("month", "day"),
}
# Below this many kWh a reference counts as nothing to compare with (float dust of the rollups).
ZERO_KWH = 1e-9


class CompareBucket(BaseModel):
    start: datetime
    end: datetime
    kwh: float | None = Field(description="null when nothing was measured in the bucket")
    day_kwh: float | None
    night_kwh: float | None
    euros: float | None = Field(
        description="the energy's cost at the tariff versions in force; null when nothing was measured"
    )


class Series(BaseModel):
    start: datetime = Field(description="the whole period: its first instant")
    end: datetime = Field(description="the whole period: the instant after it")
    total_kwh: float | None = Field(description="the whole period's energy; null when nothing was measured in it")
    total_euros: float | None


class CurrentSeries(Series):
    buckets: list[CompareBucket]


class ReferenceSeries(Series):
    buckets: list[CompareBucket | None] = Field(
        description="aligned with the current buckets: entry i is bucket i moved back on the calendar,"
        " null when that date or hour does not exist in the reference period"
    )
    compared_buckets: int = Field(description="how many buckets are measured in both series")
    change_percent: float | None = Field(
        description="(current - reference) / reference x 100 in kWh, over the buckets measured in both;"
        " null when there are none or the reference is 0 over them"
    )
    change_percent_euros: float | None


class CompareReport(BaseModel):
    sensor: int | Literal["all"]
    timezone: str
    period: Period
    bucket: Bucket
    current: CurrentSeries
    previous: ReferenceSeries | None = Field(description="null unless asked for in `with`")
    year: ReferenceSeries | None = Field(description="null unless asked for in `with`")


class BucketSpan(BaseModel):
    start: datetime
    end: datetime


class SensorSeries(BaseModel):
    id: int
    key: str
    name: str
    kwh: list[float | None] = Field(description="per bucket; null where this sensor measured nothing")
    euros: list[float | None]
    total_kwh: float | None


class BySensorReport(BaseModel):
    timezone: str
    period: Period
    bucket: Bucket
    buckets: list[BucketSpan]
    sensors: list[SensorSeries]
    total_kwh: list[float | None] = Field(
        description="the household per bucket: the sum of the sensors' values shown (an unmeasured sensor"
        " adds nothing), null when no sensor measured anything in the bucket"
    )
    total_euros: list[float | None]
    total: float | None = Field(description="the sum of total_kwh; null when nothing was measured")


# --- the calendar ------------------------------------------------------------------------------


def _months_back(day: date, months: int, clamp: bool) -> date | None:
    """``day`` moved ``months`` back; a day the target month lacks is its last day (clamp) or None."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    following = date(year + (month == 12), month % 12 + 1, 1)
    last = (following - timedelta(days=1)).day
    if day.day > last:
        return date(year, month, last) if clamp else None
    return date(year, month, day.day)


def _date_shift(period: Period, reference: Reference) -> Callable[[date, bool], date | None]:
    """How a local date moves back to its counterpart, for a period and a reference."""
    if period == "week":
        days = 7 if reference == "previous" else 364  # 52 weeks: the same weekday
        return lambda day, clamp: day - timedelta(days=days)
    if period == "day" and reference == "previous":
        return lambda day, clamp: day - timedelta(days=1)
    months = 1 if (period == "month" and reference == "previous") else 12
    return lambda day, clamp: _months_back(day, months, clamp)


def _period_of(start: date, period: Period) -> date:
    if period == "week":
        return start - timedelta(days=start.weekday())
    if period == "month":
        return start.replace(day=1)
    if period == "year":
        return start.replace(month=1, day=1)
    return start


def _period_buckets(first: date, period: Period, bucket: Bucket, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The buckets that tile the local period starting on ``first`` (a DST day has 23 or 25 hours)."""
    if period == "day":
        after = first + timedelta(days=1)
    elif period == "week":
        after = first + timedelta(days=7)
    elif period == "month":
        after = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    else:
        after = date(first.year + 1, 1, 1)
    end = datetime(after.year, after.month, after.day, tzinfo=zone)
    begin = datetime(first.year, first.month, first.day, tzinfo=zone)
    if bucket == "hour":
        count = round((end.timestamp() - begin.timestamp()) / 3600)
    elif bucket == "day":
        count = (after - first).days
    else:  # month buckets, only in a year
        count = 12
    return calendar_buckets(first, bucket, count, zone)


def _counterparts(
    current: Sequence[tuple[datetime, datetime]],
    bucket: Bucket,
    shift: Callable[[date, bool], date | None],
    zone: ZoneInfo,
) -> list[tuple[datetime, datetime] | None]:
    """Each current bucket moved back on the local calendar; None where the calendar has no such bucket."""
    moved: list[tuple[datetime, datetime] | None] = []
    taken: set[float] = set()
    for lo, _ in current:
        local = lo.astimezone(zone)
        # An hour's date is its day's, which clamps like the period (29 February -> 28 February a
        # year earlier); a day of a month or a year has no counterpart on a date the other lacks.
        day = shift(local.date(), bucket == "hour")
        if day is None:
            moved.append(None)
            continue
        if bucket == "hour":
            wall = datetime.combine(day, local.time().replace(fold=0), zone)
            # A wall-clock hour skipped by a spring change does not exist: zoneinfo would still
            # build it, an hour off, so check that it survives a round trip through UTC.
            if wall.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
                moved.append(None)
                continue
            span = (wall, (wall.astimezone(UTC) + timedelta(hours=1)).astimezone(zone))
        else:
            ((a, b),) = calendar_buckets(day, bucket, 1, zone)
            span = (a, b)
        # Autumn's second 02:00 lands on the reference's single 02:00, already taken by the first.
        if span[0].timestamp() in taken:
            moved.append(None)
            continue
        taken.add(span[0].timestamp())
        moved.append(span)
    return moved


# --- energy ------------------------------------------------------------------------------------


def _kwh(energy: Energy) -> float | None:
    return None if energy.is_empty else energy.total_wh / 1000


# A span's energy and what it cost at the tariff versions in force (None when nothing was
# measured): the euros of /api/v2/energy, so the page's bars and its comparisons agree.
Costed = tuple[Energy, float | None]


def _bucket(span: tuple[datetime, datetime], costed: Costed) -> CompareBucket:
    energy, euros = costed
    empty = energy.is_empty
    return CompareBucket(
        start=span[0],
        end=span[1],
        kwh=_kwh(energy),
        day_kwh=None if empty else energy.day_wh / 1000,
        night_kwh=None if empty else energy.night_wh / 1000,
        euros=euros,
    )


def _energies(
    conn: Conn,
    sensor_ids: list[int],
    spans: Sequence[tuple[datetime, datetime]],
    household_zone: ZoneInfo,
    max_gap: float,
) -> list[Costed]:
    if not sensor_ids or not spans:
        return [(Energy(), None) for _ in spans]
    # Tariff hours are read on the household's wall clock, whatever zone the spans were cut in.
    costs = bucket_costs(conn, sensor_ids, spans, household_zone, max_gap, subscription=False)
    return [(c.energy, None if c.empty else float(c.energy_euros)) for c in costs]


def _change(current: float, reference: float) -> float | None:
    return None if abs(reference) < ZERO_KWH else (current - reference) / reference * 100


def _reference(
    conn: Conn,
    sensor_ids: list[int],
    current: list[CompareBucket],
    spans: list[tuple[datetime, datetime] | None],
    whole: tuple[datetime, datetime],
    zone: ZoneInfo,
    max_gap: float,
) -> ReferenceSeries:
    present = [span for span in spans if span is not None]
    found = iter(_energies(conn, sensor_ids, present, zone, max_gap))
    buckets = [None if span is None else _bucket(span, next(found)) for span in spans]
    ((total, total_euros),) = _energies(conn, sensor_ids, [whole], zone, max_gap)
    both = [
        (c, r)
        for c, r in zip(current, buckets, strict=True)
        if r is not None and c.kwh is not None and r.kwh is not None
    ]
    kwh_change = _change(sum(c.kwh or 0.0 for c, _ in both), sum(r.kwh or 0.0 for _, r in both)) if both else None
    euros_change = None
    if both:
        euros_change = _change(sum(c.euros or 0.0 for c, _ in both), sum(r.euros or 0.0 for _, r in both))
    return ReferenceSeries(
        start=whole[0],
        end=whole[1],
        total_kwh=_kwh(total),
        total_euros=total_euros,
        buckets=buckets,
        compared_buckets=len(both),
        change_percent=kwh_change,
        change_percent_euros=euros_change,
    )


# --- parameters ---------------------------------------------------------------------------------


def _sensor_ids(conn: Conn, sensor: str) -> list[int]:
    if sensor == "all":
        return [int(r[0]) for r in conn.execute("SELECT id FROM sensors ORDER BY id").fetchall()]
    try:
        return [int(sensor)]
    except ValueError:
        raise ApiError(400, "sensor must be an integer id or 'all'", code=ErrorCode.INVALID_SENSOR) from None


def _bucket_for(period: Period, bucket: Bucket | None) -> Bucket:
    allowed = BUCKETS_OF[period]
    if bucket is None:
        return allowed[0]
    if bucket not in allowed:
        raise ApiError(
            400,
            f"a {period} is cut into {' or '.join(allowed)} buckets, not {bucket}",
            code=ErrorCode.BUCKET_NOT_ALLOWED,
            params={"period": period, "bucket": bucket, "allowed": ", ".join(allowed)},
        )
    return bucket


def _references(text: str) -> list[Reference]:
    wanted: list[Reference] = []
    for part in (p.strip() for p in text.split(",")):
        if part not in ("previous", "year"):
            raise ApiError(
                400,
                f"with: {part!r} is not a comparison (previous, year)",
                code=ErrorCode.INVALID_COMPARISON,
                params={"value": part},
            )
        if part not in wanted:
            wanted.append(part)  # type: ignore[arg-type]  # checked just above
    return wanted


def _whole(spans: Sequence[tuple[datetime, datetime]]) -> tuple[datetime, datetime]:
    return spans[0][0], spans[-1][1]


START = Query(..., description="a local date (ISO) inside the period, e.g. 2026-11-24")
PERIOD = Query("day", description="the local calendar period holding `start`; a week starts on Monday")
BUCKET = Query(
    None, description="hour (day, week), day (week, month, year) or month (year); default: the first of these"
)
TZ = Query(None, description="IANA time zone (default: the household's)")


@router.get("/energy/compare", response_model=CompareReport, dependencies=[heavy_when(many_compared)])
def compare(
    request: Request,
    sensor: str = Query("all", description="a sensor id, or 'all' for the household total"),
    start: date = START,
    period: Period = PERIOD,
    bucket: Bucket | None = BUCKET,
    tz: str | None = TZ,
    with_: str = Query(
        "previous,year",
        alias="with",
        description="comma-separated: previous (the period before), year (the same period a year earlier;"
        " 52 weeks earlier for a week)",
    ),
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> CompareReport:
    """A period's energy per bucket, beside the period before it and the same period a year earlier.

    Reference bucket i is current bucket i moved back on the local calendar (same wall-clock hour,
    day of the month, or weekday for weeks); null where that calendar has no such bucket (29 February,
    a 31st, a DST hour). Totals cover each whole period; the change in % compares the buckets
    measured in both.
    """
    zone = _zone(tz, request.app.state.settings.zone)
    step = _bucket_for(period, bucket)
    references = _references(with_)
    sensor_ids = _sensor_ids(conn, sensor)
    first = _period_of(start, period)
    try:
        spans = _period_buckets(first, period, step, zone)
        plans = {}
        for ref in references:
            shift = _date_shift(period, ref)
            ref_first = shift(first, True)
            assert ref_first is not None  # clamped, never missing
            whole = _whole(_period_buckets(ref_first, period, step, zone))
            plans[ref] = (_counterparts(spans, step, shift, zone), whole)
    except (OverflowError, ValueError):
        raise ApiError(400, "start reaches outside the calendar", code=ErrorCode.OUTSIDE_CALENDAR) from None
    max_gap = load_household(conn).max_gap_seconds
    energies = _energies(conn, sensor_ids, spans, request.app.state.settings.zone, max_gap)
    buckets = [_bucket(span, e) for span, e in zip(spans, energies, strict=True)]
    total = Energy()
    for energy, _ in energies:  # the buckets tile the period
        total += energy
    measured_euros = [euros for _, euros in energies if euros is not None]
    series = {
        ref: _reference(conn, sensor_ids, buckets, moved, whole, request.app.state.settings.zone, max_gap)
        for ref, (moved, whole) in plans.items()
    }
    return CompareReport(
        sensor="all" if sensor == "all" else sensor_ids[0],
        timezone=str(zone),
        period=period,
        bucket=step,
        current=CurrentSeries(
            start=spans[0][0],
            end=spans[-1][1],
            total_kwh=_kwh(total),
            total_euros=sum(measured_euros) if measured_euros else None,
            buckets=buckets,
        ),
        previous=series.get("previous"),
        year=series.get("year"),
    )


@router.get("/energy/by-sensor", response_model=BySensorReport, dependencies=[heavy_when(many_by_sensor)])
def by_sensor(
    request: Request,
    start: date = START,
    period: Period = PERIOD,
    bucket: Bucket | None = BUCKET,
    tz: str | None = TZ,
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> BySensorReport:
    """Each sensor's energy per bucket (which circuit used what), and the household's as their sum.

    Every sensor is listed, by id; a sensor that measured nothing in a bucket has null there. The
    household's value per bucket is the sum of the sensors' shown values, so a stacked chart's bar
    is exactly as tall as the total printed beside it.
    """
    zone = _zone(tz, request.app.state.settings.zone)
    step = _bucket_for(period, bucket)
    try:
        spans = _period_buckets(_period_of(start, period), period, step, zone)
    except (OverflowError, ValueError):
        raise ApiError(400, "start reaches outside the calendar", code=ErrorCode.OUTSIDE_CALENDAR) from None
    max_gap = load_household(conn).max_gap_seconds
    sensors = []
    rows = conn.execute("SELECT id, key, name FROM sensors ORDER BY id").fetchall()
    for sensor_id, key, name in rows:
        energies = _energies(conn, [int(sensor_id)], spans, request.app.state.settings.zone, max_gap)
        kwh = [_kwh(e) for e, _ in energies]
        measured = [v for v in kwh if v is not None]
        sensors.append(
            SensorSeries(
                id=int(sensor_id),
                key=str(key),
                name=str(name),
                kwh=kwh,
                euros=[euros for _, euros in energies],
                total_kwh=sum(measured) if measured else None,
            )
        )

    def column_sum(values: list[float | None]) -> float | None:
        measured = [v for v in values if v is not None]
        return sum(measured) if measured else None

    total_kwh = [column_sum([s.kwh[i] for s in sensors]) for i in range(len(spans))]
    total_euros = [column_sum([s.euros[i] for s in sensors]) for i in range(len(spans))]
    return BySensorReport(
        timezone=str(zone),
        period=period,
        bucket=step,
        buckets=[BucketSpan(start=a, end=b) for a, b in spans],
        sensors=sensors,
        total_kwh=total_kwh,
        total_euros=total_euros,
        total=column_sum(total_kwh),
    )
