"""The MQTT contract: topic names and the reading payload (see docs/mqtt.md).

Home Assistant, Node-RED and users' scripts rely on these names and shapes, so every
service builds and parses them here and nowhere else.

Plain dataclasses that check themselves, not pydantic models: a collector imports this module,
and pydantic (with the models built) was 10 MB of a collector's 30 MB budget (issue 11). The
same classes validate what the aggregator receives, so there is one definition of a reading.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import MISSING, dataclass, fields
from typing import Any, Final, Literal

SCHEMA_VERSION: Final = 1
SENSOR_ID_PATTERN: Final = r"[a-z0-9_-]{1,64}"
SENSOR_ID_RE: Final = re.compile(rf"^{SENSOR_ID_PATTERN}$")

# The sensor kinds a collector may declare. A new collector adds its kind here.
SensorKind = Literal["nrf24", "ina219", "acs712", "awox", "simulator"]
KINDS: Final[tuple[str, ...]] = ("nrf24", "ina219", "acs712", "awox", "simulator")

STATUS_ONLINE: Final = "online"
STATUS_OFFLINE: Final = "offline"
MAX_PAYLOAD_BYTES: Final = 4096
# Readings stamped before this are from a clock that was never set (a Pi without RTC boots in 1970).
EARLIEST_TS: Final = 946_684_800.0  # 2000-01-01T00:00:00Z
# How far ahead of the receiver's clock a reading may be stamped before it is called absurd.
MAX_CLOCK_AHEAD_S: Final = 86_400.0
# A reading's optional ``clock`` mark: stamped by a wall clock the kernel did not call synchronised
# (a collector that waited CW_CLOCK_WAIT_SECONDS for NTP in vain, see collector/held.py).
CLOCK_UNSYNCED: Final = "unsynced"


@dataclass(frozen=True)
class Topics:
    """Topic names under one base topic (``CW_BASE_TOPIC``, default ``citizenwatt``)."""

    base: str = "citizenwatt"

    def reading(self, sensor_id: str) -> str:
        return f"{self.base}/{sensor_id}/reading"

    def status(self, sensor_id: str) -> str:
        return f"{self.base}/{sensor_id}/status"

    def state(self, sensor_id: str) -> str:
        return f"{self.base}/{sensor_id}/state"

    def set(self, sensor_id: str) -> str:
        return f"{self.base}/{sensor_id}/set"

    def event(self, sensor_id: str) -> str:
        """Device errors that are not readings (e.g. an INA219 range overflow)."""
        return f"{self.base}/{sensor_id}/event"

    def config(self, sensor_id: str) -> str:
        """Retained settings for one collector chosen in the web page (today: the nRF24 key and address)."""
        return f"{self.base}/{sensor_id}/config"

    def committed(self, sensor_id: str) -> str:
        """Newest ``seq`` the aggregator has committed for a sensor (lets collectors prune outboxes)."""
        return f"{self.base}/{sensor_id}/committed"

    def alert(self, sensor_id: str) -> str:
        """Retained: the sensor's active alerts and standby baseline (the aggregator's, JSON)."""
        return f"{self.base}/{sensor_id}/alert"

    def alert_event(self, sensor_id: str) -> str:
        """Not retained: one message when an alert is raised or cleared, for notifications."""
        return f"{self.base}/{sensor_id}/alert/event"

    @property
    def all_readings(self) -> str:
        return f"{self.base}/+/reading"

    def service_status(self, service: str) -> str:
        # Four levels deep, so no ``<base>/+/status`` subscription mistakes a service for a sensor.
        return f"{self.base}/_services/{service}/status"

    def sensor_of(self, topic: str) -> str | None:
        """The ``<sensor_id>`` of a reading topic, or None if the topic is not one."""
        parts = topic.split("/")
        base_parts = self.base.split("/")
        if len(parts) != len(base_parts) + 2 or parts[: len(base_parts)] != base_parts:
            return None
        if parts[-1] != "reading":
            return None
        sensor = parts[-2]
        return sensor if SENSOR_ID_RE.match(sensor) else None


def parse_aes_key(text: str) -> bytes:
    """A 16-byte AES key written as 32 hex digits or in the legacy ``0-1-2-...-15`` decimal form."""
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{32}", text):
        return bytes.fromhex(text)
    parts = text.split("-")
    if len(parts) == 16 and all(p.isdigit() and int(p) <= 255 for p in parts):
        return bytes(int(p) for p in parts)
    raise ValueError("the AES key must be 32 hex digits or 16 numbers 0-255 joined by '-'")


class InvalidPayload(ValueError):
    """What is wrong with a reading or a config, field by field (``"power: ..."; ...``)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:_MAX_PROBLEMS]))
        self.problems = problems


