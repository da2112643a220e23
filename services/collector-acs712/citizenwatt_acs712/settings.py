from __future__ import annotations

from pydantic import Field

from citizenwatt_common.collector import CollectorSettings


class Acs712Settings(CollectorSettings):
    acs712_port: str = Field(default="/dev/ttyACM0", description="the Arduino's serial port")
    acs712_baud: int = Field(default=9600, description="serial speed, as in the sketch")
