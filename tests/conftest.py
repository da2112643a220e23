"""Real infrastructure for the tests: a Mosquitto and a PostgreSQL started on free ports in temp dirs.

One PostgreSQL server per test session, one fresh database per test (cheap: CREATE DATABASE from a
migrated template), one Mosquitto per test module unless a test asks for its own.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from citizenwatt_common.schema import migrate
from tools.localstack import LocalMosquitto, LocalPostgres

_db_numbers = itertools.count()


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cw-tests-") as folder:
        yield Path(folder)


@pytest.fixture(scope="session")
def postgres_server(tmp_root: Path) -> Iterator[LocalPostgres]:
    server = LocalPostgres(tmp_root / "postgres", durable=False)
    server.start()
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE cw_template")
    template_url = server.url.rsplit("/", 1)[0] + "/cw_template"
    with psycopg.connect(template_url, autocommit=True) as conn:
        migrate(conn, default_max_gap_seconds=300.0)
    yield server
    server.stop("immediate")


def _fresh_database(postgres_server: LocalPostgres) -> str:
    name = f"cw_test_{os.getpid()}_{next(_db_numbers)}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE cw_template")
    return postgres_server.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def database_url(postgres_server: LocalPostgres) -> str:
    """A fresh, migrated, empty database for this test."""
    return _fresh_database(postgres_server)


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def mosquitto_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMosquitto]:
    broker = LocalMosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[LocalMosquitto]:
    """A broker of this test's own, for tests that stop, kill or restart it."""
    broker = LocalMosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture(scope="module")
def module_database_url(postgres_server: LocalPostgres) -> str:
    """A fresh database shared by one test module (a running stack the tests take turns on)."""
    return _fresh_database(postgres_server)
