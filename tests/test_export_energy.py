"""Import and export kept apart (negative power is export), against values worked out by hand.

The exporting day, around 06:00 in Paris (winter, UTC+1), T = 05:00 UTC: a whole UTC hour (so a
15-minute and an hourly rollup edge) and the end of a 22:00-06:00 night window.

    T-200: 300 W (night)   T-100: 100 W (night)   T+100: -300 W (day)   T+200: -100 W   T+300: 100 W

Segments (each takes the tariff of the reading ending it):
1. (T-200, T-100) night, 300 -> 100 W: import (300+100)/2*100 = 20000 J.
2. (T-100, T+100) day, 100 -> -300 W: crosses zero at t* = T-100 + 100/400*200 = T-50.
   Import: triangle 100 W * 50 s / 2 = 2500 J; export: 300 W * 150 s / 2 = 22500 J; net -20000 J.
   At T the power is -100 W: before T, import 2500 and export 100*50/2 = 2500 J (net 0);
   after T, export (100+300)/2*100 = 20000 J.
3. (T+100, T+200) day, -300 -> -100 W: export (300+100)/2*100 = 20000 J.
4. (T+200, T+300) day, -100 -> 100 W: crosses zero at T+250: export 2500 J, import 2500 J.
Day: import 25000 J, export 45000 J, net -20000 J (night +20000, day -40000).
Quarter hour [T-900, T): import 22500, export 2500, night 20000, day 0, 100 s each.
Quarter hour [T, T+900): import 2500, export 42500, day -40000 over 300 s.
"""

from __future__ import annotations

import pytest

from citizenwatt_common.energy import (
    Energy,
    Sample,
    Segment,
    chain_delta,
    energy_between,
    linear_flows,
    segments_of,
    split_by_bucket,
)

T = 1_800_000_000  # a multiple of 3600 (and of 900)
TRACE = [
    Sample(T - 200, 300, True),
    Sample(T - 100, 100, True),
    Sample(T + 100, -300, False),
    Sample(T + 200, -100, False),
    Sample(T + 300, 100, False),
]
J = 1 / 3600  # Wh per joule


def test_same_signs_go_wholly_to_one_side() -> None:
    assert linear_flows(100, 300, 10) == (2000, 0)
    assert linear_flows(-100, -300, 10) == (0, 2000)
    assert linear_flows(0, 0, 10) == (0, 0)
    # A zero end belongs to neither side: the trapezoid is a triangle on the other's side.
    assert linear_flows(0, -200, 10) == (0, 1000)
    assert linear_flows(200, 0, 10) == (1000, 0)


def test_opposite_signs_make_two_triangles() -> None:
    # 100 -> -300 W over 200 s crosses zero after 50 s: 100*50/2 = 2500 J in, 300*150/2 = 22500 J out.
    assert linear_flows(100, -300, 200) == pytest.approx((2500, 22500))
    # The other way round, the same triangles.
    assert linear_flows(-300, 100, 200) == pytest.approx((2500, 22500))
    # Symmetric: -100 -> 100 over 100 s, 2500 J each way, nothing net.
    assert linear_flows(-100, 100, 100) == pytest.approx((2500, 2500))


def test_the_zero_crossing() -> None:
    assert Segment(T - 100, T + 100, 100, -300, False).zero_crossing() == T - 50
    assert Segment(0, 100, -100, 100, False).zero_crossing() == 50
    # Touching zero at an end, or staying on one side, is no crossing.
    assert Segment(0, 100, 0, -100, False).zero_crossing() is None
    assert Segment(0, 100, 100, 50, False).zero_crossing() is None


def test_the_exporting_day() -> None:
    total = energy_between(segments_of(TRACE, 300), T - 3600, T + 3600)
    assert total.import_wh == pytest.approx(25_000 * J)
    assert total.export_wh == pytest.approx(45_000 * J)
    assert total.night_wh == pytest.approx(20_000 * J)
    assert total.day_wh == pytest.approx(-40_000 * J)
    assert total.total_wh == pytest.approx(-20_000 * J)
    assert (total.day_seconds, total.night_seconds) == (400, 100)  # segments 2-4 are day


def test_parts_of_a_crossing_segment_cut_anywhere() -> None:
    segment = Segment(T - 100, T + 100, 100, -300, False)  # crossing at T-50, -100 W at T

    def flows(lo: float, hi: float) -> tuple[float, float]:
        return segment.flows_in(lo, hi)

    # Cut exactly at t*: all import before, all export after.
    assert flows(T - 100, T - 50) == pytest.approx((2500, 0))
    assert flows(T - 50, T + 100) == pytest.approx((0, 22500))
    # Cut at the rollup edge T: 2500 J each way before it, (100+300)/2*100 = 20000 J out after.
    assert flows(-1e12, T) == pytest.approx((2500, 2500))
    assert flows(T, 1e12) == pytest.approx((0, 20000))
    # Inside, around t*: T-75 (50 W) to T-25 (-50 W): two triangles of 50 W * 25 s / 2 = 625 J.
    assert flows(T - 75, T - 25) == pytest.approx((625, 625))
    # Wholly on the export side: T-25 (-50 W) to T+75 (-250 W): 150 W * 100 s = 15000 J.
    assert flows(T - 25, T + 75) == pytest.approx((0, 15000))
    # Outside the segment: nothing.
    assert flows(T + 100, T + 200) == (0, 0)


def test_rollup_buckets_carry_the_split() -> None:
    buckets = split_by_bucket(segments_of(TRACE, 300))
    assert sorted(buckets) == [T - 900, T]
    before, after = buckets[T - 900], buckets[T]
    assert (before.import_wh, before.export_wh) == pytest.approx((22_500 * J, 2_500 * J))
    assert (before.night_wh, before.day_wh) == pytest.approx((20_000 * J, 0))
    assert (after.import_wh, after.export_wh) == pytest.approx((2_500 * J, 42_500 * J))
    assert after.day_wh == pytest.approx(-40_000 * J)


def test_a_late_reading_moves_import_and_export_by_the_exact_change() -> None:
    # A late -100 W at T-150 (night) cuts segment 1 in two:
    # (T-200, T-150) 300 -> -100 W crosses zero at T-162.5: 300*37.5/2 = 5625 J in, 100*12.5/2 = 625 J out;
    # (T-150, T-100) -100 -> 100 W crosses zero at T-125: 1250 J each way.
    # Import goes from 20000 to 6875 J (-13125), export from 0 to 1875 J, all in [T-900, T).
    chain = [TRACE[0], Sample(T - 150, -100, True), TRACE[1]]
    delta = chain_delta(chain, {T - 150}, 300)
    assert sorted(delta) == [T - 900]
    assert delta[T - 900].import_wh == pytest.approx(-13_125 * J)
    assert delta[T - 900].export_wh == pytest.approx(1_875 * J)
    # Net: 20000 J becomes (300-100)/2*50 + 0 = 5000 J.
    assert delta[T - 900].total_wh == pytest.approx(-15_000 * J)


def test_energy_adds_and_scales_the_split() -> None:
    a = Energy(1, 2, 3, 4, 5, 6)
    a += Energy(1, 1, 1, 1, 1, 1)
    assert a == Energy(2, 3, 4, 5, 6, 7)
    assert a.scaled(-1) == Energy(-2, -3, -4, -5, -6, -7)
