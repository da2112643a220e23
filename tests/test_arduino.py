"""The ACS712 sketch: its RMS arithmetic on the host, and a build for an Uno with Debian's AVR toolchain."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SKETCH = Path(__file__).resolve().parent.parent / "arduino" / "citizenwatt_acs712"


def test_rms_arithmetic_on_the_host(tmp_path: Path) -> None:
    binary = tmp_path / "test_rms"
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-D_DEFAULT_SOURCE",
            "-Wall",
            "-Werror",
            "-o",
            str(binary),
            str(SKETCH / "test_rms.c"),
            "-lm",
        ],
        check=True,
        capture_output=True,
    )
    result = subprocess.run([str(binary)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith("0 failed")


@pytest.mark.skipif(
    not Path("/usr/share/arduino/Arduino.mk").exists() or not shutil.which("avr-gcc"),
    reason="needs Debian's gcc-avr, avr-libc, arduino-core-avr and arduino-mk",
)
def test_the_sketch_builds_for_an_uno(tmp_path: Path) -> None:
    work = tmp_path / "citizenwatt_acs712"
    shutil.copytree(SKETCH, work)
    result = subprocess.run(["make", "-C", str(work)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    hexes = list(work.glob("build-*/*.hex"))
    assert hexes and hexes[0].stat().st_size > 0
