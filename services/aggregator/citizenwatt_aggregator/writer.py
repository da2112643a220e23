"""The aggregator's database work, done in a process of its own.

In one process, paho-mqtt's network thread and the batch writer shared one interpreter lock:
receiving a message (about 80 µs of Python in paho on the bench machine) and validating and
storing it (about 45 µs) queued behind each other, and a backlog drained at about 0.7x the rate of
a bare subscriber. So the aggregator forks a writer at start, before it starts any thread. The
writer holds the database connection and does everything that reads or writes the database. The
first process receives, batches, acknowledges and publishes. See bench/README.md ("Ingest").

What is kept does not change: a batch is acknowledged only after the writer replied that it
committed. If the first process dies, the writer finds its pipe closed and exits; a commit it was
making may or may not land, and either way the broker redelivers the batch, which the (sensor, ts)
key makes harmless. If the writer dies, the first process stops with an error (``WriterGone``),
and whatever it had not acknowledged goes to the next run.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import psycopg

from citizenwatt_common.contract import Topics
from citizenwatt_common.schema import StorageError, StorageMode, connect_migrated
from citizenwatt_common.store import Household, close_days, load_household

from .batch import BatchOutcome, ClockGuard, Incoming, write_batch
from .discovery import stored_facts
from .settings import AggregatorSettings
from .state import sensor_states

log = logging.getLogger(__name__)

# Errors that mean "the database is not there or not writable for now": the batch is kept and
# tried again. Any other error writing a batch is a fault of ours and stops the aggregator.
_OUTAGES = (
    psycopg.OperationalError,
    psycopg.errors.DiskFull,
    psycopg.errors.ReadOnlySqlTransaction,
    psycopg.errors.AdminShutdown,
    psycopg.InterfaceError,
)


class WriterGone(RuntimeError):
    """The writer process exited or was killed."""


@dataclass(frozen=True)
class Reply:
    value: Any = None
    error: str | None = None  # a psycopg error, as text (its objects do not cross processes)
    outage: bool = False  # the error is one of _OUTAGES
    storage: StorageMode | None = None
    fatal: str | None = None  # a StorageError's message: the database cannot be used as configured


@dataclass(frozen=True)
class Written:
    outcome: BatchOutcome
    # Each sensor's retained state topic, (sensor, payload); None if they could not be read.
    states: list[tuple[str, str]] | None


class Writer:
    """The first process's handle on the writer process. Construct it before starting any thread:
    it forks, and a fork copies only the thread that made it."""

    def __init__(self, settings: AggregatorSettings) -> None:
        context = multiprocessing.get_context("fork")
        self._pipe, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_end, self._pipe, settings), name="citizenwatt-aggregator-writer", daemon=True
        )
        self._process.start()
        child_end.close()
        self.storage: StorageMode | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def check(self) -> None:
        """Raise WriterGone if the writer has exited: noticed while no batch comes, too."""
        if not self._process.is_alive():
            raise self._gone()

    def connect(self) -> Reply:
        """Connect and migrate; raises StorageError if the database cannot be used as configured."""
        return self._ask("connect")

    def write(self, batch: list[Incoming]) -> Reply:
        """Store a batch in one transaction: a Reply whose value is Written if it committed."""
        return self._ask("write", batch)

    def close_days(self, now: float, zone: str) -> Reply:
        return self._ask("close_days", now, zone)

    def stored_facts(self) -> Reply:
        return self._ask("stored_facts")

    def live_context(self, with_states: bool) -> Reply:
        """What the journal's live states need (service.py): the household (its tariffs: each
        reading's night flag) and, ``with_states``, every sensor's state payload (those heard of
        in the last day)."""
        return self._ask("live_context", with_states)

    def _ask(self, *request: Any) -> Reply:
        try:
            self._pipe.send(request)
            reply: Reply = self._pipe.recv()
        except (EOFError, OSError) as exc:
            self._process.join(5)
            raise self._gone() from exc
        if reply.storage is not None:
            self.storage = reply.storage
        if reply.fatal is not None:
            raise StorageError(reply.fatal)
        return reply

    def _gone(self) -> WriterGone:
        return WriterGone(f"the database writer process (pid {self.pid}) is gone, exit code {self._process.exitcode}")

    def stop(self, timeout: float = 30.0) -> None:
        """Let the writer finish what it is doing and exit."""
        self._pipe.close()
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


def _serve(pipe: Connection, first_process_end: Connection, settings: AggregatorSettings) -> None:
    # The fork copied the other end too: closed here, so that the pipe ends when the first
    # process closes it or dies.
    first_process_end.close()
    # The first process decides when to stop (a Ctrl-C reaches the whole process group): a commit
    # is not cut short, and the writer ends when its pipe closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    database = _Database(settings)
    while True:
        try:
            request = pipe.recv()
        except EOFError:
            database.drop()
            return
        try:
            pipe.send(database.handle(*request))
        except OSError:  # the first process is gone: what was committed is redelivered, a no-op
            database.drop()
            return


class _Database:
    """The writer's side: one connection, made again after an outage, and the clock rules' state."""

    def __init__(self, settings: AggregatorSettings) -> None:
        self.settings = settings
        self.topics = Topics(settings.base_topic)
        self.guard = ClockGuard(settings.max_future_seconds)
        self.conn: psycopg.Connection[Any] | None = None
        self.storage: StorageMode | None = None

    def connection(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            self.conn, self.storage = connect_migrated(
                self.settings.database_url, self.settings.max_gap_seconds, self.settings.compress_after_days
            )
        return self.conn

    def drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
        self.conn = None

    def handle(self, kind: str, *args: Any) -> Reply:
        try:
            if kind == "connect":
                self.connection()
                value: Any = None
            elif kind == "write":
                value = self._write(*args)
            elif kind == "close_days":
                value = close_days(self.connection(), *args)
            elif kind == "stored_facts":
                value = stored_facts(self.connection())
            elif kind == "live_context":
                value = self._live_context(*args)
            else:
                raise ValueError(f"unknown request {kind!r}")
        except StorageError as exc:
            return Reply(fatal=str(exc))
        except psycopg.Error as exc:
            if isinstance(exc, _OUTAGES) or (self.conn is not None and self.conn.broken):
                self.drop()
            return Reply(error=str(exc).strip(), outage=isinstance(exc, _OUTAGES), storage=self.storage)
        return Reply(value=value, storage=self.storage)

    def _live_context(self, with_states: bool) -> tuple[Household, list[tuple[str, str]]]:
        conn = self.connection()
        household = load_household(conn, with_plan=True)
        if not with_states:
            return household, []
        keys = [str(row[0]) for row in conn.execute("SELECT key FROM sensors ORDER BY key").fetchall()]
        return household, sensor_states(conn, keys, time.time() - 86_400) if keys else []

    def _write(self, batch: list[Incoming]) -> Written:
        conn = self.connection()
        outcome = write_batch(conn, self.topics, batch, self.settings.zone, self.guard)
        states = None
        if outcome.sensors:
            try:
                # Each sensor's reading in the batch is stored (now or before): its newest
                # reading is at least as recent as the oldest of these.
                since = min(reading.ts for reading in outcome.sensors.values())
                states = sensor_states(conn, sorted(outcome.sensors), since)
            except psycopg.Error as exc:
                log.warning("could not read the sensors' states: %s", str(exc).strip())
                if conn.broken:
                    self.drop()
        return Written(outcome, states)
