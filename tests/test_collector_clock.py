"""A Pi's wrong clock never makes a collector publish wrongly stamped readings; ``seq`` never decreases.

The clock is the hardware boundary here (the real-time clock a Pi lacks): ``PiClock`` stands in
for the kernel's word on it, for the wall clock (real time plus an offset the test sets) and for
the boot (its id, and how long ago it was). It is injected in-process into the real collector
runtime, which publishes through the real broker to the real aggregator and database, with its
outbox on disk. Everything else is the code the collectors run.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from citizenwatt_common.collector.clock import Clock, Stamp, kernel_clock_synchronised
from citizenwatt_common.collector.held import Held
from citizenwatt_common.collector.outbox import Outbox, records_in
from citizenwatt_common.collector.runtime import CollectorRuntime, CollectorSettings
from citizenwatt_common.collector.seqfloor import BLOCK, SeqCounter, floor_path
from citizenwatt_common.contract import Reading
from citizenwatt_simulator.__main__ import SimulatorSettings, simulate
from tests.services import MqttObserver, aggregator_online, count_rows, wait_until
from tools.localstack import LocalMosquitto

pytestmark = pytest.mark.backends("plain")

HOUR = 3600.0
# Stamps are compared to what the test computes by hand with this slack: the wall clock and the
# clock since boot are read a few microseconds apart.
SLACK = 0.005


class PiClock(Clock):
    """A Pi's clocks as the test sets them.

    ``wall()`` is the real time plus ``offset``; ``since_boot()`` is the real clock since boot
    minus what makes it ``booted_ago`` seconds at construction (plus ``skipped``, time the test
    declares gone by); ``synchronised()`` is the kernel's word, as the test sets it.
    """

    def __init__(self, *, offset: float, synchronised: bool, boot_id: str, booted_ago: float) -> None:
        super().__init__()
        self.offset = offset
        self.is_synchronised = synchronised
        self.boot_id = boot_id
        self.skipped = 0.0
        self._boot_shift = super().since_boot() - booted_ago

    def wall(self) -> float:
        return time.time() + self.offset

    def since_boot(self) -> float:
        return super().since_boot() - self._boot_shift + self.skipped

    def synchronised(self) -> bool:
        return self.is_synchronised

    def ntp_steps(self) -> None:
        """What a time daemon does: set the wall clock right, then tell the kernel it is synchronised."""
        self.offset = 0.0
        self.is_synchronised = True


class Appliance:
    """The device: a 3 kW load, read like every collector reads its device (stamped on arrival).
    Remembers the stamp of each reading by seq, for the test to work the true times out.

    ``between_readings(action)`` runs ``action`` on the collector's thread before its next reading,
    so a clock change never falls between a stamp's two clock reads: each stamp is wholly before
    or after it, and the test knows which clock it read."""

    def __init__(self) -> None:
        self.stamps: dict[int, Stamp] = {}
        self._pending: list[tuple[Callable[[], None], threading.Event]] = []

    def between_readings(self, action: Callable[[], None]) -> None:
        done = threading.Event()
        self._pending.append((action, done))
        assert done.wait(30), "the collector took no reading"

    def read(self, runtime: CollectorRuntime) -> Callable[[], Reading]:
        def read_once() -> Reading:
            while self._pending:
                action, done = self._pending.pop(0)
                action()
                done.set()
            at = runtime.now()
            reading = runtime.reading(3000.0, at=at)
            assert reading.seq is not None
            self.stamps[reading.seq] = at
            return reading

        return read_once


@contextmanager
def collector(settings: CollectorSettings, clock: Clock, work: Callable[[CollectorRuntime], None]) -> Iterator[Any]:
    """A collector runtime measuring in a thread, stopped (publisher drained) on leaving."""
    runtime = CollectorRuntime(settings, "simulator", clock=clock)
    runtime.publisher.start()
    thread = threading.Thread(target=work, args=(runtime,), daemon=True)
    thread.start()
    try:
        yield runtime
    finally:
        runtime.stop_event.set()
        thread.join(10)
        runtime.publisher.stop(drain_seconds=2)


def readings_of(observer: MqttObserver, sensor: str) -> list[dict[str, Any]]:
    return [json.loads(p) for t, p, _ in list(observer.messages) if t == f"citizenwatt/{sensor}/reading"]


def statuses_of(observer: MqttObserver, sensor: str) -> list[bytes]:
    return [p for t, p, _ in list(observer.messages) if t == f"citizenwatt/{sensor}/status"]


def first_publications(published: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each seq once, in the order first published (a reading may be sent again until confirmed)."""
    seen: set[int] = set()
    return [r for r in published if r["seq"] not in seen and not seen.add(r["seq"])]  # type: ignore[func-returns-value]


