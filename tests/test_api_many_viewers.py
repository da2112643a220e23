"""Fifty open live pages against the real api process (issue 14, item 1).

Each open ``/api/v2/live`` stream used to poll the database once a second on its own, through the
pool of four connections: four pages made /healthz answer 503, fifty made it take seconds. Now one
hub polls for all of them on its own connection, and the streams hold nothing while they wait.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from citizenwatt_common.contract import Reading
from citizenwatt_common.store import load_household, store_readings
from tests.api_load import Latencies, RunningApi, running_api, sample
from tests.test_api_legacy import ADMIN, PARIS, store

STREAMS = 50
QUIET_SECONDS = 5.0
LIGHT_PATHS = ["/healthz", "/api/v2/sensors"]


class LiveStream:
    """One page's stream on its own socket, read as it comes (raw bytes: HTTP chunking included,
    but each event is sent as one chunk, so an event's text is never cut by a chunk header)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received = bytearray()
        self.ended = False
        self._grew = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, api: RunningApi) -> LiveStream:
        host, port = api.base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /api/v2/live HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {api.cookie}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        return cls(reader, writer)

    async def _read(self) -> None:
        while chunk := await self.reader.read(65536):
            async with self._grew:
                self.received += chunk
                self._grew.notify_all()
        async with self._grew:
            self.ended = True
            self._grew.notify_all()

    async def wait_for(self, text: bytes, within: float = 15.0) -> None:
        async with asyncio.timeout(within), self._grew:
            await self._grew.wait_for(lambda: text in self.received or self.ended)
        assert text in self.received, f"stream ended without {text!r}: {bytes(self.received[-300:])!r}"

    def first_event(self) -> bytes:
        """The data line of the first event received."""
        start = self.received.index(b"data: ")
        return bytes(self.received[start : self.received.index(b"\n", start)])

    async def close(self) -> None:
        self._task.cancel()
        self.writer.close()
        await self.writer.wait_closed()


def store_a_busy_day(database_url: str) -> None:
    """Two sensors reporting every second for the last day (50 W), then the newest reading, 100 W."""
    now = time.time()
    with psycopg.connect(database_url, autocommit=True) as conn:
        household = load_household(conn)
        for sensor in ("meter", "solar"):
            for first in range(0, 86_400, 5_000):
                batch = [
                    Reading(sensor=sensor, kind="simulator", ts=now - 86_400 + k, power=50.0)
                    for k in range(first, min(first + 5_000, 86_390))
                ]
                with conn.transaction():
                    store_readings(conn, batch, household, PARIS)
    store(database_url, "meter", [(now - 5, 100.0)])


