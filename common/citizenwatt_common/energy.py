"""Energy arithmetic on power samples: pure functions, shared by the aggregator's rollups and the API.

Power readings are samples of a continuous signal, linear between two consecutive samples of
one sensor. The energy of a segment is its trapezoid; a segment longer than the gap limit (a
sensor that was offline) carries none. A segment takes the tariff (day/night) of the sample
that ends it. Part of a segment inside an interval is the integral of the linear signal over
that part, so splitting an interval in two never changes the sum.

Negative power is export (solar panels feeding the grid). Import and export are kept apart: a
segment whose two powers have opposite signs crosses zero at
``t* = t0 + p0 / (p0 - p1) * (t1 - t0)``; its part before ``t*`` is one direction and its part after
the other, each its own triangle. So import and export are each the integral of ``max(p, 0)`` and
``max(-p, 0)``, both never negative, and import - export is the net energy (day + night).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

ROLLUP_SECONDS = 900
"""Width of a stored rollup bucket. 15 min divides every real UTC offset, so local hours and days
are whole numbers of buckets in every time zone."""

HOUR_SECONDS = 3600
"""Width of the coarser stored rollup (whole UTC hours), for long periods."""

MINUTE_SECONDS = 60
"""Width of the finest stored rollup: buckets of a step under 15 minutes (a week at 1 or 5
minutes, a month at the bucket cap) are summed from these, and only the few seconds around each
bucket edge are integrated from raw readings."""


@dataclass(frozen=True, slots=True)
class Sample:
    ts: float
    power: float
    night: bool


@dataclass(frozen=True, slots=True)
class Segment:
    t0: float
    t1: float
    p0: float
    p1: float
    night: bool

    def power_at(self, t: float) -> float:
        return self.p0 + (self.p1 - self.p0) * (t - self.t0) / (self.t1 - self.t0)

    def part_in(self, lo: float, hi: float) -> tuple[float, float]:
        """(joules, seconds) of this segment that lie inside [lo, hi)."""
        a, b = max(lo, self.t0), min(hi, self.t1)
        if b <= a:
            return 0.0, 0.0
        if a == self.t0 and b == self.t1:
            return (self.p0 + self.p1) / 2 * (b - a), b - a
        return (self.power_at(a) + self.power_at(b)) / 2 * (b - a), b - a

    def zero_crossing(self) -> float | None:
        """The time the linear signal crosses zero strictly inside the segment, if it does."""
        if (self.p0 > 0 > self.p1) or (self.p0 < 0 < self.p1):
            return self.t0 + self.p0 / (self.p0 - self.p1) * (self.t1 - self.t0)
        return None

    def flows_in(self, lo: float, hi: float) -> tuple[float, float]:
        """(import joules, export joules) of this segment inside [lo, hi), both >= 0."""
        a, b = max(lo, self.t0), min(hi, self.t1)
        if b <= a:
            return 0.0, 0.0
        if a == self.t0 and b == self.t1:
            return linear_flows(self.p0, self.p1, b - a)
        return linear_flows(self.power_at(a), self.power_at(b), b - a)


def linear_flows(pa: float, pb: float, seconds: float) -> tuple[float, float]:
    """(import joules, export joules) of a signal linear from ``pa`` to ``pb`` W over ``seconds``.

    Same signs (or a zero end): the trapezoid goes wholly to one side. Opposite signs: the zero
    crossing cuts it into two triangles; the one on the side of ``p`` has height ``|p|`` and base
    ``seconds * |p| / |pa - pb|`` (similar triangles), so its area is ``p**2 * seconds / (2 |pa - pb|)``.
    The two triangles add up to the trapezoid: (pa**2 - pb**2) / (2 (pa - pb)) = (pa + pb) / 2.
    Written without the crossing time, so a part cut exactly at t* (whose end is 0 W, or float dust
    around it) comes out right with no special case.
    """
    if pa >= 0 and pb >= 0:
        return (pa + pb) / 2 * seconds, 0.0
    if pa <= 0 and pb <= 0:
        return 0.0, -(pa + pb) / 2 * seconds
    spread = 2 * abs(pa - pb)
    positive, negative = (pa, pb) if pa > 0 else (pb, pa)
    return positive * positive * seconds / spread, negative * negative * seconds / spread


def segments_of(samples: Iterable[Sample], max_gap: float) -> Iterator[Segment]:
    """Consecutive pairs of time-sorted samples that bound energy (0 < dt <= max_gap)."""
    previous: Sample | None = None
    for sample in samples:
        if previous is not None and 0 < sample.ts - previous.ts <= max_gap:
            yield Segment(previous.ts, sample.ts, previous.power, sample.power, sample.night)
        previous = sample


# Less covered time than this is none: rollups are kept by adding and subtracting deltas, which
# leaves float dust.
EMPTY_SECONDS = 1e-6


@dataclass(slots=True)
class Energy:
    """Energy and covered time, split by tariff. Also used for signed deltas of rollups.

    ``day_wh`` and ``night_wh`` are net energy (export counts negative), as they always were;
    ``import_wh`` and ``export_wh`` are the two directions apart (each >= 0 outside of deltas),
    with ``import_wh - export_wh == day_wh + night_wh`` up to float rounding.
    """

    day_wh: float = 0.0
    night_wh: float = 0.0
    day_seconds: float = 0.0
    night_seconds: float = 0.0
    import_wh: float = 0.0
    export_wh: float = 0.0

    def add_segment_part(self, segment: Segment, lo: float = -math.inf, hi: float = math.inf) -> None:
        joules, seconds = segment.part_in(lo, hi)
        if seconds <= 0:
            return
        imported, exported = segment.flows_in(lo, hi)
        self.import_wh += imported / 3600
        self.export_wh += exported / 3600
        if segment.night:
            self.night_wh += joules / 3600
            self.night_seconds += seconds
        else:
            self.day_wh += joules / 3600
            self.day_seconds += seconds

    def add_whole_segment(self, segment: Segment) -> None:
        """add_segment_part for a segment wholly inside the interval: the same figures (part_in
        and flows_in take the whole trapezoid then), without cutting it. Most 8-s segments lie
        inside their minute: the writers call this some 40 000 times for 20 000 readings."""
        seconds = segment.t1 - segment.t0
        if seconds <= 0:
            return
        imported, exported = linear_flows(segment.p0, segment.p1, seconds)
        self.import_wh += imported / 3600
        self.export_wh += exported / 3600
        if segment.night:
            self.night_wh += (segment.p0 + segment.p1) / 2 * seconds / 3600
            self.night_seconds += seconds
        else:
            self.day_wh += (segment.p0 + segment.p1) / 2 * seconds / 3600
            self.day_seconds += seconds

    def __iadd__(self, other: Energy) -> Energy:
        self.day_wh += other.day_wh
        self.night_wh += other.night_wh
        self.day_seconds += other.day_seconds
        self.night_seconds += other.night_seconds
        self.import_wh += other.import_wh
        self.export_wh += other.export_wh
        return self

    def scaled(self, factor: float) -> Energy:
        return Energy(
            self.day_wh * factor,
            self.night_wh * factor,
            self.day_seconds * factor,
            self.night_seconds * factor,
            self.import_wh * factor,
            self.export_wh * factor,
        )

    @property
    def total_wh(self) -> float:
        """Net energy: import minus export."""
        return self.day_wh + self.night_wh

    @property
    def seconds(self) -> float:
        return self.day_seconds + self.night_seconds

    @property
    def is_empty(self) -> bool:
        return self.seconds < EMPTY_SECONDS

    def mean_power(self) -> tuple[float | None, float | None, float | None]:
        """(all, day, night) mean power in W over the time each part covers; None where none."""

        def mean(wh: float, seconds: float) -> float | None:
            return wh * 3600 / seconds if seconds >= EMPTY_SECONDS else None

        return (
            mean(self.total_wh, self.seconds),
            mean(self.day_wh, self.day_seconds),
            mean(self.night_wh, self.night_seconds),
        )


def energy_between(segments: Iterable[Segment], lo: float, hi: float) -> Energy:
    total = Energy()
    for segment in segments:
        total.add_segment_part(segment, lo, hi)
    return total


def bucket_start(ts: float, width: int = ROLLUP_SECONDS) -> int:
    return math.floor(ts / width) * width


def split_by_bucket(segments: Iterable[Segment], width: int = ROLLUP_SECONDS) -> dict[int, Energy]:
    """Each segment's energy, cut at every multiple of ``width`` seconds since the epoch."""
    buckets: dict[int, Energy] = {}
    for segment in segments:
        start = bucket_start(segment.t0, width)
        if start + width >= segment.t1:  # inside one bucket: no cut to make
            energy = buckets.get(start)
            if energy is None:
                energy = buckets[start] = Energy()
            energy.add_whole_segment(segment)
            continue
        while start < segment.t1:
            buckets.setdefault(start, Energy()).add_segment_part(segment, start, start + width)
            start += width
    return buckets


@dataclass
class RollupDelta:
    """Signed change of per-bucket energy when some samples join (or leave) a sensor's series."""

    buckets: dict[int, Energy] = field(default_factory=dict)

    def add(self, other: dict[int, Energy], sign: float) -> None:
        for start, energy in other.items():
            self.buckets.setdefault(start, Energy()).__iadd__(energy if sign == 1 else energy.scaled(sign))


def chain_delta(
    chain: Sequence[Sample], changed: set[float], max_gap: float, width: int = ROLLUP_SECONDS
) -> dict[int, Energy]:
    """Per-bucket (``width`` s) energy of ``chain`` minus that of ``chain`` without the samples at
    ``changed`` times.

    ``chain`` must hold every sample from the one before the first changed sample to the one
    after the last, so every segment whose energy moves is inside it.
    """
    delta = RollupDelta()
    delta.add(split_by_bucket(segments_of(chain, max_gap), width), +1)
    delta.add(split_by_bucket(segments_of([s for s in chain if s.ts not in changed], max_gap), width), -1)
    return delta.buckets
