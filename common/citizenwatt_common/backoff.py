"""Retry delays shared by the collectors and the aggregator.

A module of its own so the aggregator need not import the collector package (and its outbox's
sqlite3) for one class: 1.5 MB of RSS.
"""

from __future__ import annotations


class Backoff:
    """1 s, 2 s, 4 s ... up to ``maximum``; reset after a success."""

    def __init__(self, initial: float = 1.0, maximum: float = 60.0) -> None:
        self.initial, self.maximum, self._next = initial, maximum, initial

    def next_delay(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial
