"""The connection pool, opened once per app, and a per-request connection dependency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from fastapi import Request
from psycopg_pool import ConnectionPool

# Connections beyond the first close after this long unused: each is a PostgreSQL backend of its own
# (10 to 15 MB of RSS), opened for a burst of requests (a page's first load) and not needed after it.
# psycopg_pool's default keeps them 10 minutes.
POOL_MAX_IDLE_SECONDS = 60.0


def open_pool(url: str, size: int) -> ConnectionPool[psycopg.Connection[Any]]:
    # Autocommit: reads need no transaction; writers open one explicitly.
    return ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        max_idle=POOL_MAX_IDLE_SECONDS,
        kwargs={"autocommit": True},
        configure=configure_connection,
        open=True,
        timeout=10,
    )


def configure_connection(conn: psycopg.Connection[Any]) -> None:
    """What each of the pool's connections sets once, when it is opened."""
    # The Pi's PostgreSQL sorts and hashes in 2 MB (tools/localstack.py, docker-compose.yml). A
    # 10 000-bucket answer groups its hourly rows by cell in a hash table of about 4 MB, which then
    # spilled to temporary files: writes to the SD card, for a read. Only the api's connections
    # get more, and only its largest answers use it.
    conn.execute("SET work_mem = '4MB'")


def get_conn(request: Request) -> Iterator[psycopg.Connection[Any]]:
    pool: ConnectionPool[psycopg.Connection[Any]] = request.app.state.pool
    with pool.connection() as conn:
        yield conn
