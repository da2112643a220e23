"""The collector's outbox on real files: what it keeps, when it syncs, how little it writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from citizenwatt_common.collector.outbox import (
    SYNC_AFTER_SECONDS,
    Outbox,
    newest_seq_in,
    records_in,
    segment_paths,
)


class Clock:
    """The outbox's notion of now, moved by the test (its sync deadline is what is under test)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def payload(seq: int) -> bytes:
    return b'{"v": 1, "seq": %d, "power": 41.7}' % seq


def test_kept_across_a_reopen_in_seq_order(tmp_path: Path) -> None:
    path = tmp_path / "outbox"
    box = Outbox(path, capacity=100)
    for seq in range(10, 20):
        assert box.add(seq, payload(seq)) == 0
    assert box.confirm([(10, 12), (15, 15)]) == 4
    box.close()
    assert newest_seq_in(path) == 19
    again = Outbox(path, capacity=100)
    # Confirmations are not written down: a restart sends the confirmed ones again (the database
    # ignores repeats); what matters is that none unconfirmed is missing, and the order.
    assert [seq for seq, _ in again.all_in_order()] == list(range(10, 20))
    assert again.all_in_order()[0] == (10, payload(10))
    again.close()


def test_a_full_outbox_drops_the_oldest(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox", capacity=3)
    dropped = sum(box.add(seq, payload(seq)) for seq in range(1, 6))
    assert dropped == 2
    assert [seq for seq, _ in box.all_in_order()] == [3, 4, 5]
    assert box.oldest_seq() == 3
    box.close()
    assert [seq for seq, _ in Outbox(tmp_path / "outbox", capacity=3).all_in_order()] == [3, 4, 5]


def test_steady_state_never_syncs_and_an_unconfirmed_reading_is_synced_in_time(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "outbox", capacity=100, clock=clock)
    # Confirmed within 8 s, as the aggregator does: no sync, however long it runs.
    for seq in range(1, 200):
        box.add(seq, payload(seq))
        clock.now += 8.0
        assert not box.sync_if_due()
        box.confirm([(seq, seq)])
    assert box.syncs == 0
    # Not confirmed: synced once it has waited SYNC_AFTER_SECONDS, not before, and only once.
    box.add(500, payload(500))
    deadline = box.sync_deadline()
    assert deadline == clock.now + SYNC_AFTER_SECONDS
    clock.now = deadline - 0.01
    assert not box.sync_if_due()
    clock.now = deadline
    assert box.sync_if_due()
    assert box.syncs == 1
    assert box.sync_deadline() is None and not box.sync_if_due()
    box.close()


def test_segments_are_reused_so_the_files_stay_small(tmp_path: Path) -> None:
    path = tmp_path / "outbox"
    box = Outbox(path, capacity=100, segment_bytes=4096)
    for seq in range(1, 2001):
        box.add(seq, payload(seq))
        box.confirm([(seq, seq)])
    sizes = [p.stat().st_size for p in segment_paths(path)]
    record = len(payload(2000)) + 21
    assert sum(sizes) <= 2 * (4096 + record), sizes
    # A restart sends again at most what the two segments still hold.
    assert len(records_in(path)) < 2 * 4096 // record + 2
    box.close()


def test_a_segment_with_unconfirmed_readings_is_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "outbox"
    box = Outbox(path, capacity=10_000, segment_bytes=1024)
    box.add(1, payload(1))  # never confirmed (the aggregator away, say)
    for seq in range(2, 300):
        box.add(seq, payload(seq))
        box.confirm([(seq, seq)])
    box.close()
    assert 1 in dict(records_in(path))


def test_a_torn_record_ends_the_log_and_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "outbox"
    box = Outbox(path, capacity=100)
    for seq in range(1, 4):
        box.add(seq, payload(seq))
    box.close()
    active = segment_paths(path)[0]
    intact = active.stat().st_size
    with active.open("ab") as handle:
        handle.write(b"\xc7\x04\x00\x00")  # the start of a record a power cut interrupted
    assert [seq for seq, _ in records_in(path)] == [1, 2, 3]
    again = Outbox(path, capacity=100)
    assert active.stat().st_size == intact
    again.add(4, payload(4))
    again.close()
    assert [seq for seq, _ in records_in(path)] == [1, 2, 3, 4]


def test_an_older_versions_sqlite_outbox_is_imported_once(tmp_path: Path) -> None:
    legacy = tmp_path / "outbox.sqlite"
    db = sqlite3.connect(legacy)
    db.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    db.executemany("INSERT INTO outbox VALUES (?, ?)", [(seq, payload(seq)) for seq in (7, 8)])
    db.commit()
    db.close()
    path = tmp_path / "outbox"
    assert newest_seq_in(path) == 8
    box = Outbox(path, capacity=100)
    assert box.all_in_order() == [(7, payload(7)), (8, payload(8))]
    box.close()
    assert not legacy.exists()
    assert [seq for seq, _ in records_in(path)] == [7, 8]


def test_in_memory_without_a_path() -> None:
    box = Outbox(None, capacity=2)
    assert box.add(1, payload(1)) == 0
    assert box.add(2, payload(2)) == 0
    assert box.add(3, payload(3)) == 1
    assert box.confirm([(0, 2**62)]) == 2
    assert len(box) == 0 and box.sync_deadline() is None
    box.close()