@pytest.mark.parametrize("offset", [-HOUR, 2 * HOUR], ids=["an-hour-behind", "two-hours-ahead"])
def test_a_reboot_with_a_wrong_clock_then_ntp_stepping_it(
    mosquitto: LocalMosquitto, database_url: str, tmp_path: Path, offset: float
) -> None:
    """The tester's case. Before the reboot the clock is right and synchronised. The Pi reboots
    (a new boot, 20 s ago) with its wall clock exactly one hour behind (or, readings from the
    future, two hours ahead) and the kernel saying "unsynchronised"; the collector measures a 3 kW
    appliance, is restarted in the middle, and measures on; then NTP steps the clock (offset 0,
    synchronised).

    Worked out by hand: the clock read ``real - 3600`` (``real + 7200``) at each reading measured
    after the reboot, so its true time is the wall time the collector saw plus 3600 s (minus
    7200 s). Every reading published and
    every row stored must carry its true time (within a few ms), none the hour-behind time; none
    is published while the clock is wrong; the status stays ``online``; and the seqs increase over
    all three runs, in the order published.
    """
    sensor = "pi"
    settings = CollectorSettings(
        mqtt_url=mosquitto.url,
        sensor_id=sensor,
        period_seconds=0.1,
        outbox_path=str(tmp_path / "outbox"),
        clock_wait_seconds=600,
    )
    device = Appliance()
    with aggregator_online(mosquitto.url, database_url, tmp_path / "agg.log") as observer:
        before = PiClock(offset=0.0, synchronised=True, boot_id="boot-1", booted_ago=86_400)
        with collector(settings, before, lambda rt: rt.poll(device.read(rt))) as runtime:
            observer.wait_for(lambda ms: len(readings_of(observer, sensor)) >= 3)
        seqs_before_reboot = sorted(device.stamps)
        observer.wait_for(lambda ms: len(first_publications(readings_of(observer, sensor))) == len(seqs_before_reboot))

        pi = PiClock(offset=offset, synchronised=False, boot_id="boot-2", booted_ago=20)
        with collector(settings, pi, lambda rt: rt.poll(device.read(rt))) as runtime:
            assert runtime.publisher.wait_for(lambda s: s.held >= 3, timeout=30)
            # Measuring: the status says so, though nothing is published.
            observer.wait_for(lambda ms: statuses_of(observer, sensor)[-1:] == [b"online"])
        # Restarted in the middle, same boot, clock still wrong: the held readings wait on.
        with collector(settings, pi, lambda rt: rt.poll(device.read(rt))) as runtime:
            held_after_restart = len(device.stamps) - len(seqs_before_reboot)
            assert runtime.publisher.wait_for(lambda s: s.held >= held_after_restart + 3, timeout=30)
            observer.wait_for(lambda ms: statuses_of(observer, sensor)[-1:] == [b"online"])
            # Only the readings from before the reboot were sent (again: a restart resends the outbox).
            assert {r["seq"] for r in readings_of(observer, sensor)} == set(seqs_before_reboot)
            device.between_readings(pi.ntp_steps)
            assert runtime.publisher.wait_for(lambda s: s.held == 0, timeout=30)
            synchronised_from = len(device.stamps) + 1
            observer.wait_for(
                lambda ms: len(first_publications(readings_of(observer, sensor))) >= synchronised_from + 2
            )
        observer.wait_for(lambda ms: len(first_publications(readings_of(observer, sensor))) == len(device.stamps))
        wait_until(lambda: count_rows(database_url) == len(device.stamps), message="every reading stored")

    # Stamps taken on a synchronised clock (before the reboot, after the step) read the true time.
    true_ts = {seq: stamp.wall if stamp.synchronised else stamp.wall - offset for seq, stamp in device.stamps.items()}
    # Stamped on the wrong clock after the reboot, and after the step (right): both kinds are there.
    assert any(not s.synchronised for s in device.stamps.values())
    published = readings_of(observer, sensor)
    for reading in published:
        assert reading["ts"] == pytest.approx(true_ts[reading["seq"]], abs=SLACK), reading
        assert "clock" not in reading and "held" not in reading
    order = [r["seq"] for r in first_publications(published)]
    assert order == sorted(device.stamps) and len(set(order)) == len(order)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT seq, extract(epoch FROM ts)::float8 FROM readings ORDER BY ts").fetchall()
    assert [seq for seq, _ in rows] == sorted(device.stamps)
    for seq, ts in rows:
        assert ts == pytest.approx(true_ts[seq], abs=SLACK)


