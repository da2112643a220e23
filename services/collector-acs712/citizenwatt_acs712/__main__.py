"""Start command: ``python -m citizenwatt_acs712`` (CW_SENSOR_ID, CW_ACS712_PORT, CW_ACS712_BAUD...)."""

from __future__ import annotations

from citizenwatt_common.collector.runtime import main_for

from .service import read_lines
from .settings import Acs712Settings


def main() -> None:
    main_for("acs712", Acs712Settings, read_lines)


if __name__ == "__main__":
    main()