def _statements(database_url: str) -> int:
    """Transactions committed in the test's database so far (PostgreSQL's statistics)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
        assert row is not None
        return int(row[0])


async def _health(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.get("/healthz")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def _measure(client: httpx.AsyncClient, seconds: float) -> Latencies:
    latencies, done = Latencies(), asyncio.Event()
    sampler = asyncio.create_task(sample(client, LIGHT_PATHS, latencies, done))
    await asyncio.sleep(seconds)  # how long the sample lasts (several polls of the hub), not a wait for an event
    done.set()
    await sampler
    return latencies


async def _fifty_viewers(api: RunningApi, database_url: str) -> None:
    async with httpx.AsyncClient(base_url=api.base, headers={"Cookie": api.cookie}, timeout=30) as client:
        for path in LIGHT_PATHS:  # warm (first connections, caches) before measuring
            assert (await client.get(path)).status_code == 200
        rss_idle = api.rss_mib()
        before = await _measure(client, 4.0)

        streams = await asyncio.gather(*(LiveStream.open(api) for _ in range(STREAMS)))
        # Every stream starts with the retry line, then the newest reading of the day: the only one
        # stored, 100 W (json.dumps writes 100.0).
        await asyncio.gather(*(s.wait_for(b"retry: 2000\n\n") for s in streams))
        await asyncio.gather(*(s.wait_for(b'"power": 100.0') for s in streams))
        assert all(s.first_event().endswith(b'"power": 100.0, "rate": "day"}') for s in streams)
        health = await _health(client)
        assert (health["live_streams"], health["live_polling"]) == (STREAMS, True)
        rss_streams = api.rss_mib()
        # One poll a second for all of them: count the statements the database runs while the
        # streams wait and nothing else asks (autocommit: one transaction each). Fifty streams
        # polling on their own ran 50 a second (old code: 250 or more in these 5 s).
        first = _statements(database_url)
        await asyncio.sleep(QUIET_SECONDS)  # the window counted, not a wait for an event
        polls = _statements(database_url) - first - 1  # minus the first count's own statement
        print(f"statements in {QUIET_SECONDS:.0f} s with {STREAMS} streams open: {polls}")
        # Per second: the hub's poll, and a first one asking the newest id; slack for a stats flush.
        assert polls <= 2 * QUIET_SECONDS + 5

        during = await _measure(client, 6.0)
        # A reading stored now reaches every open page (power 4321.5 W, stored by no one else).
        store(database_url, "meter", [(time.time(), 4321.5)])
        await asyncio.gather(*(s.wait_for(b'"power": 4321.5') for s in streams))
        assert not any(s.ended for s in streams), "a stream died"

        for path in LIGHT_PATHS:
            print(f"before: {before.summary(path)}\nduring ({STREAMS} streams): {during.summary(path)}")
            assert set(during.statuses[path]) == {200}, during.statuses[path]
            # The bound issue 14 asks for: with the streams open, no light route is more than
            # five times slower than without, plus 200 ms of slack for a shared test machine.
            assert during.worst(path) <= 5 * before.worst(path) + 0.2, during.summary(path)

        await asyncio.gather(*(s.close() for s in streams))

        async def hub_idle() -> bool:
            health = await _health(client)
            return health["live_streams"] == 0 and health["live_polling"] is False

        for _ in range(100):  # the api notices each socket closing: state in another process, polled
            if await hub_idle():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the hub still has streams 10 s after they closed: {await _health(client)}")
        rss_after = api.rss_mib()
        print(f"api RSS: idle {rss_idle:.1f} MiB, {STREAMS} streams {rss_streams:.1f} MiB, closed {rss_after:.1f} MiB")
        # Fifty streams cost little (a queue and a task each) and give it back: a generous bound.
        assert rss_after <= rss_idle + 20


@pytest.mark.backends("timescaledb")  # the Pi's database
def test_fifty_live_viewers_share_one_poll(database_url: str, tmp_path: Path) -> None:
    """50 real streams on sockets, against the api process with its production pool (4), on a day
    of two sensors' readings every second (what each poll of the last day reads).

    Before and during, /healthz and /api/v2/sensors are asked one after the other for a few seconds
    and their latencies printed; during must stay within 5x before + 200 ms. A reading stored while
    they are open must reach all 50 (none died), and once they close the hub has no subscriber, no
    longer polls, and the api's memory is back near where it was.
    """
    store_a_busy_day(database_url)
    with running_api(database_url, tmp_path / "api.log", ADMIN) as api:
        asyncio.run(_fifty_viewers(api, database_url))
        log = api.server.log()
    assert "response already started" not in log
    assert "Traceback" not in log


@pytest.mark.backends("plain")
def test_a_stream_that_falls_behind_is_dropped_without_holding_the_others(database_url: str) -> None:
    """Two streams: one reads every reading, the other never reads. Each reading is stored once the
    reader has the one before, so each poll hands out one: the idle stream's queue (QUEUE_POLLS = 16)
    holds the newest reading it opened with (0 W) and readings 1..15 W; 16 W finds it full and ends
    it (drained, None its only item) instead of waiting for it. The reader gets 0 W then 1..17 W in
    order, and when it leaves too the hub stops polling."""
    from citizenwatt_api.dedicated_db import DedicatedConnection
    from citizenwatt_api.live_hub import QUEUE_POLLS, LiveHub

    store(database_url, "meter", [(time.time() - 60, 0.0)])  # the newest reading when they open: 0 W

    async def scenario() -> None:
        db = DedicatedConnection(database_url)
        hub = LiveHub(db, period=0.02)
        async with hub.subscribe() as reader, hub.subscribe() as idle:
            assert (await reader.queue.get() or "").count('"power": 0.0') == 1  # the newest first
            for power in range(1, QUEUE_POLLS + 2):
                await asyncio.to_thread(store, database_url, "meter", [(time.time(), float(power))])
                text = await asyncio.wait_for(reader.queue.get(), 10)
                assert text is not None and f'"power": {float(power)}' in text
            assert idle.queue.qsize() == 1 and idle.queue.get_nowait() is None
            assert (hub.streams, hub.polling) == (1, True)
        assert (hub.streams, hub.polling) == (0, False)
        await db.close()

    asyncio.run(scenario())


@pytest.mark.backends("plain")
def test_an_open_live_page_does_not_keep_the_api_from_stopping(database_url: str, tmp_path: Path) -> None:
    """A stream never ends by itself, and uvicorn waited for it forever on SIGTERM. With a page open,
    the api now ends the stream (the client reads its end) and stops well within the 10 s docker
    stop gives before killing, with nothing cancelled (no error in its log). uvicorn exits by the
    signal it was stopped by, as it does without any page open."""
    import urllib.request

    with running_api(database_url, tmp_path / "api.log", ADMIN) as api:
        request = urllib.request.Request(f"{api.base}/api/v2/live", headers={"Cookie": api.cookie})
        with urllib.request.urlopen(request, timeout=30) as stream:
            assert stream.readline() == b"retry: 2000\n"
            assert api.server.stop(timeout=10) == -signal.SIGTERM
            assert stream.read() == b"\n"  # the retry event's closing blank line, then the end
    log = api.server.log()
    assert "Traceback" not in log and "ERROR" not in log