_MAX_PROBLEMS = 5


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _number_problem(value: object, low: float, high: float) -> str | None:
    """Why ``value`` is not a finite number in [low, high] (a bool is not a number), or None."""
    kind = type(value)
    if kind is not float and kind is not int:
        return f"expected a number, got {_type_name(value)}"
    if kind is float and not math.isfinite(value):  # type: ignore[arg-type]
        return f"non-finite number {value}"
    if not low <= value <= high:  # type: ignore[operator]
        return f"{value} is outside {low:,.0f}..{high:,.0f}"
    return None


def _ts_problem(value: object) -> str | None:
    problem = _number_problem(value, -math.inf, math.inf)
    if problem is not None:
        return problem
    if value <= EARLIEST_TS:  # type: ignore[operator]
        return f"{value} is before 2000-01-01 (a clock that was never set?)"
    if value > time.time() + MAX_CLOCK_AHEAD_S:  # type: ignore[operator]
        return "timestamp is more than a day in the future"
    return None


def _exact_problem(value: object, expected: object, what: str) -> str | None:
    # type() too: True == 1 and 1.0 == 1, neither is the schema version 1.
    if type(value) is type(expected) and value == expected:
        return None
    return f"expected {what}, got {value!r}"


# Bounds of the optional numbers: (name, low, high).
_OPTIONAL_NUMBERS: Final = (
    ("voltage", -1_000.0, 1_000.0),  # V
    ("current", -1_000.0, 1_000.0),  # A
    ("battery", 0.0, 100.0),  # V
    ("soc", 0.0, 100.0),  # %
    ("energy", 0.0, 1e12),  # Wh, the device's own counter
)
_POWER_LIMIT: Final = 1_000_000.0  # W
_SEQ_LIMIT: Final = 2**63 - 1


# Not slots=True: the aggregator builds each received reading straight into its __dict__
# (Reading._from_wire), 2 µs faster per message than the frozen __init__'s twelve setattr calls.
@dataclass(frozen=True, kw_only=True)
class Reading:
    """One measurement, as published on ``<base>/<sensor_id>/reading`` (schema version 1).

    Constructing one checks it (``InvalidPayload``, a ValueError, names every bad field): types are
    strict (no text or bool where a number is due, no number where a bool is), numbers finite and
    within bounds, ``ts`` after 2000 and at most a day ahead of this machine's clock. Whole numbers
    given for the float fields are stored as floats.
    """

    v: int = SCHEMA_VERSION
    sensor: str
    kind: SensorKind
    ts: float
    power: float  # W
    seq: int | None = None
    voltage: float | None = None  # V
    current: float | None = None  # A
    battery: float | None = None  # V
    soc: float | None = None  # %
    energy: float | None = None  # Wh, device counter
    state: bool | None = None
    clock: Literal["unsynced"] | None = None  # the collector's clock was not synchronised

    def __post_init__(self) -> None:
        problems = _check_reading(self)
        if problems:
            raise InvalidPayload(problems)

    @classmethod
    def _from_wire(cls, values: dict[str, Any]) -> Reading:
        """A reading from decoded JSON holding every required field and no unknown one (parse_reading's
        fast path): the same checks as the constructor, without its per-field setattr calls."""
        reading = object.__new__(cls)
        fields_of = reading.__dict__
        fields_of.update(_DEFAULTS)
        fields_of.update(values)
        problems = _check_reading(reading)
        if problems:
            raise InvalidPayload(problems)
        return reading

    def to_payload(self) -> bytes:
        """Compact JSON with the fields that are set, in the documented order."""
        values = {name: getattr(self, name) for name in _FIELD_NAMES}
        return json.dumps({k: v for k, v in values.items() if v is not None}, separators=(",", ":")).encode()