def test_giving_up_on_ntp_publishes_as_measured_marked_unsynced(mosquitto: LocalMosquitto, tmp_path: Path) -> None:
    """A Pi booted 100 s ago, clock an hour behind, unsynchronised, waiting at most 600 s after boot
    (CW_CLOCK_WAIT_SECONDS). The collector holds its readings; the test then declares 10 minutes
    gone by (the clock since boot moves on 600 s) without NTP: the collector gives up and publishes
    each reading as measured (``ts`` = the wall time it saw, by hand an hour behind the real one)
    with ``"clock": "unsynced"``, and the next ones at once, marked too. When NTP steps the clock
    at last, the readings after are unmarked and right again (real time)."""
    sensor = "no-ntp"
    settings = CollectorSettings(
        mqtt_url=mosquitto.url,
        sensor_id=sensor,
        period_seconds=0.1,
        outbox_path=str(tmp_path / "outbox"),
        clock_wait_seconds=600,
    )
    device = Appliance()
    observer = MqttObserver(mosquitto.url, f"citizenwatt/{sensor}/#")
    pi = PiClock(offset=-HOUR, synchronised=False, boot_id="boot", booted_ago=100)
    with collector(settings, pi, lambda rt: rt.poll(device.read(rt))) as runtime:
        assert runtime.publisher.wait_for(lambda s: s.held >= 3, timeout=30)
        assert readings_of(observer, sensor) == []
        pi.skipped = 600.0
        assert runtime.publisher.wait_for(lambda s: s.held == 0, timeout=30)
        given_up_at = len(device.stamps)
        observer.wait_for(lambda ms: len(first_publications(readings_of(observer, sensor))) >= given_up_at + 3)
        device.between_readings(pi.ntp_steps)
        synchronised_from = len(device.stamps) + 1
        observer.wait_for(lambda ms: len(first_publications(readings_of(observer, sensor))) >= synchronised_from + 3)
    observer.close()
    published = first_publications(readings_of(observer, sensor))
    for reading in published:
        stamp = device.stamps[reading["seq"]]
        if stamp.synchronised:
            assert "clock" not in reading
            assert reading["ts"] == pytest.approx(time.time(), abs=60)
        else:
            assert reading["clock"] == "unsynced"
            assert reading["ts"] == stamp.wall  # as measured, untouched: an hour behind
            assert reading["ts"] == pytest.approx(time.time() - HOUR, abs=60)
    assert sum(1 for r in published if "clock" in r) >= given_up_at + 3
    assert sum(1 for r in published if "clock" not in r) >= 3
    assert [r["seq"] for r in published] == sorted(r["seq"] for r in published)


