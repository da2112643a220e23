"""Pure decoding of the Arduino's serial lines: no port, no clock.

Three formats are accepted:
- ``<power>``: watts (the first original sketch);
- ``<cell_voltage>|<state_of_charge>|<power>``: with a MAX17043 fuel gauge (the second one);
- ``CW1 irms=<A> vrms=<V> p=<W> n=<samples>*<XX>``: this project's sketch (arduino/), where XX is
  the XOR of every byte before ``*``, in hex, so a line garbled on the wire is caught.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NEW_FORMAT = re.compile(r"^(CW1 [^*]*)\*([0-9A-Fa-f]{2})$")


@dataclass(frozen=True)
class LineReading:
    power: float
    current: float | None = None
    voltage: float | None = None
    battery: float | None = None
    soc: float | None = None


@dataclass(frozen=True)
class LineRejected:
    reason: str


def xor_checksum(text: str) -> int:
    value = 0
    for byte in text.encode("ascii"):
        value ^= byte
    return value


def decode_line(raw: bytes) -> LineReading | LineRejected:
    try:
        line = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return LineRejected(f"not ASCII: {raw[:40]!r}")
    if not line:
        return LineRejected("empty line")
    if line.startswith("CW1"):
        return _decode_cw1(line)
    parts = line.split("|")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        return LineRejected(f"not a number: {line[:40]!r}")
    if not all(math.isfinite(n) for n in numbers):
        return LineRejected(f"not a finite number: {line[:40]!r}")
    if len(numbers) == 1:
        return _checked(LineReading(power=numbers[0]), line)
    if len(numbers) == 3:
        cell, soc, power = numbers
        if not (0 <= cell <= 5 and 0 <= soc <= 100):
            return LineRejected(f"battery {cell} V / {soc} % out of range: {line!r}")
        return _checked(LineReading(power=power, battery=cell, soc=soc), line)
    return LineRejected(f"{len(numbers)} fields, expected 1 or 3: {line[:40]!r}")


def _decode_cw1(line: str) -> LineReading | LineRejected:
    match = _NEW_FORMAT.match(line)
    if not match:
        return LineRejected(f"CW1 line without its *XX checksum (truncated?): {line[:60]!r}")
    body, checksum = match.group(1), int(match.group(2), 16)
    if xor_checksum(body) != checksum:
        return LineRejected(f"checksum {checksum:02X} does not match {xor_checksum(body):02X}: {line[:60]!r}")
    fields = dict(item.split("=", 1) for item in body.split()[1:] if "=" in item)
    try:
        reading = LineReading(power=float(fields["p"]), current=float(fields["irms"]), voltage=float(fields["vrms"]))
    except (KeyError, ValueError):
        return LineRejected(f"CW1 line needs numeric irms, vrms and p: {line[:60]!r}")
    return _checked(reading, line)


def _checked(reading: LineReading, line: str) -> LineReading | LineRejected:
    if not -100_000 <= reading.power <= 100_000:
        return LineRejected(f"power {reading.power} W is not plausible: {line[:40]!r}")
    return reading
