"""Start command: ``python -m citizenwatt_acs712`` (CW_SENSOR_ID, CW_ACS712_PORT, CW_ACS712_BAUD...)."""

from __future__ import annotations

from citizenwatt_common.plain_mqtt import leave_out_ssl_unless_mqtts

if __name__ == "__main__":  # the start command (not a test importing this module)
    leave_out_ssl_unless_mqtts()  # before paho-mqtt and asyncio are imported

from citizenwatt_common.collector.runtime import main_for

from .service import read_lines
from .settings import Acs712Settings


def main() -> None:
    main_for("acs712", Acs712Settings, read_lines)


if __name__ == "__main__":
    main()
