"""Energy arithmetic against values worked out by hand."""

from __future__ import annotations

import pytest

from citizenwatt_common.energy import Sample, energy_between, segments_of, split_by_bucket

# 0 s: 100 W, 10 s: 300 W, 20 s: 300 W, then the sensor is away 980 s (> 300 s limit),
# 1000 s: 500 W (night), 1010 s: 700 W (night).
TRACE = [
    Sample(0, 100, False),
    Sample(10, 300, False),
    Sample(20, 300, False),
    Sample(1000, 500, True),
    Sample(1010, 700, True),
]


def test_trapezoids_and_a_gap_that_carries_nothing() -> None:
    segments = list(segments_of(TRACE, max_gap=300))
    assert [(s.t0, s.t1) for s in segments] == [(0, 10), (10, 20), (1000, 1010)]
    total = energy_between(segments, 0, 2000)
    # (100+300)/2*10 = 2000 J, 300*10 = 3000 J, (500+700)/2*10 = 6000 J (night).
    assert total.day_wh == pytest.approx(5000 / 3600)
    assert total.night_wh == pytest.approx(6000 / 3600)
    assert (total.day_seconds, total.night_seconds) == (20, 10)


def test_the_segment_ending_at_a_reading_takes_its_tariff() -> None:
    # 0 s day 100 W, 10 s night 100 W: the segment (0, 10] ends at a night reading.
    total = energy_between(segments_of([Sample(0, 100, False), Sample(10, 100, True)], 300), 0, 10)
    assert total.day_wh == 0
    assert total.night_wh == pytest.approx(1000 / 3600)


def test_part_of_a_segment_follows_the_linear_signal() -> None:
    part = energy_between(segments_of(TRACE, 300), 5, 15)
    # [5, 10]: power goes 200 -> 300 W, 250 W * 5 s = 1250 J; [10, 15]: 300 W * 5 s = 1500 J.
    assert part.total_wh == pytest.approx(2750 / 3600)
    assert part.mean_power()[0] == pytest.approx(275)
    assert part.mean_power()[2] is None


def test_a_gap_exactly_at_the_limit_still_counts() -> None:
    total = energy_between(segments_of([Sample(0, 36, False), Sample(300, 36, False)], 300), 0, 300)
    assert total.total_wh == pytest.approx(3)  # 36 W for 300 s = 10800 J = 3 Wh


def test_buckets_cut_segments_at_their_edges() -> None:
    # A 1000 W flat segment from 850 s to 950 s straddles the 900 s rollup edge: 50 s each side.
    buckets = split_by_bucket(segments_of([Sample(850, 1000, False), Sample(950, 1000, False)], 300))
    assert sorted(buckets) == [0, 900]
    assert buckets[0].day_wh == pytest.approx(50_000 / 3600)
    assert buckets[900].day_wh == pytest.approx(50_000 / 3600)
