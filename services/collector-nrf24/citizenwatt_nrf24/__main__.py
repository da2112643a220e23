"""Start command: ``python -m citizenwatt_nrf24`` (CW_SENSOR_ID, CW_NRF24_AES_KEY, radio settings...)."""

from __future__ import annotations

from citizenwatt_common.collector.runtime import main_for

from .service import receive_packets
from .settings import Nrf24Settings


def main() -> None:
    main_for("nrf24", Nrf24Settings, receive_packets)


if __name__ == "__main__":
    main()
