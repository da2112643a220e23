"""Start a real Mosquitto and a real PostgreSQL in folders we own, for `make run` and the tests.

Nothing here is a stand-in: these are the Debian binaries, on free loopback ports. When run as
root (CI, containers) PostgreSQL refuses to start, so its processes run as the ``postgres``
user and Mosquitto drops to ``mosquitto``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# PostgreSQL's memory sized for a 1 GB Raspberry Pi, where it shares the machine with four Python
# services (bench/memory.py measures them; docker-compose.yml's timescaledb passes the same values as
# -c flags, and tests/test_deploy.py checks the two agree). The defaults are a server's: 128 MB of
# shared buffers, which every backend that reads a page maps and counts in its RSS, and up to 100
# connections, 3 autovacuum workers and 2 parallel workers per query, each a process of its own.
PI_MEMORY_SETTINGS: tuple[tuple[str, str], ...] = (
    # The working set is the last day of readings and the 15-min rollups: a few MB a year per sensor.
    # The kernel's page cache still keeps the rest of the files.
    ("shared_buffers", "16MB"),
    ("wal_buffers", "1MB"),  # the aggregator commits a batch at a time: small WAL writes
    # The aggregator holds 1 connection, the api CW_POOL_SIZE (4) and one at start; room for psql,
    # a backup and TimescaleDB's background workers. Each slot is shared memory (lock table, ...):
    # 100 slots and 128 MB of buffers make 143 MB of shared memory, 30 and 16 MB make 21 MB.
    ("max_connections", "30"),
    ("work_mem", "2MB"),  # per sort or hash: the api's largest groups a few thousand buckets
    ("maintenance_work_mem", "16MB"),  # index builds, vacuum, TimescaleDB's compression
    ("autovacuum_max_workers", "1"),  # few tables, written by one writer
    # One process per query: a parallel worker is another backend's worth of memory, and the
    # rollups keep the api's queries small.
    ("max_parallel_workers_per_gather", "0"),
    ("max_parallel_maintenance_workers", "0"),
    # No logical replication here: no launcher process waiting for subscriptions.
    ("max_logical_replication_workers", "0"),
    # JIT-compiling a costly query loads LLVM into that backend: +61 MB of RSS measured on a 2-million
    # row aggregate. The api's queries read rollups and are small.
    ("jit", "off"),
    ("huge_pages", "off"),  # never reserve huge pages (a Pi kernel has none; elsewhere: all or nothing)
)
PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def _pg_bin(name: str, bin_dir: Path | None = None) -> str:
    if bin_dir is not None:
        # A private server tree (tools/build-timescaledb.sh): never fall back to the system's, which
        # would silently start a server without the extension.
        path = bin_dir / name
        if not path.exists():
            raise FileNotFoundError(f"PostgreSQL's {name} not found in {bin_dir}")
        return str(path)
    for folder in PG_BIN_CANDIDATES:
        path = Path(folder) / name
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"PostgreSQL's {name} not found: apt-get install postgresql")
    return found


def _as_user(user: str) -> list[str]:
    """Command prefix that runs as ``user`` when we are root, and as ourselves otherwise."""
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


def _make_reachable(path: Path) -> None:
    """Let other users walk down to ``path`` (mkdtemp makes 0700 folders, /root is 0700)."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _chown(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        # The service user must be able to walk down to its folder.
        _make_reachable(path)
        entry = pwd.getpwnam(user)
        for p in [path, *path.rglob("*")]:
            os.chown(p, entry.pw_uid, entry.pw_gid)


