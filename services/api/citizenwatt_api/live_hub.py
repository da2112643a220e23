"""One source of live readings for every open live page (``/api/v2/live``).

Each open page used to poll the database once a second on its own, borrowing a pooled connection
and a worker thread per poll: four pages held the whole pool, fifty made /healthz take seconds.
The hub polls once a second for all of them, on the dedicated connection (no pool, no thread), and
only while at least one stream is open. Each poll's new readings are encoded once, as one text of
server-sent events, and the same text is handed to every stream's queue.

A stream's queue is small (QUEUE_POLLS polls' worth). A client that cannot keep up (its queue is
full) is dropped, never waited for: its stream ends, and the browser's EventSource reconnects by
itself after the stream's ``retry`` delay, starting again from the newest reading. Skipping ahead
silently instead would leave a hole in the page's graph that nothing tells it about.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from citizenwatt_common.contract import Reading
from citizenwatt_common.settings import MqttSettings
from citizenwatt_common.store import Household

from .dedicated_db import DedicatedConnection
from .live_feed import BrokerFeed, SensorNames, stored_instant

log = logging.getLogger(__name__)

# Both queries look only at readings measured in the last WINDOW_SECONDS. Ids do not follow time
# (a late reading gets a new id), so without a bound on time "id > last" would read every chunk
# at each poll: a scan of the whole history on plain PostgreSQL, and decompressing all of it with
# TimescaleDB. A live page shows the last minutes anyway.
WINDOW_SECONDS = 86_400
POLL_SECONDS = 1.0
# Most readings one poll hands out; more wait for the next poll (a collector's outbox emptied).
POLL_LIMIT = 500
# A stream more than this many polls behind is dropped.
QUEUE_POLLS = 16
# Longest a poll may take (its wait for the connection included) before it counts as failed.
QUERY_TIMEOUT = 5.0
# With readings from the broker (live_feed.py): a new stream first gets those that arrived in this
# many last seconds, which the database may not hold yet (the aggregator's journal commits a minute apart).
RECENT_SECONDS = 180.0
# Most broker readings kept for that, and most waiting for their sensor to be in the database.
RECENT_LIMIT = 2_000
# How often the household (its tariffs: each reading's day/night flag) is read again.
HOUSEHOLD_SECONDS = 60.0

_NEWEST_ID = "SELECT coalesce(max(id), 0) FROM readings WHERE ts >= to_timestamp(%s)"
_NEW_READINGS = (
    "SELECT r.id, r.sensor_id, extract(epoch FROM r.ts)::float8, r.power, r.night_rate FROM readings r"
    " WHERE r.id > %s AND r.ts >= to_timestamp(%s) ORDER BY r.id LIMIT %s"
)


def reading_event(sensor_id: int, ts: float, power: float, night: bool) -> str:
    """One server-sent ``reading`` event, as the page reads it."""
    data = {"sensor": sensor_id, "ts": ts, "power": power, "rate": "night" if night else "day"}
    return f"event: reading\ndata: {json.dumps(data)}\n\n"


@dataclass(eq=False)  # compared (and hashed) by identity: each is one stream
class Subscription:
    """One open stream: texts to send, in order; None ends it (too far behind, or shutting down)."""

    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_POLLS))

    def end(self) -> None:
        while not self.queue.empty():  # what it had not sent yet is dropped with it
            self.queue.get_nowait()
        self.queue.put_nowait(None)


@dataclass
class _Newest:
    """The newest reading handed out, so a stream opened later starts with it."""

    id: int
    ts: float
    event: str


class LiveHub:
    def __init__(self, db: DedicatedConnection, window: float = WINDOW_SECONDS, period: float = POLL_SECONDS) -> None:
        self._db = db
        self._window = window
        self._period = period
        self._streams: set[Subscription] = set()
        self._newest: _Newest | None = None
        self._last_id: int | None = None  # None: not polling, the next poll starts from the newest
        self._task: asyncio.Task[None] | None = None
        self._feed: BrokerFeed | None = None
        self._names: SensorNames | None = None
        self._load_household: Callable[[], Household] | None = None
        self._arrived: deque[Reading] = deque(maxlen=RECENT_LIMIT)  # from the broker, not handed out
        # (time.monotonic() it arrived, event): handed out, perhaps not in the database yet
        self._recent: deque[tuple[float, str]] = deque(maxlen=RECENT_LIMIT)
        self._handing_out: asyncio.Task[None] | None = None

    def listen_to_broker(self, settings: MqttSettings, zone: ZoneInfo, load_household: Callable[[], Household]) -> None:
        """Also hand out readings as the broker delivers them (live_feed.py); call on the loop."""
        self._names = SensorNames(zone)
        self._load_household = load_household
        self._feed = BrokerFeed(settings, asyncio.get_running_loop(), self._from_broker)
        self._feed.start()

    @property
    def streams(self) -> int:
        return len(self._streams)

    @property
    def polling(self) -> bool:
        return self._task is not None

    @property
    def broker(self) -> str | None:
        """Readings from the broker: None when not asked for (CW_API_LIVE_FROM_BROKER), else
        "subscribed" or "connecting"."""
        if self._feed is None:
            return None
        return "subscribed" if self._feed.subscribed else "connecting"

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """A stream's queue for as long as the caller keeps it; the first text is the newest reading."""
        stream = Subscription()
        newest = self._newest
        if newest is not None and newest.ts >= time.time() - self._window:
            stream.queue.put_nowait(newest.event)
        since = time.monotonic() - RECENT_SECONDS
        recent = "".join(event for arrived, event in self._recent if arrived >= since)
        if recent:
            stream.queue.put_nowait(recent)
        self._streams.add(stream)
        if self._task is None:
            self._task = asyncio.create_task(self._poll_while_watched(), name="live-hub")
        try:
            yield stream
        finally:
            # No await here: the stream's task may be cancelled (its client left), and its queue,
            # and the poll with the last one, must go at once.
            self._streams.discard(stream)
            if not self._streams:
                self._stop_polling()

    def end_streams(self) -> asyncio.Task[None] | None:
        """End every open stream and stop polling (the api is stopping: a stream never ends by
        itself, and the server waits for every response to end). Returns the poll, cancelled."""
        for stream in self._streams:
            stream.end()
        self._streams.clear()
        return self._stop_polling()

    async def close(self) -> None:
        task = self.end_streams()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        if self._handing_out is not None:
            self._handing_out.cancel()
            await asyncio.gather(self._handing_out, return_exceptions=True)
        if self._feed is not None:
            await asyncio.to_thread(self._feed.stop)  # joins paho's thread
            self._feed = None

    # -- readings from the broker ---------------------------------------------------------------
    def _from_broker(self, reading: Reading) -> None:
        self._arrived.append(reading)
        if self._handing_out is None or self._handing_out.done():
            self._handing_out = asyncio.create_task(self._hand_out_arrived(), name="live-hub-broker")

    async def _hand_out_arrived(self) -> None:
        assert self._names is not None and self._load_household is not None
        names = self._names
        while self._arrived:
            batch = list(self._arrived)
            self._arrived.clear()
            try:
                if time.monotonic() - names.loaded_at >= HOUSEHOLD_SECONDS:
                    names.household = await asyncio.to_thread(self._load_household)
                    names.loaded_at = time.monotonic()
                unknown = sorted({r.sensor for r in batch} - names.ids.keys())
                if unknown:
                    rows = await self._db.fetch(
                        "SELECT key, id FROM sensors WHERE key = ANY(%s)", (unknown,), within=QUERY_TIMEOUT
                    )
                    names.ids.update((str(key), int(sensor)) for key, sensor in rows)
            except Exception as exc:  # the database restarting: these readings come with its next poll
                log.warning("live readings from the broker: could not name their sensors (%s)", exc)
                continue
            events = []
            for reading in batch:
                sensor = names.ids.get(reading.sensor)
                if sensor is None:
                    continue  # not in the database yet: its next readings will be, or its poll
                ts = stored_instant(reading.ts)
                event = reading_event(sensor, ts, reading.power, names.night(ts))
                self._recent.append((time.monotonic(), event))
                events.append(event)
            if events:
                self._fan_out("".join(events))

    def _stop_polling(self) -> asyncio.Task[None] | None:
        task, self._task = self._task, None
        self._last_id = None  # readings stored while nobody watches are not sent to the next stream
        self._newest = None
        if task is not None:
            task.cancel()
        return task

    async def _poll_while_watched(self) -> None:
        # Runs until cancelled by the last stream's leaving (never ends by itself, so a stream that
        # opens as the last one leaves always finds a poll running).
        failing = False
        while True:
            try:
                await self._poll_once()
                if failing:
                    log.info("live readings: the database answers again")
                failing = False
            except Exception as exc:  # the database restarting: try again next second
                if not failing:
                    log.warning("live readings: poll failed (%s), retrying every %s s", exc, self._period)
                failing = True
            await asyncio.sleep(self._period)  # the hub's polling period, not a client loop

    async def _poll_once(self) -> None:
        since = time.time() - self._window
        if self._last_id is None:
            rows = await self._db.fetch(_NEWEST_ID, (since,), within=QUERY_TIMEOUT)
            self._last_id = max(0, int(rows[0][0]) - 1)  # start with the newest reading
        rows = await self._db.fetch(_NEW_READINGS, (self._last_id, since, POLL_LIMIT), within=QUERY_TIMEOUT)
        if not rows:
            return
        events = [
            reading_event(int(sensor), float(ts), float(power), bool(night)) for _, sensor, ts, power, night in rows
        ]
        last = rows[-1]
        self._last_id = int(last[0])
        self._newest = _Newest(int(last[0]), float(last[2]), events[-1])
        self._fan_out("".join(events))

    def _fan_out(self, text: str) -> None:
        for stream in list(self._streams):
            try:
                stream.queue.put_nowait(text)
            except asyncio.QueueFull:
                # Too far behind: dropped (its EventSource reconnects), never waited for.
                log.info("live readings: a stream %s polls behind was dropped", QUEUE_POLLS)
                stream.end()
                self._streams.discard(stream)