def test_a_clock_stepping_back_while_running_never_makes_seq_decrease(
    mosquitto: LocalMosquitto, tmp_path: Path
) -> None:
    """The clock ran an hour ahead, synchronised in the kernel's eyes (e.g. set by hand), and a time
    daemon steps it back an hour while the collector runs; then the collector restarts. By hand:
    the wall clock (hence ts) goes back 3600 s, yet every seq is above the one before, across the
    step and across the restart, and nothing is held (the kernel says synchronised: the
    aggregator judges such readings). Older versions started a run's seqs at the clock in ms."""
    sensor = "stepped"
    settings = CollectorSettings(
        mqtt_url=mosquitto.url,
        sensor_id=sensor,
        period_seconds=0.1,
        outbox_path=str(tmp_path / "outbox"),
        clock_wait_seconds=600,
    )
    device = Appliance()
    observer = MqttObserver(mosquitto.url, f"citizenwatt/{sensor}/reading")
    pi = PiClock(offset=HOUR, synchronised=True, boot_id="boot", booted_ago=86_400)
    with collector(settings, pi, lambda rt: rt.poll(device.read(rt))):
        observer.wait_for(lambda ms: len(ms) >= 3)
        device.between_readings(lambda: setattr(pi, "offset", 0.0))
        stepped_at = max(device.stamps)
        observer.wait_for(lambda ms: max(json.loads(p)["seq"] for _, p, _ in ms) >= stepped_at + 3)
    with collector(settings, pi, lambda rt: rt.poll(device.read(rt))) as runtime:
        assert runtime.first_seq > max(json.loads(p)["seq"] for _, p, _ in observer.messages)
        observer.wait_for(lambda ms: max(json.loads(p)["seq"] for _, p, _ in ms) >= runtime.first_seq + 2)
        assert runtime.publisher.stats().held == 0
    observer.close()
    published = first_publications(readings_of(observer, sensor))
    seqs = [r["seq"] for r in published]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    ts = [r["ts"] for r in published]
    assert any(later < earlier - HOUR + 60 for earlier, later in itertools.pairwise(ts)), "no step back seen"
    assert all("clock" not in r for r in published)


def test_summer_time_ending_is_no_clock_jump(mosquitto: LocalMosquitto, tmp_path: Path) -> None:
    """The simulator running across the end of summer time in Paris: 2026-10-25 at 01:00 UTC the
    local clock goes from 02:59:59 CEST back to 02:00:00 CET. The wall clock (set to reach that
    instant a second after the start, synchronised) is Unix time, which goes straight on: by hand,
    every reading's ts and seq are above the previous one's, about a period apart, none is held
    or marked, and the local times of the readings do show the hour going back (03:00 CEST and
    02:00 CET are the same instant)."""
    sensor = "paris"
    change = datetime(2026, 10, 25, 1, 0, tzinfo=UTC).timestamp()
    settings = SimulatorSettings(
        mqtt_url=mosquitto.url,
        sensor_id=sensor,
        period_seconds=0.1,
        outbox_path=str(tmp_path / "outbox"),
        clock_wait_seconds=600,
    )
    observer = MqttObserver(mosquitto.url, f"citizenwatt/{sensor}/reading")
    pi = PiClock(offset=change - 1.0 - time.time(), synchronised=True, boot_id="boot", booted_ago=86_400)
    with collector(settings, pi, simulate) as runtime:
        observer.wait_for(lambda ms: any(json.loads(p)["ts"] > change + 1.0 for _, p, _ in ms))
        assert runtime.publisher.stats().held == 0
    observer.close()
    published = first_publications(readings_of(observer, sensor))
    assert all("clock" not in r for r in published)
    for earlier, later in itertools.pairwise(published):
        assert later["seq"] > earlier["seq"]
        assert 0 < later["ts"] - earlier["ts"] < 1.0
    paris = ZoneInfo("Europe/Paris")
    local = [datetime.fromtimestamp(r["ts"], paris) for r in published]
    assert local[0].strftime("%H:%M %Z") == "02:59 CEST"
    assert local[-1].strftime("%H:%M %Z") == "02:00 CET"


def test_the_kernels_word_on_this_machine() -> None:
    """adjtimex(2) read without privileges: a bool, whatever this machine's clock (no exception)."""
    for _ in range(3):
        assert type(kernel_clock_synchronised()) is bool


def test_a_held_record_never_replaces_its_released_one(tmp_path: Path) -> None:
    """Outbox records are read back segment by segment, not in the order written: here (segments
    of one record) the held record of seq 7 lies in segment 0 and its released record in segment
    1, both segments' newest seq being 7, so segment 0 is read last. The released one (ts set by
    hand to 1 800 000 000.0, unmarked) must be what a restart sees, never the held one."""
    path = tmp_path / "outbox"
    held = Held(
        boot="b",
        at=12.0,
        wall=1_799_996_400.0,
        fields={"v": 1, "sensor": "x", "kind": "simulator", "ts": 1_799_996_400.0, "seq": 7, "power": 1.0},
    )
    released = held.restamped(wall_now=1_800_000_010.0, since_boot_now=22.0)
    assert json.loads(released)["ts"] == 1_800_000_000.0
    outbox = Outbox(path, 10, segment_bytes=1)
    outbox.add(7, held.payload())
    outbox.add(7, released)
    outbox.close()
    assert [len(records_in_segment(path, i)) for i in (0, 1)] == [1, 1]
    assert records_in(path) == [(7, released)]
    reopened = Outbox(path, 10, segment_bytes=1)
    assert reopened.all_in_order() == [(7, released)]
    reopened.close()


