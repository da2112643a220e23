"""Settings read from environment variables (``CW_*``), shared by every service.

Each service composes the groups it needs, so a variable means the same thing everywhere.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(env_prefix="CW_", extra="ignore", frozen=True)

    log_level: str = Field(default="INFO", description="Python logging level")


class MqttSettings(CommonSettings):
    mqtt_url: str = Field(default="mqtt://localhost:1883", description="mqtt://host:port or mqtts://host:port")
    mqtt_username: str | None = Field(default=None, description="broker account (none: anonymous)")
    mqtt_password: SecretStr | None = Field(default=None, description="broker password")
    mqtt_password_file: str | None = Field(
        default=None, description="file holding the broker password (generated secrets, docker secrets)"
    )
    base_topic: str = Field(default="citizenwatt", description="first level(s) of every topic")

    @field_validator("mqtt_url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("CW_MQTT_URL must look like mqtt://host:1883 or mqtts://host:8883")
        return url

    def mqtt_secret(self) -> str | None:
        """The broker password, from CW_MQTT_PASSWORD or else from CW_MQTT_PASSWORD_FILE."""
        if self.mqtt_password is not None:
            return self.mqtt_password.get_secret_value()
        if self.mqtt_password_file:
            with open(self.mqtt_password_file, encoding="utf-8") as handle:
                return handle.read().strip()
        return None

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "localhost"

    @property
    def mqtt_port(self) -> int:
        parts = urlsplit(self.mqtt_url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def mqtt_tls(self) -> bool:
        return urlsplit(self.mqtt_url).scheme == "mqtts"


class DatabaseSettings(CommonSettings):
    database_url: str = Field(
        default="postgresql://citizenwatt@localhost:5432/citizenwatt",
        description="libpq connection URL",
    )
    timezone: str = Field(default="Europe/Paris", description="household time zone (IANA name)")
    max_gap_seconds: float = Field(
        default=300.0, gt=0, description="readings further apart than this bound no energy (sensor offline)"
    )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        return name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
