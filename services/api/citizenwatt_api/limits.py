"""Admission of heavy requests: at most HEAVY_SLOTS computed at once, so light routes keep room.

A year at ten thousand buckets costs seconds of CPU, a worker thread and a pooled connection for all
that time. Eight of them at once used to take every connection of the pool (four) and starve the
rest: the page's other calls, the live view, /healthz. A heavy request now first waits, on the event
loop (holding no thread and no connection yet), for one of HEAVY_SLOTS; after QUEUE_SECONDS, or
when HEAVY_QUEUE requests already wait, it is refused with 503, a Retry-After and the stable code
``server_busy``. What counts as heavy is decided from the request's own parameters (the number of
buckets it asks for), before anything is read: the page's usual calls (a day in hours, a month in
days, a year in months) stay light and never queue.

The slot is held until the response is sent (the dependency's "request" scope): for a CSV export,
until its last line is streamed.

The slots also bound memory: the api keeps part of its high-water mark after a burst, and the
slots bound that mark to two heavy requests' worth. Eight at once took the api from 113 to 240 MiB
for good; two at a time, from 76 to about 100 MiB, where further bursts leave it
(tests/test_api_heavy_requests.py). What stays is not glibc's free pages (the image already sets
MALLOC_ARENA_MAX=2 and a fixed mmap threshold; malloc_trim after a burst changed nothing measurable).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, Request

from .auth import ApiError
from .errors import ErrorCode

HEAVY_SLOTS = 2
HEAVY_QUEUE = 16
QUEUE_SECONDS = 20.0
RETRY_AFTER_SECONDS = 10
# More buckets than this in one request is heavy: a year in days (366) is not, a month in hours (744) is.
LIGHT_BUCKETS = 400

_LIBC: ctypes.CDLL | None = None
with contextlib.suppress(OSError):  # not glibc (musl, macOS): nothing to trim with
    _LIBC = ctypes.CDLL("libc.so.6")


class Admission:
    def __init__(self, slots: int = HEAVY_SLOTS, queue: int = HEAVY_QUEUE, wait: float = QUEUE_SECONDS) -> None:
        self._slots = asyncio.Semaphore(slots)
        self._queue = queue
        self._wait = wait
        self.running = 0
        self.waiting = 0

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Holds a slot while the caller's ``yield`` lasts; ApiError 503 if none came free in time."""
        if self.waiting >= self._queue:
            raise _busy()
        self.waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self._wait)
        except TimeoutError:
            raise _busy() from None
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            try:
                if self.running == 1:  # the last heavy one: its memory goes back before its slot
                    await asyncio.to_thread(give_back_memory)
            finally:
                self.running -= 1
                self._slots.release()


def give_back_memory() -> None:
    """After the last heavy request: hand the memory its answer took back to the system.

    The api runs with PYTHONMALLOC=malloc (Dockerfile, tools/run_local.py): Python's own small-object
    arenas are only returned when entirely empty, and a year of hourly costs left 11 MB of them
    behind for good; with glibc's allocator, malloc_trim returns every free page. Measured: after
    costs, energy.csv and a year at the bucket cap, 11.5 MB kept with pymalloc and trim, 1-3 MB
    with malloc and trim. A collection first, so that cycles freed late are in what is returned
    (cheap: the api froze its startup objects out of the collector's sight, app.py).
    """
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _busy() -> ApiError:
    return ApiError(
        503,
        "The server is busy with other long requests: try again in a few seconds",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
        code=ErrorCode.SERVER_BUSY,
        params={"retry_after": RETRY_AFTER_SECONDS},
    )


def heavy_when(is_heavy: Callable[[Request], bool]) -> Any:
    """A route dependency (list it in the decorator's ``dependencies`` so it runs before the ones
    that borrow a connection): a request ``is_heavy`` judges heavy waits for a slot."""

    async def admission(request: Request) -> AsyncIterator[None]:
        if not is_heavy(request):
            yield
            return
        gate: Admission = request.app.state.admission
        async with gate.admitted():
            yield

    return Depends(admission)


def always(request: Request) -> bool:
    return True


def _number(request: Request, name: str) -> float | None:
    text = request.path_params.get(name, request.query_params.get(name))
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def many_counted(request: Request) -> bool:
    """``count`` query parameter above LIGHT_BUCKETS (v2 energy, costs, energy CSV); a malformed
    one is the route's to refuse, not queued."""
    count = _number(request, "count")
    return count is not None and count > LIGHT_BUCKETS


def many_legacy_buckets(request: Request) -> bool:
    """``/by_time/{t1}/{t2}/{step}`` cutting more than LIGHT_BUCKETS buckets."""
    start, end, step = (_number(request, name) for name in ("t1", "t2", "step"))
    if start is None or end is None or step is None or step <= 0 or end <= start:
        return False
    return (end - start) / step > LIGHT_BUCKETS


# Buckets in one period (the longest of its kind) for each bucket size a comparison allows.
_PERIOD_BUCKETS = {
    ("day", "hour"): 25,
    ("week", "hour"): 169,
    ("week", "day"): 7,
    ("month", "day"): 31,
    ("year", "day"): 366,
    ("year", "month"): 12,
}
_FIRST_BUCKET = {"day": "hour", "week": "day", "month": "day", "year": "month"}  # compare.BUCKETS_OF's first


def _period_buckets(request: Request) -> int:
    period = request.query_params.get("period", "day")
    bucket = request.query_params.get("bucket") or _FIRST_BUCKET.get(period, "day")
    return _PERIOD_BUCKETS.get((period, bucket), 0)


def many_compared(request: Request) -> bool:
    """A comparison computes its period's buckets once per series (the period, and each one in ``with``)."""
    series = 1 + len([part for part in request.query_params.get("with", "previous,year").split(",") if part.strip()])
    return _period_buckets(request) * series > LIGHT_BUCKETS


def many_by_sensor(request: Request) -> bool:
    """Each sensor's buckets are computed apart: a year in days for a few sensors is heavy."""
    return _period_buckets(request) * 2 > LIGHT_BUCKETS
