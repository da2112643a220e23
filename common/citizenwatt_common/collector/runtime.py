"""The run loop every collector shares: settings, signals, device outages and backoff.

A collector supplies a transport (talks to the hardware) and a pure decoder; this module turns
their output into published readings and handles everything that is the same for all of them.

Time: a collector stamps each reading with ``runtime.now()`` when it is measured (or lets
``reading()`` do it). While the kernel says the wall clock is not synchronised (a Pi without a
real-time clock, just booted), the reading is marked and handed to the publisher to hold until the
clock is right (publisher.py, held.py); ``seq`` comes from a floor kept beside the outbox
(seqfloor.py), never from the clock. Everything is in Unix time: a change to or from summer time
is no jump.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from ..backoff import Backoff
from ..contract import CLOCK_UNSYNCED, Reading
from ..envsettings import SettingsError
from ..logs import setup_logging
from .clock import Clock, Stamp
from .outbox import newest_seq_in
from .publisher import ReadingPublisher
from .seqfloor import SeqCounter
from .settings import CollectorSettings

__all__ = ["CollectorRuntime", "CollectorSettings", "DeviceUnavailable", "main_for", "settings_or_exit"]

log = logging.getLogger(__name__)
S = TypeVar("S", bound=CollectorSettings)


class DeviceUnavailable(Exception):
    """The device cannot be reached. The message names the device and what the user should check."""


class CollectorRuntime:
    def __init__(
        self,
        settings: CollectorSettings,
        kind: str,
        publisher: ReadingPublisher | None = None,
        clock: Clock | None = None,
    ) -> None:
        """``clock``: the kernel's (the default) or a test's stand-in."""
        self.settings = settings
        self.kind = kind
        self.stop_event = threading.Event()
        self.clock = clock or Clock()
        self.publisher = publisher or ReadingPublisher(
            settings,
            settings.sensor_id,
            buffer_size=settings.buffer_size,
            outbox_path=settings.outbox_path,
            clock=self.clock,
            clock_wait_seconds=settings.clock_wait_seconds,
        )
        # Increasing within a run and across restarts whatever the clock does (seqfloor.py).
        self._seqs = SeqCounter(
            settings.outbox_path, newest_seq_in(settings.outbox_path), lambda: int(self.clock.wall() * 1000)
        )
        self.first_seq = self._seqs.first
        self._to_hold: dict[int, Stamp] = {}  # seq -> stamp of a reading made but not yet published
        self._device_error: str | None = None
        self._backoff = Backoff()

    def now(self) -> Stamp:
        """The moment of a measurement, to give ``reading(at=...)``: take it when the data arrives."""
        return self.clock.stamp()

    def wait_for_clock(self) -> None:
        """Until the kernel says the clock is synchronised, ``CW_CLOCK_WAIT_SECONDS`` after boot at
        most, or a stop: for work that reads the wall clock to decide what to do (the simulator's
        backfill lays its grid on it), unlike a measurement, which can be re-stamped later."""
        logged = False
        while not self.stop_event.is_set() and not self.clock.synchronised():
            if self.clock.since_boot() >= self.settings.clock_wait_seconds:
                return
            if not logged:
                log.info("%s: waiting for the clock to be synchronised", self.settings.sensor_id)
                logged = True
            # The kernel gives no notice of synchronisation: ask it again in a second.
            self.stop_event.wait(1.0)

    def reading(self, power: float, ts: float | None = None, *, at: Stamp | None = None, **optional: Any) -> Reading:
        """A reading of this collector's sensor measured ``at`` (default: now), stamped ``ts``
        (default: ``at``'s wall time; the simulator's backfill gives past times)."""
        stamp = at or self.clock.stamp()
        seq = self._seqs.next()
        reading = Reading(
            sensor=self.settings.sensor_id,
            kind=self.kind,  # type: ignore[arg-type]
            ts=stamp.wall if ts is None else ts,
            power=power,
            seq=seq,
            clock=None if stamp.synchronised else CLOCK_UNSYNCED,
            **optional,
        )
        if not stamp.synchronised and stamp.since_boot < self.settings.clock_wait_seconds:
            self._to_hold[seq] = stamp
        return reading

    def publish(self, reading: Reading) -> None:
        stamp = None if reading.seq is None else self._to_hold.pop(reading.seq, None)
        if self._to_hold and reading.seq is not None:
            # Made but never published (a collector that dropped one): forget them.
            for seq in [s for s in self._to_hold if s < reading.seq]:
                del self._to_hold[seq]
        if stamp is None:
            self.publisher.submit(reading)
        else:
            self.publisher.hold(reading, stamp)

    # -- device health -------------------------------------------------------------------------
    def device_ok(self) -> None:
        if self._device_error is not None:
            log.info("%s: device is back", self.settings.sensor_id)
        self._device_error = None
        self._backoff.reset()
        self.publisher.set_device_online(True)

    def device_failed(self, error: DeviceUnavailable) -> None:
        """Log once per outage, report ``offline`` and wait (with backoff) before the next try."""
        message = str(error)
        if message != self._device_error:
            log.error("%s: %s", self.settings.sensor_id, message)
        self._device_error = message
        self.publisher.set_device_online(False)
        self.stop_event.wait(self._backoff.next_delay())

    # -- running -------------------------------------------------------------------------------
    def poll(self, read_once: Callable[[], Reading | None]) -> None:
        """Call ``read_once`` every period until stopped; it raises DeviceUnavailable on trouble."""
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            try:
                reading = read_once()
            except DeviceUnavailable as exc:
                self.device_failed(exc)
                next_at = time.monotonic()
                continue
            self.device_ok()
            if reading is not None:
                self.publish(reading)
            next_at += self.settings.period_seconds
            # Waiting for the next period (or a stop request), not synchronising with anything.
            self.stop_event.wait(max(0.0, next_at - time.monotonic()))

    def run(self, work: Callable[[CollectorRuntime], None]) -> None:
        """Start publishing, run ``work`` until SIGTERM/SIGINT, then announce offline and exit."""
        self._install_signal_handlers()
        self.publisher.start()
        try:
            work(self)
        finally:
            self.stop_event.set()
            self.publisher.stop()
            stats = self.publisher.stats()
            log.info(
                "%s stopped: seq %d..%d produced, %d acknowledged by the broker, %d dropped",
                self.settings.sensor_id,
                self.first_seq,
                self._seqs.last,
                stats.acknowledged,
                stats.dropped,
            )

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def request_stop(signum: int, frame: FrameType | None) -> None:
            log.info("%s: %s received, stopping", self.settings.sensor_id, signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)


def settings_or_exit(kind: str, settings_type: type[S]) -> S:
    """The collector's settings from its environment; an invalid one ends the process with a message
    naming each variable at fault (exit status 2), not a traceback."""
    try:
        return settings_type.from_environment()
    except SettingsError as exc:
        print(f"citizenwatt_{kind}: invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def main_for(kind: str, settings_type: type[CollectorSettings], work: Callable[[CollectorRuntime], None]) -> None:
    """The body of every collector's ``python -m citizenwatt_<kind>``."""
    settings = settings_or_exit(kind, settings_type)
    setup_logging(settings.log_level)
    CollectorRuntime(settings, kind).run(work)
