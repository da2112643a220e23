"""Real infrastructure for the tests: a Mosquitto and a PostgreSQL started on free ports in temp dirs.

Every test that uses the database runs on two backends, shown in its id: ``plain`` (Debian's
PostgreSQL) and ``timescaledb`` (the same server with TimescaleDB preloaded, from the private tree
tools/build-timescaledb.sh builds once into a cache). A module marked ``backends(...)`` picks its
own: the slow browser and hardware-collector tests, whose subject is not storage, run on ``plain``
only; the API and storage tests add ``timescaledb-compressed`` (the TimescaleDB server, with every
chunk compressed after the test has stored its readings: see ``compress``).

One server per backend per session, one fresh database per test (cheap: CREATE DATABASE from a
migrated template, dropped after the test), one Mosquitto per test module unless a test asks for
its own.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from citizenwatt_common.schema import migrate
from tools.localstack import REPO, LocalMosquitto, LocalPostgres

_db_numbers = itertools.count()

# Collectors hold their readings while the kernel says the clock is unsynchronised, until
# CW_CLOCK_WAIT_SECONDS after boot: on a test machine without NTP booted minutes ago, every collector
# test would wait that long. Not waiting (readings marked "unsynced" there) is what such a machine
# is told to set; tests/test_collector_clock.py sets its own wait and stands in for the clock.
os.environ.setdefault("CW_CLOCK_WAIT_SECONDS", "0")

BACKENDS = ("plain", "timescaledb")
ALL_BACKENDS = (*BACKENDS, "timescaledb-compressed")
# The template's compression policy delay: the aggregator's default, so a test's aggregator finds
# the policy it would set up itself and changes nothing.
TEMPLATE_COMPRESS_AFTER_DAYS = 3
_TIMESCALEDB_TREE = pytest.StashKey[tuple[Path | None, str]]()


@dataclass(frozen=True)
class Backend:
    name: str
    bin_dir: Path | None  # None: Debian's PostgreSQL
    timescaledb: bool
    compressed: bool = False  # tests compress every chunk once their readings are stored

    @property
    def server_name(self) -> str:
        return "timescaledb" if self.timescaledb else "plain"

    def server(self, folder: Path, *, durable: bool = True) -> LocalPostgres:
        return LocalPostgres(folder, durable=durable, bin_dir=self.bin_dir, timescaledb=self.timescaledb)


def compress_all_chunks(conn: psycopg.Connection[Any]) -> int:
    """Compress every chunk of readings, recompressing partly compressed ones (a late reading
    decompresses its batch); returns how many chunks readings has, all fully compressed now."""
    conn.execute("SELECT count(compress_chunk(c, if_not_compressed => TRUE)) FROM show_chunks('readings') AS c")
    # The catalog's status bits (1: compressed, 8: partly) are the only place that tells a partly
    # compressed chunk from a fully compressed one.
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE c.status & 1 = 1 AND c.status & 8 = 0)"
        " FROM _timescaledb_catalog.chunk c JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id"
        " WHERE h.table_name = 'readings'"
    ).fetchone()
    assert row is not None and row[0] == row[1], f"chunks of readings not all compressed: {row}"
    return int(row[0])


# Modules whose tests must have the machine to themselves: they kill and freeze processes while
# measuring what a browser or a client sees within seconds, or compare timings and memory.
# `make test` runs every other test two at a time (pytest-xdist), then the two long fault suites
# side by side (PAIRED_MODULES: one drives Docker on fixed host ports, the other local processes
# on free ports, and both mostly wait on the faults they cause), then these
# one at a time. Run alone, pytest runs everything in order as before.
SERIAL_MODULES = frozenset(
    {
        "test_api_heavy_requests",
        "test_api_logins",
        "test_api_many_viewers",
        "test_make_run",
        "test_memory_bounds",
        "test_ui_live",
        "test_ui_offline_reload",
    }
)
# The second phase, two at a time, each module on one worker (--dist loadfile) and in file order:
# the Docker stack's two tests on fixed host ports must never overlap. The local ones use free
# ports. In collection order (--no-loadscope-reorder) each worker starts with two modules: one the
# Docker stack's (about 6 minutes) and the images' wheel checks (waiting on PyPI), the other the
# local fault suite and the journal's power cuts, about as long. Not xdist groups (--dist
# loadgroup): with pytest 9.2 they silently stopped grouping (pytest-xdist issue #1386), which ran
# the two compose tests at once.
PAIRED_MODULES = frozenset({"test_compose_stack", "test_faults", "test_images_installable", "test_journal"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backends(*names): run only on these database backends (default: plain and timescaledb)"
    )
    config.addinivalue_line("markers", "serial: needs the machine to itself (see SERIAL_MODULES in conftest)")
    config.addinivalue_line("markers", "paired: a long fault suite, run beside the other one (PAIRED_MODULES)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)
        elif item.path.stem in PAIRED_MODULES:
            item.add_marker(pytest.mark.paired)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    names = marker.args if marker else BACKENDS
    unknown = set(names) - set(ALL_BACKENDS)
    if unknown:
        raise pytest.UsageError(f"unknown backends {sorted(unknown)} on {metafunc.definition.nodeid}")
    metafunc.parametrize("backend", names, indirect=True, scope="session")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find in the cache) the TimescaleDB tree once, before any test runs.

    Here rather than in a fixture: a first build takes minutes, which must not count against the
    first test's timeout.
    """
    wanted = any(
        isinstance(item, pytest.Function)
        and hasattr(item, "callspec")
        and str(item.callspec.params.get("backend", "")).startswith("timescaledb")
        for item in session.items
    )
    if not wanted or session.config.option.collectonly:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("TimescaleDB tree: bash tools/build-timescaledb.sh (minutes the first time, then cached)")
    result = subprocess.run(
        ["bash", str(REPO / "tools" / "build-timescaledb.sh")], capture_output=True, text=True, check=False
    )
    if result.returncode == 0 and result.stdout.strip():
        session.config.stash[_TIMESCALEDB_TREE] = (Path(result.stdout.strip().splitlines()[-1]), "")
        return
    tail = " | ".join(result.stderr.strip().splitlines()[-5:])
    why = "no source archive" if result.returncode == 3 else f"exit code {result.returncode}"
    session.config.stash[_TIMESCALEDB_TREE] = (None, f"tools/build-timescaledb.sh failed ({why}): {tail}")


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Backend:
    name = getattr(request, "param", "plain")
    if name == "plain":
        return Backend("plain", None, timescaledb=False)
    tree, error = request.config.stash.get(_TIMESCALEDB_TREE, (None, "the TimescaleDB tree was not prepared"))
    if tree is None:
        # The TimescaleDB backend is part of what must pass (a silent skip would hide that the
        # Pi's database went untested); a developer without the source archive may opt out.
        if os.environ.get("CW_TESTS_SKIP_UNAVAILABLE") == "1":
            pytest.skip(f"TimescaleDB backend unavailable: {error}")
        pytest.fail(f"TimescaleDB backend unavailable: {error} (CW_TESTS_SKIP_UNAVAILABLE=1 skips it)")
    return Backend(name, tree, timescaledb=True, compressed=name == "timescaledb-compressed")


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cw-tests-") as folder:
        yield Path(folder)


