"""A Docker daemon of the tests' own, and docker-compose runs against it (tests/test_compose_stack.py).

Per ../shared/docker-here.md: the daemon keeps its data in a cache outside the checkout (so a second
run reuses base images and build layers), has no bridge network and no iptables rules, and listens
only on a unix socket of its own. If such a daemon already answers on that socket it is reused and
left running; one this module started is stopped at the end.
"""

from __future__ import annotations

import hashlib
import os
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
