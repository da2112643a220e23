"""A collector's durable outbox: every reading stays on disk until the aggregator says it is stored.

A broker acknowledgement (PUBACK) is not enough: a broker killed before its next snapshot forgets
messages it had acknowledged. So an entry leaves the outbox only when the aggregator confirms the
commit (on ``<base>/<sensor>/committed``); everything else is sent again after a reconnect or a
restart, and the database's (sensor, ts) key makes the repeats harmless.

SQLite (in the standard library) is the right size for a queue of a few thousand small rows on
an SD card; with no path the same code runs in memory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path


class Outbox:
    def __init__(self, path: str | Path | None, capacity: int) -> None:
        self.capacity = capacity
        target = ":memory:" if path is None else str(path)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Used only from the publisher's pump thread, which also creates it.
        self._db = sqlite3.connect(target, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a reading written here survives a power cut
        self._db.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")

    def add(self, seq: int, payload: bytes) -> int:
        """Keep a reading; returns how many of the oldest had to be dropped to stay within capacity."""
        self._db.execute("INSERT OR REPLACE INTO outbox (seq, payload) VALUES (?, ?)", (seq, payload))
        excess = len(self) - self.capacity
        if excess > 0:
            self._db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (excess,))
            return excess
        return 0

    def confirm(self, ranges: Iterable[tuple[int, int]]) -> int:
        """Forget readings the aggregator committed (inclusive seq ranges); returns how many."""
        removed = 0
        for low, high in ranges:
            removed += self._db.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", (low, high)).rowcount
        return removed

    def all_in_order(self) -> list[tuple[int, bytes]]:
        return [
            (int(seq), bytes(payload))
            for seq, payload in self._db.execute("SELECT seq, payload FROM outbox ORDER BY seq")
        ]

    def oldest_seq(self) -> int | None:
        row = self._db.execute("SELECT min(seq) FROM outbox").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def __len__(self) -> int:
        row = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._db.close()


def newest_seq_in(path: str | Path | None) -> int | None:
    """The highest seq kept by a previous run, so a new run never reuses one (the Pi may boot with a wrong clock)."""
    if path is None or not Path(path).exists():
        return None
    db = sqlite3.connect(str(path))
    try:
        row = db.execute("SELECT max(seq) FROM outbox").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
    return None if row is None or row[0] is None else int(row[0])
