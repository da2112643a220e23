"""The clock rules alone (citizenwatt_common/clock_check.py): which readings of a batch are kept
aside, given each sensor's newest stored (seq, ts). No database, no broker: tests/test_quarantine.py
runs the same cases through the real aggregator."""

from __future__ import annotations

from datetime import UTC, datetime

from citizenwatt_common.clock_check import Mark, duration_text, triage, utc_text
from citizenwatt_common.contract import Reading

NOW = datetime(2026, 11, 18, 7, 46, 40, tzinfo=UTC).timestamp()
LIMIT = 300.0


def reading(seq: int | None, ts: float, sensor: str = "house") -> Reading:
    return Reading(sensor=sensor, kind="simulator", ts=ts, power=3000.0, seq=seq)


def test_texts_a_human_reads() -> None:
    assert utc_text(NOW) == "2026-11-18T07:46:40Z"
    assert utc_text(NOW + 0.75) == "2026-11-18T07:46:40Z"  # to the second, not rounded up
    assert duration_text(3592) == "59 min 52 s"
    assert duration_text(82_800) == "23 h 0 min"
    assert duration_text(7) == "7 s"


def test_a_reading_more_than_the_limit_ahead_is_kept_aside_with_how_far() -> None:
    """300 s ahead is allowed (the limit itself), 301 s is not; 23 h ahead is said in hours."""
    batch = [reading(1, NOW + 300), reading(2, NOW + 301), reading(3, NOW + 82_800)]
    verdict = triage(batch, {"house": None}, NOW, LIMIT)
    assert sorted(verdict.quarantined) == [1, 2]
    assert verdict.quarantined[2].startswith("in the future: stamped 2026-11-19T06:46:40Z, 23 h 0 min (82800 s) ahead")
    assert "CW_MAX_FUTURE_SECONDS = 300 s" in verdict.quarantined[2]
    # The reading within the limit is the newest stored: the mark.
    assert verdict.marks == {"house": Mark(1, NOW + 300)}


def test_seq_forward_time_back_is_kept_aside_naming_the_earlier_reading() -> None:
    """Stored: seq 100 at NOW. Seqs 101 and 102 stamped an hour back (NOW-3592, NOW-3584): both
    against seq 100 (a reading kept aside moves no mark), 59 min 52 s and 59 min 44 s before it.
    Seq 103 at NOW+32 is after it: stored, the new mark."""
    batch = [reading(101, NOW - 3592), reading(102, NOW - 3584), reading(103, NOW + 32)]
    verdict = triage(batch, {"house": Mark(100, NOW)}, NOW + 40, LIMIT)
    assert verdict.quarantined == {
        0: "time went back: seq 101 is stamped 2026-11-18T06:46:48Z, 59 min 52 s before seq 100"
        " (2026-11-18T07:46:40Z), already stored with a lower seq",
        1: "time went back: seq 102 is stamped 2026-11-18T06:46:56Z, 59 min 44 s before seq 100"
        " (2026-11-18T07:46:40Z), already stored with a lower seq",
    }
    assert verdict.marks == {"house": Mark(103, NOW + 32)}


def test_within_a_batch_the_rule_follows_seq_order_not_arrival() -> None:
    """Arrived 103 (NOW+16), then 102 (NOW+8), then 104 (NOW-100): in seq order 102 and 103 go
    forward from the mark (100, NOW); 104 is 116 s before 103."""
    batch = [reading(103, NOW + 16), reading(102, NOW + 8), reading(104, NOW - 100)]
    verdict = triage(batch, {"house": Mark(100, NOW)}, NOW + 20, LIMIT)
    assert list(verdict.quarantined) == [2]
    assert "before seq 103" in verdict.quarantined[2]


def test_an_outbox_replay_is_not_time_going_back() -> None:
    """Stored up to seq 250 at NOW; the outbox then sends seqs 150..160, 100 s to 20 s older: lower
    seqs, nothing to compare them with; the mark stays."""
    batch = [reading(seq, NOW - 100 + 8 * (seq - 150)) for seq in range(150, 161)]
    verdict = triage(batch, {"house": Mark(250, NOW)}, NOW, LIMIT)
    assert verdict.quarantined == {}
    assert verdict.marks == {"house": Mark(250, NOW)}


def test_a_seq_reset_moves_the_mark_and_the_next_clock_jump_is_still_caught() -> None:
    """An older collector restarted: seq from 0 again, time forward (NOW+30, NOW+38). Stored; the
    mark is now (1, NOW+38), so in the next batch seq 2 stamped an hour back is caught against it,
    not let through for being below the old numbering's 5000."""
    first = triage([reading(0, NOW + 30), reading(1, NOW + 38)], {"house": Mark(5000, NOW)}, NOW + 40, LIMIT)
    assert first.quarantined == {}
    assert first.marks == {"house": Mark(1, NOW + 38)}
    second = triage([reading(2, NOW + 46 - 3600)], first.marks, NOW + 50, LIMIT)
    assert list(second.quarantined) == [0]
    assert "before seq 1 " in second.quarantined[0]


def test_a_reset_inside_one_batch_keeps_the_old_numbering_s_last_readings() -> None:
    """One batch: the old run's last readings (5001 at NOW+8, 5002 at NOW+16), then the restarted
    collector's (0 at NOW+30, 1 at NOW+38). In seq order the new numbering comes first; the old
    one's readings go on from its own mark (5000, NOW) and are stored, not taken for a clock
    going back; 5003 stamped before 5002 would still be."""
    batch = [reading(5001, NOW + 8), reading(5002, NOW + 16), reading(5003, NOW + 12), reading(0, NOW + 30)]
    batch.append(reading(1, NOW + 38))
    verdict = triage(batch, {"house": Mark(5000, NOW)}, NOW + 40, LIMIT)
    assert list(verdict.quarantined) == [2]
    assert "before seq 5002 " in verdict.quarantined[2]
    assert verdict.marks == {"house": Mark(1, NOW + 38)}


def test_sensors_are_judged_apart_and_readings_without_seq_only_by_the_future() -> None:
    """'a' at seq 7 an hour before 'b''s mark is no concern of 'b''s; a reading without seq an hour
    back is stored (nothing to compare), one without seq a day ahead is not."""
    batch = [reading(7, NOW - 3600, "a"), reading(None, NOW - 3600, "b"), reading(None, NOW + 86_000, "b")]
    verdict = triage(batch, {"a": None, "b": Mark(10, NOW)}, NOW, LIMIT)
    assert list(verdict.quarantined) == [2]
    assert verdict.marks == {"a": Mark(7, NOW - 3600), "b": Mark(10, NOW)}