def records_in_segment(path: Path, index: int) -> list[tuple[int, bytes]]:
    from citizenwatt_common.collector.outbox import _decode

    return _decode(Path(f"{path}.{index}").read_bytes())[0]


def test_the_seq_floor_is_written_once_per_block_and_survives_any_clock(tmp_path: Path) -> None:
    """By hand: a first start with the clock at 1 800 000 000 000 ms and no outbox starts at that
    seq and writes the floor 1 800 000 001 000 (one block of 1000) before handing it out; the
    1000th seq (…0999) needs no write, the 1001st (…1000) writes …2000. A restart with the clock
    an hour behind (…7 600 000 000 ms earlier) starts at the floor, …2000."""
    outbox = tmp_path / "outbox"
    first = SeqCounter(outbox, newest_kept=None, clock_ms=lambda: 1_800_000_000_000)
    assert first.next() == 1_800_000_000_000
    assert floor_path(outbox).read_text() == "1800000001000\n"
    for _ in range(BLOCK - 1):
        last = first.next()
    assert last == 1_800_000_000_999
    assert floor_path(outbox).read_text() == "1800000001000\n"
    assert first.next() == 1_800_000_001_000
    assert floor_path(outbox).read_text() == "1800000002000\n"
    again = SeqCounter(outbox, newest_kept=1_800_000_001_000, clock_ms=lambda: 1_800_000_000_000 - 3_600_000)
    assert again.next() == 1_800_000_002_000


def test_an_older_versions_outbox_keeps_seqs_increasing(tmp_path: Path) -> None:
    """An older version left readings up to seq 5 000 000 000 000 (its clock in ms, here far ahead)
    in its outbox, and no floor file: the first seq of this version is 5 000 000 000 001."""
    path = tmp_path / "outbox"
    old = Outbox(path, 10)
    old.add(5_000_000_000_000, b'{"v":1}')
    old.close()
    settings = CollectorSettings(sensor_id="old", outbox_path=str(path))
    runtime = CollectorRuntime(
        settings, "simulator", clock=PiClock(offset=0, synchronised=True, boot_id="b", booted_ago=9)
    )
    assert runtime.reading(1.0).seq == 5_000_000_000_001


class CountingPiClock(PiClock):
    """A PiClock that lets the test wait until the kernel has been asked ``n`` times."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asked = 0
        self._changed = threading.Condition()

    def synchronised(self) -> bool:
        with self._changed:
            self.asked += 1
            self._changed.notify_all()
        return super().synchronised()

    def wait_asked(self, n: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.asked >= n, timeout=30)


def test_the_backfill_waits_for_the_clock_before_laying_its_grid(tmp_path: Path) -> None:
    """The simulator's backfill lays its history on the wall clock, so it first waits for the
    kernel's word (``wait_for_clock``): booted 20 s ago, unsynchronised, it is still asking after
    its second question, and returns once NTP has stepped the clock; booted 601 s ago with a 600 s
    wait it does not wait at all (one question)."""
    settings = CollectorSettings(sensor_id="grid", outbox_path=str(tmp_path / "outbox"), clock_wait_seconds=600)
    pi = CountingPiClock(offset=-HOUR, synchronised=False, boot_id="b", booted_ago=20)
    runtime = CollectorRuntime(settings, "simulator", clock=pi)
    waiter = threading.Thread(target=runtime.wait_for_clock, daemon=True)
    waiter.start()
    assert pi.wait_asked(2)
    assert waiter.is_alive()
    pi.ntp_steps()
    waiter.join(30)
    assert not waiter.is_alive()

    late = CountingPiClock(offset=-HOUR, synchronised=False, boot_id="b", booted_ago=601)
    CollectorRuntime(settings, "simulator", clock=late).wait_for_clock()
    assert late.asked == 1