class LocalPostgres:
    """A PostgreSQL cluster in ``folder``.

    ``bin_dir`` picks the server's binaries (default: Debian's); ``timescaledb`` preloads the
    extension, which that server must have (the private tree tools/build-timescaledb.sh makes).
    A server that has the extension but does not preload it is what a misconfigured install looks
    like: CitizenWatt must fall back to plain tables there.
    """

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        *,
        durable: bool = True,
        bin_dir: Path | str | None = None,
        timescaledb: bool = False,
    ) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = port or free_port()
        self.durable = durable
        self.bin_dir = Path(bin_dir) if bin_dir is not None else None
        self.timescaledb = timescaledb
        self.user = "citizenwatt"
        self.database = "citizenwatt"

    def _bin(self, name: str) -> str:
        return _pg_bin(name, self.bin_dir)

    def _write_config(self) -> None:
        """Our settings live in a file of their own, included from postgresql.conf, rewritten at
        every start: a cluster kept between runs (make run's ./var) follows the current choice."""
        main = self.data / "postgresql.conf"
        include = "include_if_exists = 'citizenwatt.conf'"
        if include not in main.read_text():
            with main.open("a") as handle:
                handle.write(f"\n{include}\n")
        lines = ["# written by tools/localstack.py at every start"]
        if self.timescaledb:
            # Timescale's hooks must be loaded before any session starts; telemetry would try to
            # reach the internet from a machine that must work offline.
            lines += ["shared_preload_libraries = 'timescaledb'", "timescaledb.telemetry_level = off"]
        # SD card wear: a checkpoint every hour rather than every 5 min writes each page changed
        # meanwhile once, and logs its first change after a checkpoint as a full-page image 12x
        # less often; those images (kept: full_page_writes=off would let a power cut tear a page)
        # are compressed. fsync and synchronous_commit stay on. Recovery after a crash replays at
        # most an hour of WAL: a few MB here, seconds. Autovacuum visits each database every hour
        # rather than every minute: each visit that finds work commits (a WAL flush), rewrites
        # pages and, after its own catalog updates, makes the next new backend rewrite the
        # relation cache files (160 KB each); our tables are a handful of small rows updated in
        # place plus an append-only series. Measured over whole cycles (bench/README.md, "SD
        # card"): 7.6 KB per reading with 30 min and 5 min, 4.0 KB with an hour for both. Also
        # docker-compose.yml's timescaledb.
        lines += ["checkpoint_timeout = 1h", "wal_compression = on", "autovacuum_naptime = 1h"]
        # The WAL writer flushes what no commit waited for (page pruning by readers, hint records)
        # every wal_writer_delay, rewriting the 8 KB page the last commit ended in, plus a sync: a
        # third of PostgreSQL's syncs and a fifth of its bytes at 200 ms (bench/sdcard.py). At its
        # 10 s maximum the aggregator's next commit (every 8 s) nearly always flushes it first.
        # Commits the aggregator waits for are not concerned: they flush themselves.
        lines += ["wal_writer_delay = 10s"]
        # Nothing here replicates or archives WAL (backups are pg_dump's, tools/backup-database.sh),
        # so WAL needs only what crash recovery needs. At "replica", its default, PostgreSQL also logs
        # the running transactions every 15 s after any activity, for standbys: after each commit
        # of the aggregator's journal (a minute apart) the WAL writer then rewrites and syncs the
        # page it ends in, a fifth of the WAL's bytes and every sync of its own (bench/sdcard.py).
        lines += ["wal_level = minimal", "max_wal_senders = 0"]
        lines += [f"{name} = {value}" for name, value in PI_MEMORY_SETTINGS]
        config = self.data / "citizenwatt.conf"
        config.write_text("\n".join(lines) + "\n")
        if os.geteuid() == 0:  # not _chown: it would open the data folder, which PostgreSQL refuses
            entry = pwd.getpwnam("postgres")
            os.chown(config, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        _chown(self.folder, "postgres")
        if self.bin_dir is not None and os.geteuid() == 0:
            _make_reachable(self.bin_dir)
        prefix = _as_user("postgres")
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                [
                    *prefix,
                    self._bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                check=True,
                capture_output=True,
            )
        self._write_config()
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(
            [
                *prefix,
                self._bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.folder / "postgres.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        # Both client tools reach the new server the same way: over TCP, as the cluster's owner.
        server = ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.user]
        exists = subprocess.run(
            [
                *prefix,
                self._bin("psql"),
                *server,
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run([*prefix, self._bin("createdb"), *server, self.database], check=True, capture_output=True)
        return self.url

    def postmaster_pid(self) -> int | None:
        """The server's process id from its lock file, if that process is alive."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def running(self) -> bool:
        return self.postmaster_pid() is not None

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            [*_as_user("postgres"), self._bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
            check=False,
            capture_output=True,
        )


class LocalMosquitto:
    def __init__(self, folder: Path, port: int | None = None, *, extra_config: str = "") -> None:
        self.folder = folder
        self.port = port or free_port()
        self.extra_config = extra_config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "mosquitto.conf"
        user_line = "user mosquitto\n" if os.geteuid() == 0 else ""
        config.write_text(
            f"{user_line}"
            f"listener {self.port} 127.0.0.1\n"
            f"persistence_location {self.folder}/\n"
            f"log_dest file {self.folder}/mosquitto.log\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
            f"{self.extra_config or 'allow_anonymous true'}\n"
            f"include_dir {REPO / 'mosquitto' / 'conf.d'}\n"
        )
        _chown(self.folder, "mosquitto")
        return config

    def start(self) -> str:
        config = self.write_config()
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)
        return self.url

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
