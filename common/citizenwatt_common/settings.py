"""Settings read from environment variables (``CW_*``) on pydantic, for the aggregator and the api.

Each service composes the groups it needs, so a variable means the same thing everywhere. The
collectors read theirs without pydantic (envsettings.py), the MQTT group included.
"""

from __future__ import annotations

from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# The collectors read the same variables without pydantic (envsettings.py): one way to read them.
from .envsettings import ENV_PREFIX, BrokerAddress, check_mqtt_url, environment_values

__all__ = ["ENV_PREFIX", "CommonSettings", "DatabaseSettings", "MqttSettings", "environment_values"]


class CommonSettings(BaseModel):
    """Fields come from keyword arguments, else from ``CW_<FIELD>`` environment variables, else defaults.

    Not pydantic-settings' BaseSettings: importing it cost each process 3 MB of RSS (the simulator
    went from 38.0 to 34.8 MB) for its dotenv, CLI, cloud-secret and asyncio machinery, none of which
    is used here. Plain pydantic parses the strings the same way (tests/test_settings_env.py).
    """

    # As BaseSettings did: defaults are validated too, unknown variables ignored, settings immutable.
    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)

    log_level: str = Field(default="INFO", description="Python logging level")

    @classmethod
    def from_environment(cls) -> Self:
        """Settings from the environment alone (``cls()`` does the same, but type checkers count
        fields without a default, such as a collector's ``sensor_id``, as required arguments)."""
        return cls.model_validate({})

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {**environment_values(cls.model_fields), **data}


class MqttSettings(BrokerAddress, CommonSettings):
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
        check_mqtt_url(url)
        return url

    def _mqtt_password_text(self) -> str | None:
        return None if self.mqtt_password is None else self.mqtt_password.get_secret_value()


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
