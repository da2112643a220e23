"""A Docker daemon of the tests' own, and docker-compose runs against it (tests/test_compose_stack.py).

Per ../shared/docker-here.md: the daemon keeps its data in a cache outside the checkout (so a second
run reuses base images and build layers), has no bridge network and no iptables rules, and listens
only on a unix socket of its own. If such a daemon already answers on that socket it is reused and
left running; one this module started is stopped at the end.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(
    os.environ.get("CW_CACHE_DIR", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "citizenwatt")
)


class DockerUnavailable(RuntimeError):
    """No Docker daemon can be had on this machine."""


class DockerDaemon:
    def __init__(self, folder: Path = CACHE / "docker") -> None:
        self.folder = folder
        self.socket = folder / "docker.sock"
        self.process: subprocess.Popen[bytes] | None = None
        # The Debian client matches the Debian daemon's API; any other client negotiates down to it.
        self.client = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER": self.client}

    def answers(self) -> bool:
        if not self.socket.exists():
            return False
        probe = subprocess.run([self.client, "info"], env=self.env, capture_output=True, check=False, timeout=30)
        return probe.returncode == 0

    def start(self) -> None:
        if self.answers():
            return
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise DockerUnavailable("dockerd not found (Debian package docker.io)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        log = (self.folder / "dockerd.log").open("ab")
        self.process = subprocess.Popen(
            [
                dockerd,
                "--data-root",
                str(self.folder / "root"),
                # Short (containerd's shim sockets live under it, and unix socket paths are short) and
                # one per data folder, so two daemons of this kind never share it.
                "--exec-root",
                f"/run/citizenwatt-docker-{hashlib.sha256(str(self.folder).encode()).hexdigest()[:8]}",
                "--host",
                f"unix://{self.socket}",
                "--pidfile",
                str(self.folder / "docker.pid"),
                "--bridge=none",
                "--iptables=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not self.answers():
            if self.process.poll() is not None:
                raise DockerUnavailable(f"dockerd exited with {self.process.returncode}: see {self.folder}/dockerd.log")
            if time.monotonic() > deadline:
                raise DockerUnavailable("dockerd did not answer within 60 s")
            time.sleep(0.2)

    def remove_left_projects(self, pattern: str) -> list[str]:
        """Remove the compose projects whose name matches ``pattern`` (a regular expression), with
        their volumes and networks; returns their names. A run killed mid-test (a CI timeout, a
        session's end) leaves its stack behind, and containers under a restart policy start again
        with the daemon: on host networking they hold the ports the next run's stack needs."""
        labels = self.run("ps", "-a", "--format", '{{.Label "com.docker.compose.project"}}').stdout.split()
        left = sorted({name for name in labels if re.fullmatch(pattern, name)})
        for name in left:
            selector = f"label=com.docker.compose.project={name}"
            containers = self.run("ps", "-aq", "--filter", selector).stdout.split()
            if containers:
                self.run("rm", "-f", "-v", *containers)
            volumes = self.run("volume", "ls", "-q", "--filter", selector).stdout.split()
            if volumes:
                self.run("volume", "rm", "-f", *volumes)
            networks = self.run("network", "ls", "-q", "--filter", selector).stdout.split()
            if networks:
                self.run("network", "rm", *networks, check=False)
        return left

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        self.process = None

    def run(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.client, *args], env=self.env, capture_output=True, text=True, check=False, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result


class ComposeProject:
    """`docker-compose -p NAME -f docker-compose.yml -f <override>` against a DockerDaemon."""

    def __init__(self, daemon: DockerDaemon, name: str, files: Sequence[Path], env: dict[str, str]) -> None:
        self.daemon = daemon
        self.name = name
        self.files = list(files)
        self.env = {**daemon.env, **env}
        if shutil.which("docker-compose") is None:
            raise DockerUnavailable("docker-compose not found (Debian package docker-compose)")
        # Debian's docker-compose 1.29, through tests/compose/compose_host_network.py (see there why).
        self.command = ["/usr/bin/python3", str(REPO / "tests" / "compose" / "compose_host_network.py")]

    def __call__(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        command = [*self.command, "-p", self.name]
        for file in self.files:
            command += ["-f", str(file)]
        result = subprocess.run(
            [*command, *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker-compose {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                f"{result.stderr[-5000:]}"
            )
        return result

    def container(self, service: str) -> str:
        return self("ps", "-q", service).stdout.strip()

    def recent_logs(self, lines: int = 80) -> str:
        """Every container's last ``lines`` lines of log: what a failing test prints."""
        return self("logs", "--no-color", "--timestamps", "--tail", str(lines), check=False).stdout[-12000:]

    def health(self, service: str) -> str:
        container = self.container(service)
        if not container:
            return "absent"
        state = self.daemon.run(
            "inspect",
            "-f",
            "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
            container,
            check=False,
        )
        return state.stdout.strip() or "absent"


TIMESCALEDB_IMAGE = "citizenwatt-test/timescaledb:2.28.3-pg15"
OVERRIDE = REPO / "tests" / "compose" / "docker-compose.ci.yml"


def build_base_images(daemon: DockerDaemon, context: Path) -> None:
    """The images the stack's own build starts from, which this machine cannot pull: the
    debian:bookworm-slim stand-in, and TimescaleDB 2.28.3 built from ../shared/vendor (in
    ``context``, an empty folder). Raises DockerUnavailable when TimescaleDB cannot be built."""
    subprocess.run(["bash", str(REPO / "tools" / "debian-base-image.sh")], env=daemon.env, check=True)
    built = subprocess.run(["bash", str(REPO / "tools" / "build-timescaledb.sh")], capture_output=True, text=True)
    if built.returncode != 0:
        raise DockerUnavailable(f"TimescaleDB could not be built: {built.stderr[-2000:]}")
    root = Path(built.stdout.strip()).parents[3]  # <root>/lib/postgresql/15/bin
    (context / "lib").mkdir(parents=True)
    (context / "extension").mkdir()
    for library in (root / "lib/postgresql/15/lib").glob("timescaledb*.so"):
        shutil.copy2(library, context / "lib")
    for control in (root / "share/postgresql/15/extension").glob("timescaledb*"):
        shutil.copy2(control, context / "extension")
    for name in ("timescaledb.Dockerfile", "entrypoint.sh"):
        shutil.copy2(REPO / "tests" / "compose" / name, context / name)
    server_version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "postgresql-server-dev-15"], capture_output=True, text=True, check=True
    ).stdout.strip()
    daemon.run(
        "build",
        "--network",
        "host",
        "-q",
        "-t",
        TIMESCALEDB_IMAGE,
        "--build-arg",
        f"POSTGRESQL_VERSION={server_version}",
        "-f",
        str(context / "timescaledb.Dockerfile"),
        str(context),
    )


def wait_healthy(stack: ComposeProject, *services: str, timeout: float = 300) -> None:
    """Until every service is "running healthy"; fails at once, with the logs, if one exited."""
    deadline = time.monotonic() + timeout
    while True:
        states = {name: stack.health(name) for name in services}
        broken = {name: state for name, state in states.items() if state.startswith(("exited", "dead"))}
        if broken:
            raise AssertionError(f"{broken}\n{stack.recent_logs()}")
        if all(state == "running healthy" for state in states.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not healthy within {timeout:.0f} s: {states}\n{stack.recent_logs()}")
        time.sleep(1)
