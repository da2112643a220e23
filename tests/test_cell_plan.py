"""How queries.energy_in_intervals plans its cells, before any database is read: where each cell is
read from, which quarter hours are derived from their rollup, and the edges of fine steps. The
figures are worked out by hand; tests/test_energy_queries.py checks the energies on every backend.
"""

from __future__ import annotations

from citizenwatt_api import queries
from citizenwatt_api.queries import _Days

HOUR = 1_792_998_000.0  # a whole hour (498 055 x 3600): also a quarter hour and a minute
assert HOUR % 3600 == 0


def test_a_cell_is_read_from_the_coarsest_rollup_both_its_edges_are_on() -> None:
    edges = [HOUR, HOUR + 60, HOUR + 900, HOUR + 3600, HOUR + 3637.5, HOUR + 7200]
    assert queries._sources(edges, queries._NO_DAYS) == ["minute", "minute", "quarter", "raw", "raw"]
    # Two whole hours: hourly; a closed local day between two midnights: its day row.
    day = _Days("Europe/Paris", HOUR + 86_400, [HOUR, HOUR + 86_400])
    assert queries._sources([HOUR, HOUR + 86_400], day) == ["daily"]
    assert queries._sources([HOUR, HOUR + 86_400], _Days("Europe/Paris", HOUR, [HOUR, HOUR + 86_400])) == ["hourly"]
    assert queries._sources([HOUR, HOUR + 86_400, HOUR + 90_000], day) == ["daily", "hourly"]


def test_a_quarter_hour_cut_into_a_few_raw_cells_has_its_longest_derived_from_its_rollup() -> None:
    # [HOUR, HOUR + 100) and [HOUR + 100, HOUR + 900): the second (800 s) is the rollup minus the first.
    sources = ["raw", "raw"]
    assert queries._split_quarters([HOUR, HOUR + 100, HOUR + 900], sources) == [(0, 2, 1)]
    assert sources == ["raw", "derived"]
    # Five cells of 180 s, the third cut 1 s longer: still derived, the longest one.
    edges = [HOUR, HOUR + 180, HOUR + 360, HOUR + 541, HOUR + 720, HOUR + 900]
    sources = ["raw"] * 5
    assert queries._split_quarters(edges, sources) == [(0, 5, 2)]
    # Six cells of 150 s, or 112 cells of about 8 s (fine steps): every cell is integrated.
    for count in (6, 112):
        edges = [HOUR + 900 * k / count for k in range(count + 1)]
        sources = ["raw"] * count
        assert queries._split_quarters(edges, sources) == []
        assert sources == ["raw"] * count
    # A quarter whose cells do not reach its end (the span stops inside it) is not derived.
    sources = ["raw", "raw"]
    assert queries._split_quarters([HOUR, HOUR + 100, HOUR + 800], sources) == []


def test_fine_back_to_back_steps_are_their_own_cell_edges() -> None:
    start = HOUR + 0.37
    steps = [(start + 8 * k, start + 8 * (k + 1)) for k in range(500)]
    assert queries._back_to_back(steps)
    assert queries._cell_edges(steps, queries._NO_DAYS, back_to_back=True) == [start + 8 * k for k in range(501)]
    # The same as the general way (a set of every edge, sorted).
    assert queries._cell_edges(steps, queries._NO_DAYS, back_to_back=True) == queries._cell_edges(steps)
    # Not back to back: a gap, an overlap, an empty interval, none at all.
    assert not queries._back_to_back([(HOUR, HOUR + 60), (HOUR + 61, HOUR + 120)])
    assert not queries._back_to_back([(HOUR, HOUR + 60), (HOUR + 59, HOUR + 120)])
    assert not queries._back_to_back([(HOUR, HOUR + 60), (HOUR + 60, HOUR + 60)])
    assert not queries._back_to_back([])
    # Back to back but longer than a quarter hour: the quarter and hour edges inside are added.
    long_steps = [(HOUR + 100, HOUR + 2000), (HOUR + 2000, HOUR + 4000)]
    assert queries._cell_edges(long_steps, queries._NO_DAYS, back_to_back=True) == [
        HOUR + 100,
        HOUR + 900,
        HOUR + 1800,
        HOUR + 2000,
        HOUR + 2700,
        HOUR + 3600,
        HOUR + 4000,
    ]
