from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from citizenwatt_common.collector import CollectorSettings

from .decoder import parse_key


class Nrf24Settings(CollectorSettings):
    nrf24_aes_key: str = Field(
        default="0-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15",
        description="the sensor's AES-128 key: 32 hex digits or 16 numbers 0-255 joined by '-'",
    )
    nrf24_channel: int = Field(default=76, ge=0, le=125, description="radio channel")
    nrf24_data_rate_kbps: Literal[250, 1000, 2000] = Field(default=250, description="air data rate")
    nrf24_crc_bits: Literal[8, 16] = Field(default=16, description="CRC length; must match the sensor")
    nrf24_address: int = Field(default=0xE056D446D0, description="pipe address the sensor writes to")
    nrf24_ce_pin: int = Field(default=22, description="GPIO of the CE pin")
    nrf24_csn: int = Field(default=0, description="SPI chip select: 0 for /dev/spidev0.0")
    nrf24_check_padding: bool = Field(default=True, description="refuse packets whose padding is not zero")
    nrf24_poll_seconds: float = Field(default=0.05, gt=0, description="how often the radio is checked")

    @field_validator("nrf24_data_rate_kbps", "nrf24_crc_bits", mode="before")
    @classmethod
    def _number_from_text(cls, value: object) -> object:
        # From the environment these come as text, which a Literal of ints does not convert by itself:
        # CW_NRF24_DATA_RATE_KBPS=1000 was refused ("Input should be 250, 1000 or 2000").
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @field_validator("nrf24_aes_key")
    @classmethod
    def _valid_key(cls, text: str) -> str:
        parse_key(text)
        return text

    @property
    def key(self) -> bytes:
        return parse_key(self.nrf24_aes_key)
