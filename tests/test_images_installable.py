"""Every image installs on a Raspberry Pi, 64-bit (arm64) and 32-bit (armv7) Raspberry Pi OS, proven
without the hardware: each pinned Python package of each image (docker/requirements/) has a wheel that
pip accepts on that platform, or is one the Dockerfile's build stage compiles (its sources published
and its toolchain in that stage); every Debian package the Dockerfile installs exists for that
architecture in Debian 12. The amd64 side is proven by building the images (test_compose_stack.py).
"""

from __future__ import annotations

import lzma
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.dockerstack import CACHE, REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
# Raspberry Pi OS 12 is Debian 12: CPython 3.11 and glibc 2.36, so manylinux wheels up to 2_36 install.
GLIBC_MINOR = 36
PLATFORMS = {"arm64": "aarch64", "armv7": "armv7l"}
DEBIAN_ARCHES = {"arm64": "arm64", "armv7": "armhf"}
# Packages with no wheel for a platform, compiled by the Dockerfile's `venv` stage, and what that
# compilation needs there. A new dependency without wheels fails this test until it is added here
# (and its build tools to that stage).
BUILT_FROM_SOURCE: dict[str, tuple[set[str], set[str]]] = {
    # name: (platforms, Debian packages its build needs)
    "spidev": ({"arm64", "armv7"}, {"gcc", "python3-dev"}),
    "psycopg-c": ({"arm64", "armv7"}, {"gcc", "python3-dev", "libpq-dev"}),
    "cffi": ({"armv7"}, {"gcc", "python3-dev", "libffi-dev"}),
    # Cython-compiled by its own build (and pure Python if that fails).
    "dbus-fast": ({"armv7"}, {"gcc", "python3-dev"}),
    # Pure Python published as sources only: pip turns it into a wheel, no compiler involved.
    "adafruit-gpio": ({"arm64", "armv7"}, set()),
}


def _image_requirements() -> dict[str, list[str]]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    images: dict[str, list[str]] = {}
    for spec in compose["services"].values():
        name = spec.get("build", {}).get("args", {}).get("REQUIREMENTS")
        if name:
            lines = (REPO / "docker" / "requirements" / f"{name}.txt").read_text().splitlines()
            images[name] = [line for line in lines if line and not line.startswith("#")]
    return images


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _platform_args(arch: str) -> list[str]:
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(17, GLIBC_MINOR + 1)]
    tags += [f"manylinux2014_{arch}", f"linux_{arch}"]
    args = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp"]
    for abi in ("cp311", "abi3", "none"):
        args += ["--abi", abi]
    for tag in tags:
        args += ["--platform", tag]
    return args


def _pip_download(destination: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`pip download --no-deps` into a folder; the caller judges the outcome."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(destination), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _venv_stage_packages() -> set[str]:
    stage = DOCKERFILE.split("AS venv", 1)[1].split("\nFROM ", 1)[0]
    return set(re.findall(r"[a-z0-9][a-z0-9.+-]+", stage.split("--no-install-recommends", 1)[1].split("&&", 1)[0]))


def _debian_packages_installed_by_images() -> set[str]:
    wanted: set[str] = set()
    for match in re.finditer(r"apt-get install -y --no-install-recommends ([^&\\]+)", DOCKERFILE):
        wanted |= {p for p in match.group(1).split() if not p.startswith("$")}
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for spec in compose["services"].values():
        wanted |= set(spec.get("build", {}).get("args", {}).get("RUNTIME_PACKAGES", "").split())
    return wanted


def _debian_index(arch: str) -> set[str]:
    """Package names of Debian 12 (main, with its updates) for one architecture, cached."""
    names: set[str] = set()
    for suite in ("bookworm", "bookworm-updates"):
        cached = CACHE / "debian-index" / f"{suite}-{arch}.xz"
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            url = f"http://deb.debian.org/debian/dists/{suite}/main/binary-{arch}/Packages.xz"
            with urllib.request.urlopen(url, timeout=120) as response:
                cached.with_suffix(".part").write_bytes(response.read())
            cached.with_suffix(".part").rename(cached)
        text = lzma.decompress(cached.read_bytes()).decode()
        names |= set(re.findall(r"^Package: (\S+)$", text, flags=re.M))
    return names


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_every_python_package_of_every_image_has_a_wheel_or_is_built(platform: str, tmp_path: Path) -> None:
    arch = PLATFORMS[platform]
    pins = sorted({pin for image in _image_requirements().values() for pin in pin_list(image)})
    from_source = [
        pin for pin in pins if platform in BUILT_FROM_SOURCE.get(_normalise(pin.split("==")[0]), ((), ()))[0]
    ]
    wheels = [pin for pin in pins if pin not in from_source]
    downloaded = _pip_download(tmp_path / "wheels", *_platform_args(arch), *wheels)
    assert downloaded.returncode == 0, f"no {platform} wheel:\n{downloaded.stderr[-3000:]}"
    got = {_normalise(path.name.split("-")[0]) for path in (tmp_path / "wheels").glob("*.whl")}
    assert got == {_normalise(pin.split("==")[0]) for pin in wheels}

    sources = _pip_download(tmp_path / "sources", "--no-binary=:all:", *from_source)
    assert sources.returncode == 0, f"sources missing for what the build stage compiles:\n{sources.stderr[-3000:]}"
    toolchain = _venv_stage_packages()
    for pin in from_source:
        needs = BUILT_FROM_SOURCE[_normalise(pin.split("==")[0])][1]
        assert needs <= toolchain, f"{pin} needs {needs - toolchain} in the Dockerfile's venv stage"


def pin_list(pins: list[str]) -> list[str]:
    return [pin.split(";")[0].strip() for pin in pins]


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_every_debian_package_of_every_image_exists_for_the_architecture(platform: str) -> None:
    wanted = _debian_packages_installed_by_images()
    assert {"python3", "python3-venv", "libpq5", "mosquitto", "gcc"} <= wanted  # the parsing found them
    missing = wanted - _debian_index(DEBIAN_ARCHES[platform])
    assert not missing, f"not in Debian 12 for {DEBIAN_ARCHES[platform]}: {sorted(missing)}"


def test_a_package_without_an_armv7_wheel_is_caught(tmp_path: Path) -> None:
    """The check itself can fail: psycopg's prebuilt binary has no armv7 wheel."""
    refused = _pip_download(tmp_path, *_platform_args("armv7l"), "psycopg-binary==3.3.8")
    assert refused.returncode != 0
