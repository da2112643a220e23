from __future__ import annotations

from citizenwatt_common.collector import CollectorSettings
from citizenwatt_common.envsettings import setting


class Ina219Settings(CollectorSettings):
    ina219_shunt_ohms: float = setting(default=0.1, gt=0, description="shunt resistor (0.1 on the common breakout)")
    ina219_max_expected_amps: float | None = setting(default=None, gt=0, description="sets the gain (none: auto)")
    ina219_address: int = setting(default=0x40, ge=0x03, le=0x77, description="I²C address (0x40 = 64)")
    ina219_bus: int = setting(default=1, ge=0, description="I²C bus number: 1 is /dev/i2c-1 on a Pi")
