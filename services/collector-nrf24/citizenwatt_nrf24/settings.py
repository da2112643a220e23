from __future__ import annotations

from citizenwatt_common.collector import CollectorSettings
from citizenwatt_common.envsettings import setting

from .decoder import parse_key


def _check_key(text: str) -> None:
    parse_key(text)  # raises ValueError saying which forms a key may take


class Nrf24Settings(CollectorSettings):
    nrf24_aes_key: str = setting(
        default="0-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15",
        description="the sensor's AES-128 key: 32 hex digits or 16 numbers 0-255 joined by '-'",
        check=_check_key,
        secret=True,
    )
    nrf24_channel: int = setting(default=76, ge=0, le=125, description="radio channel")
    nrf24_data_rate_kbps: int = setting(default=250, choices=(250, 1000, 2000), description="air data rate")
    nrf24_crc_bits: int = setting(default=16, choices=(8, 16), description="CRC length; must match the sensor")
    nrf24_address: int = setting(default=0xE056D446D0, description="pipe address the sensor writes to")
    nrf24_ce_pin: int = setting(default=22, description="GPIO of the CE pin")
    nrf24_csn: int = setting(default=0, description="SPI chip select: 0 for /dev/spidev0.0")
    nrf24_check_padding: bool = setting(default=True, description="refuse packets whose padding is not zero")
    nrf24_poll_seconds: float = setting(default=0.05, gt=0, description="how often the radio is checked")

    @property
    def key(self) -> bytes:
        return parse_key(self.nrf24_aes_key)
