"""Pin each image's complete Python dependency set: docker/requirements/<extra>.txt.

The images install exactly these pins (`pip install --no-deps -r`), so a build on a Pi next year gets
the versions CI built and checked for arm64 and armv7 (tests/test_images_installable.py). Run it after
changing a dependency in pyproject.toml: ``python -m tools.lock_requirements``.

The closure is resolved by pip itself (``--dry-run --report``) for CPython 3.11 on Linux, the Python of
Debian 12 and Raspberry Pi OS 12, which the images use.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docker" / "requirements"
# Compiled speed-ups the images add on top of an extra (built in the image's wheels stage where no
# wheel exists for the platform): psycopg's C implementation instead of its pure-Python one.
IMAGE_EXTRAS: dict[str, list[str]] = {"aggregator": ["psycopg[c]"], "api": ["psycopg[c]"]}
IMAGES = ("aggregator", "api", "simulator", "nrf24", "ina219", "acs712", "awox")


def resolve(requirements: list[str]) -> list[tuple[str, str]]:
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--report",
            "-",
            "--no-warn-conflicts",
            *requirements,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    installs = json.loads(report)["install"]
    pins = [(item["metadata"]["name"], item["metadata"]["version"]) for item in installs]
    return sorted(pins, key=lambda pin: pin[0].lower())


def main() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base: list[str] = project["dependencies"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    OUT.mkdir(parents=True, exist_ok=True)
    for image in IMAGES:
        wanted = [*base, *extras[image], *IMAGE_EXTRAS.get(image, [])]
        pins = resolve(wanted)
        lines = [
            f"# The {image} image's Python packages, complete and pinned: python -m tools.lock_requirements",
            *(f"{name}=={version}" for name, version in pins),
        ]
        (OUT / f"{image}.txt").write_text("\n".join(lines) + "\n")
        print(f"{image}: {len(pins)} packages")


if __name__ == "__main__":
    main()