@pytest.fixture(scope="session")
def _servers(tmp_root: Path) -> Iterator[dict[str, LocalPostgres]]:
    """The session's servers by backend, started on first use and all stopped at the end (so
    pytest switching between backends never restarts one)."""
    servers: dict[str, LocalPostgres] = {}
    yield servers
    for server in servers.values():
        server.stop("immediate")


def _template_url(server: LocalPostgres) -> str:
    return server.url.rsplit("/", 1)[0] + "/cw_template"


@pytest.fixture(scope="session")
def postgres_server(backend: Backend, _servers: dict[str, LocalPostgres], tmp_root: Path) -> LocalPostgres:
    if backend.server_name in _servers:
        return _servers[backend.server_name]
    server = backend.server(tmp_root / f"postgres-{backend.server_name}", durable=False)
    server.start()
    _servers[backend.server_name] = server
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE cw_template")
    with psycopg.connect(_template_url(server), autocommit=True) as conn:
        mode = migrate(conn, default_max_gap_seconds=300.0, compress_after_days=TEMPLATE_COMPRESS_AFTER_DAYS)
        if (mode.timescaledb is not None) != backend.timescaledb:
            pytest.fail(f"backend {backend.name} stores readings as: {mode.describe()}")
        if backend.timescaledb:
            # Tests compress chunks themselves (or run the policy's job) when they mean to: the
            # policy must not compress a test's old readings at a moment of its own choosing.
            conn.execute(
                "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
                " WHERE proc_name = 'policy_compression'"
            )
    with psycopg.connect(server.url, autocommit=True) as conn:
        # TimescaleDB's scheduler keeps a connection to every database that allows connections,
        # and CREATE DATABASE refuses to copy a database someone is connected to. A template that
        # allows none gets no scheduler; the one already there is told to leave, and awaited.
        conn.execute("ALTER DATABASE cw_template WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
        conn.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
            " WHERE datname = 'cw_template' AND pid <> pg_backend_pid()"
        )
    return server


def _fresh_database(postgres_server: LocalPostgres) -> str:
    name = f"cw_test_{os.getpid()}_{next(_db_numbers)}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE cw_template")
    return postgres_server.url.rsplit("/", 1)[0] + "/" + name


def _drop_database(postgres_server: LocalPostgres, url: str) -> None:
    # FORCE: a test's services or TimescaleDB's scheduler may still hold connections. Dropped so
    # a session does not leave hundreds of databases, each with a scheduler, on one server.
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


@pytest.fixture
def database_url(postgres_server: LocalPostgres) -> Iterator[str]:
    """A fresh, migrated, empty database for this test."""
    url = _fresh_database(postgres_server)
    yield url
    _drop_database(postgres_server, url)


@pytest.fixture
def own_postgres(tmp_path: Path, backend: Backend) -> Iterator[LocalPostgres]:
    """A PostgreSQL server of this test's own (on the test's backend), for a test that stops it."""
    server = backend.server(tmp_path / "pg")
    server.start()
    yield server
    server.stop("immediate")


@pytest.fixture
def compress(backend: Backend) -> Callable[[str], int]:
    """``compress(database_url)``: on ``timescaledb-compressed``, compress every chunk of readings
    (and insist there was one: a test that compressed nothing would prove nothing); elsewhere
    nothing. Tests call it where their readings are stored, so what follows runs on compressed data."""

    def run(database_url: str) -> int:
        if not backend.compressed:
            return 0
        with psycopg.connect(database_url, autocommit=True) as conn:
            chunks = compress_all_chunks(conn)
        assert chunks > 0, "no chunk to compress: the test stored no readings before compress()"
        return chunks

    return run


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
def module_database_url(postgres_server: LocalPostgres) -> Iterator[str]:
    """A fresh database shared by one test module (a running stack the tests take turns on)."""
    url = _fresh_database(postgres_server)
    yield url
    _drop_database(postgres_server, url)
