from __future__ import annotations

from citizenwatt_common.collector import CollectorSettings
from citizenwatt_common.envsettings import setting


class AwoxSettings(CollectorSettings):
    awox_address: str = setting(default="", description="the plug's Bluetooth address, e.g. AA:BB:CC:DD:EE:FF")
    awox_answer_timeout_seconds: float = setting(default=5.0, gt=0, description="wait for a status answer this long")
