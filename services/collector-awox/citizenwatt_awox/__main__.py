"""Start command: ``python -m citizenwatt_awox`` (CW_SENSOR_ID, CW_AWOX_ADDRESS, CW_PERIOD_SECONDS...)."""

from __future__ import annotations

from citizenwatt_common.collector.runtime import main_for

from .service import run_plug
from .settings import AwoxSettings


def main() -> None:
    main_for("awox", AwoxSettings, run_plug)


if __name__ == "__main__":
    main()
