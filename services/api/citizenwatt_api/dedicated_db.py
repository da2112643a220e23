"""The api's one database connection outside the pool: the live hub's poll and /healthz use it.

Both run on the event loop (psycopg's async connection), so neither needs a worker thread nor a
pooled connection: heavy requests that fill the thread pool or the pool delay neither the live
page nor the health check. Queries are short and serialised by a lock; a query that fails or
outlasts its deadline drops the connection (its state is unknown), and the next query reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg

log = logging.getLogger(__name__)

Row = tuple[Any, ...]


class DedicatedConnection:
    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.AsyncConnection[Row] | None = None
        self._lock = asyncio.Lock()

    async def fetch(self, query: str, params: tuple[Any, ...] = (), within: float = 5.0) -> list[Row]:
        """The query's rows, ``within`` that many seconds (waiting for the lock included), else TimeoutError.

        A connection found broken on first use (the database restarted since) is replaced and the
        query tried once more: only a database that does not answer now is an error.
        """
        async with asyncio.timeout(within), self._lock:
            reused = self._conn is not None
            try:
                return await self._run(query, params)
            except psycopg.OperationalError:
                if not reused:
                    raise
            return await self._run(query, params)

    async def _run(self, query: str, params: tuple[Any, ...]) -> list[Row]:
        try:
            if self._conn is None:
                self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
            cursor = await self._conn.execute(query, params)
            return await cursor.fetchall()
        except BaseException:  # cancelled mid-query too: the connection's state is unknown
            await self.close()
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception as exc:  # closing a broken connection: nothing left to do with it
                log.debug("closing the dedicated connection: %s", exc)
