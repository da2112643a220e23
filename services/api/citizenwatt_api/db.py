"""The connection pool, opened once per app, and a per-request connection dependency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from fastapi import Request
from psycopg_pool import ConnectionPool


def open_pool(url: str, size: int) -> ConnectionPool[psycopg.Connection[Any]]:
    # Autocommit: reads need no transaction; writers open one explicitly.
    return ConnectionPool(url, min_size=1, max_size=size, kwargs={"autocommit": True}, open=True, timeout=10)


def get_conn(request: Request) -> Iterator[psycopg.Connection[Any]]:
    pool: ConnectionPool[psycopg.Connection[Any]] = request.app.state.pool
    with pool.connection() as conn:
        yield conn
