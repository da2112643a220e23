from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from citizenwatt_common.settings import DatabaseSettings, MqttSettings

_DEFAULT_UI = Path(__file__).resolve().parents[2] / "ui"


class ApiSettings(DatabaseSettings, MqttSettings):
    api_host: str = Field(default="0.0.0.0", description="address to listen on")  # noqa: S104 (a LAN service)
    api_port: int = Field(default=8080, ge=1, le=65535, description="HTTP port")
    ui_dir: str = Field(default=str(_DEFAULT_UI), description="folder of the static web page served at /")
    max_buckets: int = Field(default=10_000, ge=1, description="most buckets one by_time/.../<step> call may ask")
    max_returned_values: int = Field(default=500, ge=1, description="most measures one by_id range may return")
    session_days: int = Field(default=30, ge=1, description="how long a login lasts")
    admin_login: str | None = Field(default=None, description="create this admin at start if missing")
    admin_password: SecretStr | None = Field(default=None, description="its password")
    trusted_proxies: str = Field(
        default="",
        description="comma-separated addresses of reverse proxies whose X-Forwarded-For is believed; empty: none,"
        " every client is its socket's address (the login throttle counts per address)",
    )
    pool_size: int = Field(default=4, ge=1, le=50, description="database connections")
    api_live_from_broker: bool = Field(
        default=False,
        description="the live page also gets each reading from the broker as it is published, not only once"
        " the aggregator committed it (for an aggregator with a journal: CW_JOURNAL_PATH)",
    )
    api_publish_radio_config: bool = Field(
        default=True, description="connect to the broker to hand nRF24 settings saved in the web page to collectors"
    )
