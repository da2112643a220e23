"""What every collector reads from its environment (without pydantic: see envsettings.py)."""

from __future__ import annotations

from ..contract import SENSOR_ID_PATTERN
from ..envsettings import MqttEnvSettings, setting


class CollectorSettings(MqttEnvSettings):
    sensor_id: str = setting(pattern=SENSOR_ID_PATTERN, description="MQTT <sensor_id> of this collector")
    period_seconds: float = setting(default=8.0, gt=0, le=3600, description="seconds between readings")
    buffer_size: int = setting(default=100_000, ge=1, description="readings kept until confirmed stored")
    outbox_path: str | None = setting(
        default=None, description="outbox log (files <path>.0 and <path>.1) keeping unconfirmed readings (none: memory)"
    )
    clock_wait_seconds: float = setting(
        default=600.0,
        ge=0,
        le=86_400,
        description=(
            "while the kernel says the clock is not synchronised, hold readings until this many seconds"
            " after boot, then publish them marked clock=unsynced (0: publish at once, marked)"
        ),
    )
