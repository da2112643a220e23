from __future__ import annotations

from pydantic import Field

from citizenwatt_common.collector import CollectorSettings


class AwoxSettings(CollectorSettings):
    awox_address: str = Field(default="", description="the plug's Bluetooth address, e.g. AA:BB:CC:DD:EE:FF")
    awox_answer_timeout_seconds: float = Field(default=5.0, gt=0, description="wait for a status answer this long")
