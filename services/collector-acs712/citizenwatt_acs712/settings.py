from __future__ import annotations

from citizenwatt_common.collector import CollectorSettings
from citizenwatt_common.envsettings import setting


class Acs712Settings(CollectorSettings):
    acs712_port: str = setting(default="/dev/ttyACM0", description="the Arduino's serial port")
    acs712_baud: int = setting(default=9600, description="serial speed, as in the sketch")
