"""What energy cost, per bucket and per period, at the tariff versions in force (``/api/v2/costs``).

Each bucket is cut where the price may change (``Plan.pieces``: time-of-use window edges, Tempo
days at 06:00, the local midnights where a version or the household's choice of tariff starts),
and the energy of every piece of every bucket comes from one ``energy_in_intervals`` call: exact,
from the rollups where the edges fall on quarter hours, from raw readings elsewhere.

Imported energy is what a bill charges; export is credited apart at the version's
``export_euros_per_kwh``. The subscription, when asked, is prorated per local calendar month.

Figures that add up: every leaf (each bucket's parts, its subscription, its export credit) is
rounded to one number of decimals, enough for the smallest non-zero leaf to show two
significant digits (at least 2, at most 6), and every total shown is the exact decimal sum of
the leaves shown under it. So a tiny cost is never "0.00", and a column of figures adds up.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from citizenwatt_common.energy import EMPTY_SECONDS, Energy
from citizenwatt_common.store import load_household
from citizenwatt_common.tariff_store import load_colours, load_plan
from citizenwatt_common.tariffs import Piece, Plan, local_midnight, month_subscriptions, shown, shown_decimals

from . import queries
from .auth import ApiError, User, current_user
from .db import get_conn
from .errors import ErrorCode
from .limits import heavy_when, many_counted
from .v2 import _zone, calendar_buckets

router = APIRouter(prefix="/api/v2", tags=["costs"])
Conn = psycopg.Connection[Any]
CostBucketKind = Literal["hour", "day", "week", "month", "year"]
MAX_COST_BUCKETS = 10_000
_KWH = Decimal(1000)


@dataclass(frozen=True)
class PartKey:
    tariff: str
    period: str
    colour: str | None
    colour_assumed: bool
    euros_per_kwh: Decimal
    # A year by day looks a key up twice per bucket: the generated __hash__ (Python, over five
    # fields, a Decimal among them) cost 0.4 ms of it. A few keys are made per request.
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        key = (self.tariff, self.period, self.colour, self.colour_assumed, self.euros_per_kwh)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash


@dataclass(slots=True)
class Part:
    kwh: float = 0.0
    euros: Decimal = Decimal(0)


@dataclass(slots=True)
class BucketCost:
    start: datetime
    end: datetime
    energy: Energy = field(default_factory=Energy)
    parts: dict[PartKey, Part] = field(default_factory=dict)
    subscription: Decimal = Decimal(0)
    export_euros: Decimal = Decimal(0)
    # The legacy day/night split of euros (energy only): the version's default period is "day".
    day_euros: Decimal = Decimal(0)
    night_euros: Decimal = Decimal(0)

    @property
    def empty(self) -> bool:
        return self.energy.is_empty

    @property
    def energy_euros(self) -> Decimal:
        """Imported energy priced, minus the export credit: what /api/v2/energy calls euros."""
        total = Decimal(0)
        for part in self.parts.values():
            total += part.euros
        return total - self.export_euros


_NANO_WH = Decimal("1e-9")
_NO_CREDIT = Decimal(0)


def _wh(value: float) -> Decimal:
    # Rollups move by deltas, in floating point: dust around 0 must not price as a negative part,
    # and a kilowatt-hour summed as 999.9999999999998 Wh must price as 0.10, not 0.0999...98 (whose
    # leading digit would make the rounding rule show a third decimal). Float dust is ~1e-13 Wh;
    # a nano-watt-hour is far below any meter's resolution and above the dust.
    return Decimal(repr(max(value, 0.0))).quantize(_NANO_WH)


def bucket_costs(
    conn: Conn,
    sensor_ids: Sequence[int],
    periods: Sequence[tuple[datetime, datetime]],
    zone: ZoneInfo,
    max_gap: float,
    subscription: bool,
    plan: Plan | None = None,
) -> list[BucketCost]:
    """Each bucket's energy and its cost, priced piece by piece (one database pass for all pieces).

    ``zone`` is the household's: tariff hours, version dates, Tempo days and the months the
    subscription is prorated over are its wall clock and calendar, whatever zone the buckets
    were cut in (the ``tz`` of a request)."""
    plan = plan or load_plan(conn)
    if not periods:
        return []
    first_day = periods[0][0].astimezone(zone).date()
    last_day = periods[-1][1].astimezone(zone).date()
    colours = load_colours(conn, date.fromordinal(first_day.toordinal() - 1), last_day)
    buckets = [BucketCost(a, b) for a, b in periods]
    pieces = _pieces_of(plan, _spans(periods), zone, colours)
    intervals = [(lo, hi) for _, lo, hi, _ in pieces]
    if sensor_ids:
        energies = queries.energy_in_intervals(conn, list(sensor_ids), intervals, max_gap)
    else:  # no sensor yet: nothing measured, the subscription all the same
        energies = [Energy() for _ in intervals]
    # A year by day has 365 to 1 460 pieces but a handful of prices: each price's key and figures
    # are worked out once.
    prices: dict[tuple[int, int, str, str | None, bool], tuple[PartKey, Decimal, Decimal, bool]] = {}
    filled = -1  # the last bucket given a piece: its first one is taken as it is, not added to 0
    for (index, _, _, piece), energy in zip(pieces, energies, strict=True):
        bucket = buckets[index]
        if index != filled:
            bucket.energy, filled = energy, index
        else:
            bucket.energy += energy
        if energy.day_seconds + energy.night_seconds < EMPTY_SECONDS:  # Energy.is_empty, inlined
            continue
        which = (id(piece.tariff), id(piece.version), piece.period, piece.colour, piece.colour_assumed)
        price = prices.get(which)
        if price is None:
            key = PartKey(piece.tariff.name, piece.period, piece.colour, piece.colour_assumed, piece.euros_per_kwh)
            price = prices[which] = (key, key.euros_per_kwh, piece.version.export_per_kwh, piece.is_default_period)
        key, per_kwh, export_per_kwh, is_default = price
        part = bucket.parts.get(key)
        if part is None:
            part = bucket.parts[key] = Part()
        part.kwh += max(energy.import_wh, 0.0) / 1000
        euros = _wh(energy.import_wh) / _KWH * per_kwh
        part.euros += euros
        # No export (most sensors, all night): a credit of 0 whatever its price.
        credit = _NO_CREDIT
        if energy.export_wh > 0 and export_per_kwh:
            credit = _wh(energy.export_wh) / _KWH * export_per_kwh
        bucket.export_euros += credit
        if is_default:
            bucket.day_euros += euros - credit
        else:
            bucket.night_euros += euros - credit
    if subscription:
        for bucket in buckets:
            bucket.subscription = month_subscriptions(bucket.start.timestamp(), bucket.end.timestamp(), plan, zone)
    return buckets


def _spans(periods: Sequence[tuple[datetime, datetime]]) -> list[tuple[float, float]]:
    """The periods as Unix times. Calendar buckets share each edge with the next bucket (the same
    object): its time is worked out once (``timestamp`` reads the zone's offset, 0.3 ms a year)."""
    spans: list[tuple[float, float]] = []
    previous: datetime | None = None
    previous_at = 0.0
    for a, b in periods:
        lo = previous_at if a is previous else a.timestamp()
        previous, previous_at = b, b.timestamp()
        spans.append((lo, previous_at))
    return spans


def _pieces_of(
    plan: Plan, spans: Sequence[tuple[float, float]], zone: ZoneInfo, colours: Mapping[date, str]
) -> list[tuple[int, float, float, Piece]]:
    """Every span's pieces: (the span's index, from, to, the piece at that price).

    Back-to-back spans (calendar buckets) are cut from the pieces of their whole stretch, worked
    out once: a year by day asked for the pieces of each day apart, which walked the calendar
    three days at a time and cost 15 of its 33 ms. A piece is what lies between two price edges,
    described by its middle, so the part of it in a span is priced as that span alone would be
    (and is not copied into a Piece of its own: 365 of them cost 0.5 ms).
    """
    if any(spans[k][1] != spans[k + 1][0] for k in range(len(spans) - 1)):
        return [
            (index, piece.lo, piece.hi, piece)
            for index, (a, b) in enumerate(spans)
            for piece in plan.pieces(a, b, zone, colours)
        ]
    whole = plan.pieces(spans[0][0], spans[-1][1], zone, colours)
    found: list[tuple[int, float, float, Piece]] = []
    first = 0
    for index, (a, b) in enumerate(spans):
        while first < len(whole) and whole[first].hi <= a:
            first += 1
        k = first
        while k < len(whole) and whole[k].lo < b:
            piece = whole[k]
            found.append((index, max(piece.lo, a), min(piece.hi, b), piece))
            k += 1
    return found


def cost_periods(first: date, bucket: CostBucketKind, count: int, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """Local calendar buckets as /api/v2/energy has them, and years (from 1 January)."""
    if bucket != "year":
        return calendar_buckets(first, bucket, count, zone)
    edges = [local_midnight(date(first.year + n, 1, 1), zone) for n in range(count + 1)]
    return list(itertools.pairwise(edges))


# -- the JSON answer --------------------------------------------------------------------------------
class CostPart(BaseModel):
    tariff: str
    period: str
    colour: str | None
    colour_assumed: bool
    euros_per_kwh: float
    kwh: float
    euros: float
    shown: str


class CostTotals(BaseModel):
    """What a bucket and the whole report both end with: their parts and totals, exact and shown."""

    parts: list[CostPart]
    subscription_euros: float
    subscription_shown: str
    export_euros: float
    export_shown: str
    euros: float
    shown: str


class CostBucket(CostTotals):
    start: datetime
    end: datetime
    import_kwh: float | None
    export_kwh: float | None


class CostReport(CostTotals):
    sensor: int | Literal["all"]
    timezone: str
    bucket: CostBucketKind
    currency: Literal["EUR"] = "EUR"
    decimals: int
    subscription: bool
    buckets: list[CostBucket]


def _text(amount: Decimal) -> str:
    return f"{amount:f}"


def cost_report(
    buckets: list[BucketCost], sensor: int | Literal["all"], zone: ZoneInfo, bucket: CostBucketKind, subscription: bool
) -> CostReport:
    leaves = [p.euros for b in buckets for p in b.parts.values()]
    leaves += [b.subscription for b in buckets] + [b.export_euros for b in buckets]
    decimals = shown_decimals(leaves)
    zero = Decimal(0)
    totals: dict[PartKey, tuple[float, Decimal, Decimal]] = {}  # kwh, euros, shown
    out: list[CostBucket] = []
    for b in buckets:
        parts = []
        for key, part in b.parts.items():
            part_shown = shown(part.euros, decimals)
            kwh, euros, total_shown = totals.get(key, (0.0, zero, zero))
            totals[key] = (kwh + part.kwh, euros + part.euros, total_shown + part_shown)
            parts.append(_part(key, part.kwh, part.euros, part_shown))
        subscription_shown, export_shown = shown(b.subscription, decimals), shown(b.export_euros, decimals)
        bucket_shown = sum((shown(p.euros, decimals) for p in b.parts.values()), zero)
        bucket_shown += subscription_shown - export_shown
        euros = b.energy_euros + b.subscription
        out.append(
            CostBucket(
                start=b.start,
                end=b.end,
                import_kwh=None if b.empty else max(b.energy.import_wh, 0.0) / 1000,
                export_kwh=None if b.empty else max(b.energy.export_wh, 0.0) / 1000,
                parts=parts,
                subscription_euros=float(b.subscription),
                subscription_shown=_text(subscription_shown),
                export_euros=float(b.export_euros),
                export_shown=_text(export_shown),
                euros=float(euros),
                shown=_text(bucket_shown),
            )
        )
    subscription_total = sum((b.subscription for b in buckets), zero)
    export_total = sum((b.export_euros for b in buckets), zero)
    return CostReport(
        sensor=sensor,
        timezone=str(zone),
        bucket=bucket,
        decimals=decimals,
        subscription=subscription,
        buckets=out,
        parts=[_part(key, kwh, euros, total_shown) for key, (kwh, euros, total_shown) in totals.items()],
        subscription_euros=float(subscription_total),
        subscription_shown=_text(sum((Decimal(b.subscription_shown) for b in out), zero)),
        export_euros=float(export_total),
        export_shown=_text(sum((Decimal(b.export_shown) for b in out), zero)),
        euros=float(sum((b.energy_euros + b.subscription for b in buckets), zero)),
        shown=_text(sum((Decimal(b.shown) for b in out), zero)),
    )


def _part(key: PartKey, kwh: float, euros: Decimal, part_shown: Decimal) -> CostPart:
    return CostPart(
        tariff=key.tariff,
        period=key.period,
        colour=key.colour,
        colour_assumed=key.colour_assumed,
        euros_per_kwh=float(key.euros_per_kwh),
        kwh=kwh,
        euros=float(euros),
        shown=_text(part_shown),
    )


def sensor_ids_of(conn: Conn, sensor: str) -> list[int]:
    if sensor == "all":
        return [int(r[0]) for r in conn.execute("SELECT id FROM sensors ORDER BY id").fetchall()]
    try:
        sensor_id = int(sensor)
    except ValueError:
        raise ApiError(400, "sensor must be an integer id or 'all'", code=ErrorCode.INVALID_SENSOR) from None
    if not -(2**31) <= sensor_id < 2**31 or not queries.sensor_exists(conn, sensor_id):
        raise ApiError(
            404, f"no sensor with id {sensor_id}", code=ErrorCode.UNKNOWN_SENSOR, params={"sensor": sensor_id}
        )
    return [sensor_id]


@router.get("/costs", response_model=CostReport, dependencies=[heavy_when(many_counted)])
def costs(
    request: Request,
    sensor: str = Query("all", description="a sensor id, or 'all' for the household"),
    start: date = Query(..., description="local date of the first bucket (ISO, e.g. 2026-11-01)"),
    bucket: CostBucketKind = Query("day"),
    count: int = Query(1, ge=1, le=MAX_COST_BUCKETS, description="number of buckets"),
    tz: str | None = Query(None, description="IANA time zone (default: the household's)"),
    subscription: bool = Query(False, description="add the subscription, prorated per local month"),
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> CostReport:
    """Cost per local calendar bucket: imported energy per tariff period (and Tempo colour) at the
    version in force, the export credit, and the subscription if asked; shown figures add up."""
    zone = _zone(tz, request.app.state.settings.zone)
    sensor_ids = sensor_ids_of(conn, sensor)
    try:
        periods = cost_periods(start, bucket, count, zone)
    except (OverflowError, ValueError):
        raise ApiError(400, "start and count reach outside the calendar", code=ErrorCode.OUTSIDE_CALENDAR) from None
    max_gap = load_household(conn).max_gap_seconds
    buckets = bucket_costs(conn, sensor_ids, periods, request.app.state.settings.zone, max_gap, subscription)
    return cost_report(buckets, "all" if sensor == "all" else int(sensor), zone, bucket, subscription)
