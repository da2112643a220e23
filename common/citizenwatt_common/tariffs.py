"""Tariffs as households have them: dated versions, time-of-use windows, Tempo days. Pure, no I/O.

A tariff is a list of versions, each valid from a local date (from local midnight in the
household's zone) until the next one. A version holds its prices per time-of-use period, its
subscription per month, the windows of the day that belong to each period (local wall-clock
HH:MM, [start, end), wrapping midnight when end <= start) and the period of every minute outside
a window (``default_period``). Prices and hours live in the same version, so changing either is
a new version from a date, and nothing before that date is ever priced again differently.

A Tempo version prices each period per day colour (blue, white, red). A Tempo day runs from
06:00 to 06:00 local time: the night after a red day is still priced at the red day's off-peak
price. A day whose colour is unknown is priced as blue, and says so.

The household's choice of tariff is dated too (``Choice``); together with the tariffs it makes
a ``Plan``, which cuts any [lo, hi) of Unix time into ``Piece``s of constant price: at the local
midnights where the version in force changes, at the window edges of the day's version, at
06:00 on Tempo days, and at DST transitions on days with a window edge (a window edge that falls
in a skipped hour moves with the clock). Windows are wall-clock, so on a DST day a 22:00-06:00
window lasts 7 or 9 hours of real time.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final
from zoneinfo import ZoneInfo

COLOURS: Final = ("blue", "white", "red")
ASSUMED_COLOUR: Final = "blue"
TEMPO_DAY_START_MINUTE: Final = 6 * 60  # a Tempo day runs from 06:00 to 06:00 local time
MINUTES_PER_DAY: Final = 1440
_HHMM: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_PERIOD_NAME: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class TariffError(ValueError):
    """A tariff, version or window that cannot be used; the message says what is wrong."""


def parse_hhmm(text: str) -> int:
    """``"12:37"`` -> 757 minutes after local midnight."""
    match = _HHMM.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise TariffError(f"{text!r} is not a time of day as HH:MM (00:00 to 23:59)")
    return int(match.group(1)) * 60 + int(match.group(2))


def format_hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def price(value: object, what: str) -> Decimal:
    """A non-negative finite amount of euros as an exact Decimal (floats through their shortest text)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise TariffError(f"{what} must be a number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise TariffError(f"{what} must be a number") from None
    if not amount.is_finite() or amount < 0:
        raise TariffError(f"{what} must be a finite number >= 0, not {value!r}")
    return amount


@dataclass(frozen=True)
class Window:
    """Local wall-clock minutes [start, end) belonging to ``period``; wraps midnight when end <= start."""

    start: int
    end: int
    period: str

    def spans(self) -> list[tuple[int, int]]:
        """The window as minute ranges within one day (two when it wraps midnight)."""
        if self.start < self.end:
            return [(self.start, self.end)]
        return [(self.start, MINUTES_PER_DAY), (0, self.end)] if self.end > 0 else [(self.start, MINUTES_PER_DAY)]

    def as_json(self) -> dict[str, str]:
        return {"start": format_hhmm(self.start), "end": format_hhmm(self.end), "period": self.period}


Prices = Mapping[str, Decimal | Mapping[str, Decimal]]


@dataclass(frozen=True)
class Version:
    valid_from: date
    subscription_per_month: Decimal
    prices: Prices  # period -> EUR/kWh, or period -> colour -> EUR/kWh for Tempo
    default_period: str
    windows: tuple[Window, ...] = ()
    export_per_kwh: Decimal = Decimal(0)

    # Both cached: the calendar asks them for every day of a request (a year by day: 730 times).
    @functools.cached_property
    def is_tempo(self) -> bool:
        return any(isinstance(p, Mapping) for p in self.prices.values())

    def period_at(self, minute: int) -> str:
        for window in self.windows:
            if any(lo <= minute < hi for lo, hi in window.spans()):
                return window.period
        return self.default_period

    def price_of(self, period: str, colour: str | None) -> Decimal:
        value = self.prices[period]
        if isinstance(value, Mapping):
            return value[colour or ASSUMED_COLOUR]
        return value

    @functools.cached_property
    def edge_minutes(self) -> tuple[int, ...]:
        """Minutes of the day where the price may change (window edges, and 06:00 for Tempo)."""
        edges = {w.start for w in self.windows} | {w.end for w in self.windows}
        if self.is_tempo:
            edges.add(TEMPO_DAY_START_MINUTE)
        return tuple(sorted(edges))

    def as_json(self) -> dict[str, object]:
        def number(value: Decimal) -> float:
            return float(value)

        periods: dict[str, object] = {
            name: ({c: number(v[c]) for c in COLOURS} if isinstance(v, Mapping) else number(v))
            for name, v in self.prices.items()
        }
        return {
            "valid_from": self.valid_from.isoformat(),
            "subscription_euros_per_month": number(self.subscription_per_month),
            "periods": periods,
            "default_period": self.default_period,
            "windows": [w.as_json() for w in self.windows],
            "export_euros_per_kwh": number(self.export_per_kwh),
        }


def version_from_json(valid_from: date, body: Mapping[str, object]) -> Version:
    """A version from its JSON form (the API's and the database's), checked: raises TariffError."""
    if not isinstance(body, Mapping):
        raise TariffError("a version must be a JSON object")
    periods = body.get("periods")
    if not isinstance(periods, Mapping) or not periods:
        raise TariffError("periods must be an object of at least one period name -> price")
    prices: dict[str, Decimal | Mapping[str, Decimal]] = {}
    for name, value in periods.items():
        if not isinstance(name, str) or not _PERIOD_NAME.match(name):
            raise TariffError(f"period name {name!r}: lower-case letters, digits, '_' or '-', at most 32")
        if isinstance(value, Mapping):
            if set(value) != set(COLOURS):
                raise TariffError(f"period {name!r}: a Tempo price needs exactly blue, white and red")
            prices[name] = {c: price(value[c], f"price of {name!r} on {c} days") for c in COLOURS}
        else:
            prices[name] = price(value, f"price of {name!r}")
    tempo = [isinstance(v, Mapping) for v in prices.values()]
    if any(tempo) and not all(tempo):
        raise TariffError("either every period has Tempo colours or none has")
    default = body.get("default_period")
    if default is None and len(prices) == 1:
        default = next(iter(prices))
    if not isinstance(default, str) or default not in prices:
        raise TariffError(f"default_period {default!r} must be one of the periods {sorted(prices)}")
    windows = _windows_from_json(body.get("windows", []), prices)
    return Version(
        valid_from=valid_from,
        subscription_per_month=price(body.get("subscription_euros_per_month", 0), "subscription_euros_per_month"),
        prices=prices,
        default_period=default,
        windows=windows,
        export_per_kwh=price(body.get("export_euros_per_kwh", 0) or 0, "export_euros_per_kwh"),
    )


def _windows_from_json(raw: object, prices: Prices) -> tuple[Window, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise TariffError("windows must be a list of {start, end, period}")
    windows: list[Window] = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise TariffError("each window must be an object {start, end, period}")
        start, end = parse_hhmm(str(item.get("start"))), parse_hhmm(str(item.get("end")))
        period = item.get("period")
        if not isinstance(period, str) or period not in prices:
            raise TariffError(f"window period {period!r} must be one of the periods {sorted(prices)}")
        if start == end:
            raise TariffError(f"window {format_hhmm(start)}-{format_hhmm(end)} is empty: start and end must differ")
        windows.append(Window(start, end, period))
    # Sorted by start, a span overlaps an earlier one exactly when it starts before the furthest
    # end seen so far.
    spans = sorted(((lo, hi, w) for w in windows for lo, hi in w.spans()), key=lambda s: (s[0], s[1]))
    furthest: tuple[int, Window] | None = None
    for lo, hi, window in spans:
        if furthest is not None and lo < furthest[0]:
            other = furthest[1]
            raise TariffError(
                f"windows {format_hhmm(other.start)}-{format_hhmm(other.end)} and"
                f" {format_hhmm(window.start)}-{format_hhmm(window.end)} overlap"
            )
        if furthest is None or hi > furthest[0]:
            furthest = (hi, window)
    return tuple(sorted(windows, key=lambda w: w.start))


@dataclass(frozen=True)
class Tariff:
    id: int
    name: str
    kind: str  # base, hc, tempo or custom
    builtin: bool
    versions: tuple[Version, ...]  # sorted by valid_from, at least one

    def version_on(self, day: date) -> Version:
        """The version in force on a local date; before the first one, the first one."""
        starts = [v.valid_from for v in self.versions]
        return self.versions[max(bisect.bisect_right(starts, day) - 1, 0)]


@dataclass(frozen=True)
class Choice:
    """From this local date on, the household is on this tariff."""

    valid_from: date
    tariff_id: int


@dataclass(frozen=True)
class Piece:
    """A stretch of time [lo, hi) at one price: what energy_in_intervals is asked for."""

    lo: float
    hi: float
    tariff: Tariff
    version: Version
    period: str
    colour: str | None  # None outside Tempo
    colour_assumed: bool

    @property
    def euros_per_kwh(self) -> Decimal:
        return self.version.price_of(self.period, self.colour)

    @property
    def is_default_period(self) -> bool:
        return self.period == self.version.default_period


@dataclass(frozen=True)
class Plan:
    """The household's dated choices of tariff, and the tariffs they name."""

    tariffs: Mapping[int, Tariff]
    choices: tuple[Choice, ...]  # sorted by valid_from, at least one
    _starts: list[date] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.choices:
            raise TariffError("the household has no tariff")
        object.__setattr__(self, "_starts", [c.valid_from for c in self.choices])

    def on(self, day: date) -> tuple[Tariff, Version]:
        """Tariff and version in force on a local date (before the first choice, the first one)."""
        choice = self.choices[max(bisect.bisect_right(self._starts, day) - 1, 0)]
        tariff = self.tariffs[choice.tariff_id]
        return tariff, tariff.version_on(day)

    def pieces(self, lo: float, hi: float, zone: ZoneInfo, colours: Mapping[date, str]) -> list[Piece]:
        """[lo, hi) cut where the price may change, each piece with its price's description."""
        if hi <= lo:
            return []
        edges = sorted({lo, hi, *(t for t in self._edges(lo, hi, zone) if lo < t < hi)})
        pieces: list[Piece] = []
        for a, b in itertools.pairwise(edges):
            piece = self._piece_at(a, b, zone, colours)
            last = pieces[-1] if pieces else None
            same_price = last is not None and last.version is piece.version and last.tariff is piece.tariff
            if (
                last
                and same_price
                and (last.period, last.colour, last.colour_assumed)
                == (
                    piece.period,
                    piece.colour,
                    piece.colour_assumed,
                )
            ):
                pieces[-1] = Piece(last.lo, b, last.tariff, last.version, last.period, last.colour, last.colour_assumed)
            else:
                pieces.append(piece)
        return pieces

    def _piece_at(self, a: float, b: float, zone: ZoneInfo, colours: Mapping[date, str]) -> Piece:
        # Nothing changes strictly inside [a, b): its middle says what all of it is.
        local = datetime.fromtimestamp((a + b) / 2, zone)
        minute = local.hour * 60 + local.minute
        tariff, version = self.on(local.date())
        period = version.period_at(minute)
        if not version.is_tempo:
            return Piece(a, b, tariff, version, period, None, False)
        tempo_day = tempo_day_of(local)
        colour = colours.get(tempo_day)
        return Piece(a, b, tariff, version, period, colour or ASSUMED_COLOUR, colour is None)

    def _edges(self, lo: float, hi: float, zone: ZoneInfo) -> Iterator[float]:
        day = datetime.fromtimestamp(lo, zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(hi, zone).date()
        previous = self.on(day)
        # On and off the walk's days, the tariff and version in force change only on the days a
        # choice or a version starts: if none of those in force has hours of its own (single-price
        # tariffs), their first midnights are all the edges there are, and no day is walked (a
        # year by day walked 367 of them, 1 ms of a 15-ms answer).
        dates = self._starts_between(day, last + timedelta(days=1))
        if not any(version.edge_minutes for _, version in (previous, *map(self.on, dates))):
            for start in dates:
                current = self.on(start)
                if current[0] is not previous[0] or current[1] is not previous[1]:
                    yield local_midnight(start, zone).timestamp()
                previous = current
            return
        while day <= last:
            day += timedelta(days=1)
            current = self.on(day)
            if current[0] is not previous[0] or current[1] is not previous[1]:
                yield local_midnight(day, zone).timestamp()
            previous = current
            minutes = current[1].edge_minutes
            if not minutes:
                continue
            for minute in minutes:
                wall = datetime.combine(day, time(minute // 60, minute % 60))
                # Both readings of a repeated wall-clock time (autumn), and the one of a skipped one.
                yield wall.replace(tzinfo=zone, fold=0).timestamp()
                yield wall.replace(tzinfo=zone, fold=1).timestamp()
            yield from dst_transitions(day, zone)

    def _starts_between(self, first: date, last: date) -> list[date]:
        """The days after ``first``, up to ``last``, on which a choice or a tariff's version starts."""
        starts = {c.valid_from for c in self.choices if first < c.valid_from <= last}
        for tariff in self.tariffs.values():
            starts.update(v.valid_from for v in tariff.versions if first < v.valid_from <= last)
        return sorted(starts)


def tempo_day_of(local: datetime) -> date:
    """The Tempo day a local moment belongs to: before 06:00 it is still the previous day's."""
    if local.hour * 60 + local.minute < TEMPO_DAY_START_MINUTE:
        return local.date() - timedelta(days=1)
    return local.date()


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def dst_transitions(day: date, zone: ZoneInfo) -> Iterator[float]:
    """Instants of the local day where the UTC offset changes (a wall-clock edge in a skipped hour
    takes effect there). Offsets change on whole quarter hours of UTC in every real zone."""
    start = local_midnight(day, zone).timestamp()
    end = local_midnight(day + timedelta(days=1), zone).timestamp()
    if datetime.fromtimestamp(start, zone).utcoffset() == datetime.fromtimestamp(end, zone).utcoffset():
        return
    step = 900
    t = math.floor(start / step) * step
    offset = datetime.fromtimestamp(t, zone).utcoffset()
    while t < end:
        t += step
        now = datetime.fromtimestamp(t, zone).utcoffset()
        if now != offset:
            yield float(t)
            offset = now


def month_subscriptions(lo: float, hi: float, plan: Plan, zone: ZoneInfo) -> Decimal:
    """The subscription of [lo, hi), prorated per local calendar month.

    Each stretch of [lo, hi) inside one local month, and under one version, gets the version's
    monthly subscription times the fraction of that month's seconds it covers: a whole month
    costs exactly its subscription whatever its length, a 25-hour day in October 25/745 of it.
    """
    total = Decimal(0)
    t = lo
    while t < hi:
        local = datetime.fromtimestamp(t, zone)
        month_start = local_midnight(local.date().replace(day=1), zone)
        next_month = (month_start.date().replace(day=28) + timedelta(days=4)).replace(day=1)
        month_end = local_midnight(next_month, zone).timestamp()
        day = local.date()
        version = plan.on(day)
        # The next local midnight where the version in force changes, if it is within this month.
        stop = min(hi, month_end)
        probe = day + timedelta(days=1)
        while probe < next_month:
            midnight = local_midnight(probe, zone).timestamp()
            if midnight >= stop:
                break
            if plan.on(probe)[1] is not version[1]:
                stop = midnight
                break
            probe += timedelta(days=1)
        month_seconds = Decimal(str(month_end - month_start.timestamp()))
        total += version[1].subscription_per_month * Decimal(str(stop - t)) / month_seconds
        t = stop
    return total


def shown_decimals(leaves: Iterable[Decimal], least: int = 2, most: int = 6) -> int:
    """Decimals enough for the smallest non-zero amount to show two significant digits.

    3 Wh at 0.2 EUR/kWh is 0.0006 EUR: 5 decimals, "0.00060", never "0.00". At least ``least``
    (cents), at most ``most`` (below a millionth of a euro nothing is worth showing).
    """
    smallest = min((abs(x) for x in leaves if x != 0), default=None)
    if smallest is None:
        return least
    # adjusted() is the exponent of the leading digit: 0.0006 -> -4, so 4 + 1 decimals.
    return max(least, min(most, -smallest.adjusted() + 1))


def shown(amount: Decimal, decimals: int) -> Decimal:
    """An amount rounded as shown: half away from zero, to ``decimals`` decimals."""
    return amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
