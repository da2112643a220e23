from __future__ import annotations

from pydantic import Field

from citizenwatt_common.settings import DatabaseSettings, MqttSettings


class AggregatorSettings(MqttSettings, DatabaseSettings):
    client_id: str = Field(default="citizenwatt-aggregator", description="MQTT client id (names the session)")
    session_expiry_seconds: int = Field(
        default=7 * 86_400, ge=60, description="how long the broker keeps our queue while we are away"
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="readings per transaction at most")
    # Each commit costs PostgreSQL an 8 KB WAL page write and an fdatasync, whatever it holds: on an
    # SD card, fewer commits is less wear. 8 s keeps the collectors' outboxes from ever syncing
    # (they sync a reading still unconfirmed after 9 s); a full batch commits at once.
    batch_delay_seconds: float = Field(
        default=8.0, gt=0, le=8.5, description="a batch commits this long after its first reading"
    )
    health_port: int = Field(default=8081, ge=0, le=65535, description="HTTP /healthz port (0: off)")
    ha_discovery: bool = Field(default=True, description="publish Home Assistant MQTT discovery for each sensor")
    ha_discovery_prefix: str = Field(default="homeassistant", description="Home Assistant's discovery prefix")
    compress_after_days: int = Field(
        default=3,
        ge=0,
        description="with TimescaleDB, compress raw readings older than this many days (0: never compress)",
    )
