"""Start command: ``python -m citizenwatt_ina219`` (CW_SENSOR_ID, CW_INA219_* settings, CW_PERIOD_SECONDS...)."""

from __future__ import annotations

from citizenwatt_common.plain_mqtt import leave_out_ssl_unless_mqtts

if __name__ == "__main__":  # the start command (not a test importing this module)
    leave_out_ssl_unless_mqtts()  # before paho-mqtt and asyncio are imported

from citizenwatt_common.collector.runtime import main_for

from .service import measure_forever
from .settings import Ina219Settings


def main() -> None:
    main_for("ina219", Ina219Settings, measure_forever)


if __name__ == "__main__":
    main()
