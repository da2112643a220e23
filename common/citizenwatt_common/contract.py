"""The MQTT contract: topic names and the reading payload (see docs/mqtt.md).

Home Assistant, Node-RED and users' scripts rely on these names and shapes, so every
service builds and parses them here and nowhere else.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class Nrf24Config(BaseModel):
    """The payload retained on ``<base>/<sensor_id>/config`` for an nRF24 collector.

    The api publishes it when the household saves the radio settings; the collector applies it
    over its environment defaults, so a new sensor key needs no container restart.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    aes_key: str = Field(description="32 hex digits or 16 numbers 0-255 joined by '-'")
    address: int = Field(ge=0, lt=2**40, description="the 40-bit pipe address the sensor writes to")

    @field_validator("aes_key")
    @classmethod
    def _valid_key(cls, text: str) -> str:
        parse_aes_key(text)
        return text.strip()

    @property
    def key(self) -> bytes:
        return parse_aes_key(self.aes_key)


class Reading(BaseModel):
    """One measurement, as published on ``<base>/<sensor_id>/reading`` (schema version 1)."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    sensor: str = Field(pattern=f"^{SENSOR_ID_PATTERN}$")
    kind: SensorKind
    ts: float = Field(gt=EARLIEST_TS)
    power: float = Field(ge=-1_000_000, le=1_000_000, description="W")
    seq: int | None = Field(default=None, ge=0, lt=2**63)
    voltage: float | None = Field(default=None, ge=-1_000, le=1_000, description="V")
    current: float | None = Field(default=None, ge=-1_000, le=1_000, description="A")
    battery: float | None = Field(default=None, ge=0, le=100, description="V")
    soc: float | None = Field(default=None, ge=0, le=100, description="%")
    energy: float | None = Field(default=None, ge=0, le=1e12, description="Wh, device counter")
    state: bool | None = None

    @field_validator("ts")
    @classmethod
    def _not_in_the_future(cls, ts: float) -> float:
        if ts > time.time() + MAX_CLOCK_AHEAD_S:
            raise ValueError("timestamp is more than a day in the future")
        return ts

    def to_payload(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


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
    if not isinstance(raw, dict):
        return Rejection(f"payload is JSON {type(raw).__name__}, not an object")
    if "v" not in raw:
        # The model defaults v for readings built in code; on the wire it is required.
        return Rejection("v: Field required (schema version)")
    try:
        reading = Reading.model_validate(raw)
    except ValidationError as exc:
        return Rejection(_describe(exc))
    if reading.sensor != topic_sensor:
        return Rejection(f"payload sensor {reading.sensor!r} does not match topic sensor {topic_sensor!r}")
    return reading


def _refuse_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


# One decoder for every message: json.loads with an option builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
