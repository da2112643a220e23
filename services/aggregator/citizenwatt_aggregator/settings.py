from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from citizenwatt_common.clock_check import DEFAULT_MAX_FUTURE_SECONDS
from citizenwatt_common.settings import CommonSettings, DatabaseSettings, MqttSettings


class AlertSettings(CommonSettings):
    """``CW_ALERT_*``: when the aggregator raises an alert (the rules: citizenwatt_common.alerts)."""

    alert_interval_seconds: float = Field(
        default=60.0, ge=0, description="how often alerts are evaluated (0: no alerts, no standby figure)"
    )
    alert_silent_factor: float = Field(
        default=10.0, gt=0, description="a sensor is silent after this many of its periods without a reading"
    )
    # 300 s is also CW_MAX_GAP_SECONDS' default: a longer silence is when energy stops being counted.
    alert_silent_min_seconds: float = Field(
        default=300.0, ge=0, description="... and never before this many seconds (a Wi-Fi blip is no alert)"
    )
    alert_silent_forget_days: float = Field(
        default=30.0, ge=0, description="a sensor silent longer than this is taken as removed (0: never)"
    )
    alert_unusual_factor: float = Field(
        default=2.0, ge=1, description="an hour is unusual above this many times the usual for its weekday and hour"
    )
    alert_unusual_margin_wh: float = Field(
        default=500.0, ge=0, description="... and above the usual plus this many Wh (quiet hours)"
    )
    alert_unusual_weeks: int = Field(default=8, ge=1, le=52, description="weeks of history the usual is taken from")
    alert_unusual_min_weeks: int = Field(
        default=3, ge=1, le=52, description="measured weeks needed before an hour can be called unusual"
    )
    alert_night_start_hour: int = Field(default=1, ge=0, le=23, description="local hour the standby night starts")
    alert_night_end_hour: int = Field(default=5, ge=0, le=23, description="local hour it ends")
    alert_standby_nights: int = Field(default=7, ge=1, le=60, description="nights the standby baseline looks at")
    alert_standby_sustain_minutes: int = Field(
        default=60, ge=15, le=240, multiple_of=15, description="how long the standby low must last (minutes)"
    )
    alert_standby_watts: float = Field(
        default=0.0, ge=0, description="raise a standby alert above this baseline in W (0: report it, never alert)"
    )

    @model_validator(mode="after")
    def _night_is_not_empty(self) -> Self:
        if self.alert_night_start_hour == self.alert_night_end_hour:
            raise ValueError("CW_ALERT_NIGHT_START_HOUR and CW_ALERT_NIGHT_END_HOUR must differ")
        return self


class AggregatorSettings(MqttSettings, DatabaseSettings, AlertSettings):
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
    # A PostgreSQL commit writes a whole 8 KB WAL page whatever it holds: with a journal, what is
    # made durable every batch is an append of the messages themselves (journal.py), and
    # PostgreSQL gets them in fewer, larger commits. The price: the database, so every view and
    # the live page, is up to commit_seconds behind.
    journal_path: str = Field(
        default="",
        description="file messages are journaled in and synced to before they are acknowledged, then committed"
        " to PostgreSQL every CW_COMMIT_SECONDS (empty: no journal, each batch is committed before it is"
        " acknowledged)",
    )
    commit_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="with a journal, the longest a message waits for its commit"
    )
    # NTP keeps clocks within a second of each other; 5 minutes leave room for a device that
    # sets its clock another way, or drifts between syncs, and are short enough that a reading
    # stored ahead can make a silent sensor look alive no longer than the api's 2-minute online
    # window plus the energy gap limit (CW_MAX_GAP_SECONDS, 300 s by default) already allow.
    max_future_seconds: float = Field(
        default=DEFAULT_MAX_FUTURE_SECONDS,
        gt=0,
        description="a reading stamped further ahead of our clock is quarantined",
    )
    health_port: int = Field(default=8081, ge=0, le=65535, description="HTTP /healthz port (0: off)")
    ha_discovery: bool = Field(default=True, description="publish Home Assistant MQTT discovery for each sensor")
    ha_discovery_prefix: str = Field(
        default="homeassistant",
        pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
        description="Home Assistant's discovery prefix (its birth message is read on <prefix>/status)",
    )
    ha_support_url: str = Field(
        default="https://github.com/CitoyensCapteurs/CitizenWatt",
        description="the support link Home Assistant shows as the discovery messages' origin",
    )
    compress_after_days: int = Field(
        default=3,
        ge=0,
        description="with TimescaleDB, compress raw readings older than this many days (0: never compress)",
    )
