"""Start command: ``python -m citizenwatt_ina219`` (CW_SENSOR_ID, CW_INA219_* settings, CW_PERIOD_SECONDS...)."""

from __future__ import annotations

from citizenwatt_common.collector.runtime import main_for

from .service import measure_forever
from .settings import Ina219Settings


def main() -> None:
    main_for("ina219", Ina219Settings, measure_forever)


if __name__ == "__main__":
    main()