_FIELD_NAMES: Final = tuple(f.name for f in fields(Reading))
_DEFAULTS: Final = {f.name: f.default for f in fields(Reading) if f.default is not MISSING}
_REQUIRED_ON_WIRE: Final = frozenset(("v", "sensor", "kind", "ts", "power"))
_KNOWN: Final = frozenset(_FIELD_NAMES)
_KIND_SET: Final = frozenset(KINDS)


def _check_reading(reading: Reading) -> list[str]:
    """Every field's problem, in field order (empty when the reading is valid).

    Also stores a whole number given for a float field (JSON's 42 for 42.0) as a float, so the
    fields hold their declared types. The aggregator runs it on every message, hence the inline
    fast tests of the common case (a float within bounds: NaN and infinities fail the chained
    comparisons) before the helpers that word the problem.
    """
    values = reading.__dict__
    problems = []
    v = values["v"]
    if type(v) is not int or v != SCHEMA_VERSION:
        problems.append(f"v: {_exact_problem(v, SCHEMA_VERSION, 'schema version 1')}")
    sensor = values["sensor"]
    if type(sensor) is not str or not SENSOR_ID_RE.fullmatch(sensor):
        problems.append(f"sensor: expected an id matching {SENSOR_ID_PATTERN}, got {sensor!r}")
    kind = values["kind"]
    if type(kind) is not str or kind not in _KIND_SET:
        problems.append(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    ts = values["ts"]
    if not (type(ts) is float and EARLIEST_TS < ts <= time.time() + MAX_CLOCK_AHEAD_S):
        if (problem := _ts_problem(ts)) is not None:
            problems.append(f"ts: {problem}")
        elif type(ts) is int:
            values["ts"] = float(ts)
    power = values["power"]
    if not (type(power) is float and -_POWER_LIMIT <= power <= _POWER_LIMIT):
        if (problem := _number_problem(power, -_POWER_LIMIT, _POWER_LIMIT)) is not None:
            problems.append(f"power: {problem}")
        elif type(power) is int:
            values["power"] = float(power)
    seq = values["seq"]
    if seq is not None and (type(seq) is not int or not 0 <= seq <= _SEQ_LIMIT):
        problems.append(f"seq: expected a whole number 0..2^63-1, got {seq!r}")
    for name, low, high in _OPTIONAL_NUMBERS:
        value = values[name]
        if value is None or (type(value) is float and low <= value <= high):
            continue
        if (problem := _number_problem(value, low, high)) is not None:
            problems.append(f"{name}: {problem}")
        elif type(value) is int:
            values[name] = float(value)
    state = values["state"]
    if state is not None and type(state) is not bool:
        problems.append(f"state: expected true or false, got {state!r}")
    clock = values["clock"]
    if clock is not None and clock != CLOCK_UNSYNCED:
        problems.append(f"clock: expected {CLOCK_UNSYNCED!r}, got {clock!r}")
    return problems


@dataclass(frozen=True, slots=True, kw_only=True)
class Nrf24Config:
    """The payload retained on ``<base>/<sensor_id>/config`` for an nRF24 collector.

    The api publishes it when the household saves the radio settings; the collector applies it
    over its environment defaults, so a new sensor key needs no container restart. Constructing
    one checks it (``InvalidPayload``); the key is kept as given, without surrounding blanks.
    """

    v: int = 1
    aes_key: str  # 32 hex digits or 16 numbers 0-255 joined by '-'
    address: int  # the 40-bit pipe address the sensor writes to

    def __post_init__(self) -> None:
        problems = []
        if (problem := _exact_problem(self.v, 1, "version 1")) is not None:
            problems.append(f"v: {problem}")
        if type(self.aes_key) is not str:
            problems.append(f"aes_key: expected text, got {_type_name(self.aes_key)}")
        else:
            try:
                parse_aes_key(self.aes_key)
            except ValueError as exc:
                problems.append(f"aes_key: {exc}")
            object.__setattr__(self, "aes_key", self.aes_key.strip())
        if type(self.address) is not int or not 0 <= self.address < 2**40:
            problems.append(f"address: expected a whole number 0..2^40-1, got {self.address!r}")
        if problems:
            raise InvalidPayload(problems)

    @property
    def key(self) -> bytes:
        return parse_aes_key(self.aes_key)

    def to_payload(self) -> bytes:
        return json.dumps(
            {"v": self.v, "aes_key": self.aes_key, "address": self.address}, separators=(",", ":")
        ).encode()

    @classmethod
    def from_payload(cls, payload: bytes) -> Nrf24Config:
        """Parse a retained config message; ``InvalidPayload`` says what is wrong (unknown fields too)."""
        try:
            raw: Any = _DECODER.decode(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InvalidPayload([f"payload is not JSON: {exc}"]) from None
        if not isinstance(raw, dict):
            raise InvalidPayload([f"payload is JSON {type(raw).__name__}, not an object"])
        problems = [f"{name}: unknown field" for name in raw if name not in ("v", "aes_key", "address")]
        problems += [f"{name}: missing, required" for name in ("aes_key", "address") if name not in raw]
        if problems:
            raise InvalidPayload(problems)
        return cls(**raw)


@dataclass(frozen=True)
class Rejection:
    """Why a message on a reading topic was refused; kept so a user can look at it."""

    reason: str


def parse_reading(topic_sensor: str | None, payload: bytes) -> Reading | Rejection:
    """Validate a raw MQTT payload received on the reading topic of ``topic_sensor``.

    Never raises: anything that is not a valid reading comes back as a Rejection with
    a reason a human can act on.
    """
    if topic_sensor is None:
        return Rejection("topic is not <base>/<sensor_id>/reading with a valid sensor id")
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejection(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(f"payload is not UTF-8 ({exc.reason} at byte {exc.start})")
    try:
        # parse_constant turns NaN/Infinity (which Python's json accepts) into an error.
        raw: Any = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        return Rejection(f"payload is not JSON: {exc}")
    if type(raw) is not dict:
        return Rejection(f"payload is JSON {type(raw).__name__}, not an object")
    keys = raw.keys()
    if not keys <= _KNOWN:
        # Unknown fields are ignored (a newer collector may add some); only known ones are checked.
        raw = {name: value for name, value in raw.items() if name in _KNOWN}
        keys = raw.keys()
    if not keys >= _REQUIRED_ON_WIRE:
        return Rejection(_missing_fields(raw))
    try:
        reading = Reading._from_wire(raw)
    except InvalidPayload as exc:
        return Rejection(str(exc))
    if reading.sensor != topic_sensor:
        return Rejection(f"payload sensor {reading.sensor!r} does not match topic sensor {topic_sensor!r}")
    return reading


def _missing_fields(raw: dict[str, Any]) -> str:
    """The reason for a payload lacking required fields, with what is wrong in the others too."""
    # "v" is required on the wire although readings built in code default it.
    problems = [
        f"{name}: missing, required" + (" (schema version)" if name == "v" else "")
        for name in _FIELD_NAMES
        if name in _REQUIRED_ON_WIRE and name not in raw
    ]
    # Check the fields that are there with stand-ins for the missing ones, which are valid by
    # construction, so the reason lists every problem at once.
    stand_in: dict[str, Any] = {"v": 1, "sensor": "x", "kind": KINDS[0], "ts": time.time(), "power": 0.0}
    try:
        Reading(**{**{k: v for k, v in stand_in.items() if k not in raw}, **raw})
    except InvalidPayload as exc:
        problems += exc.problems
    return "; ".join(problems[:_MAX_PROBLEMS])


def _refuse_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


# One decoder for every message: json.loads with an option builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
