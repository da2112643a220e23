"""The radio: pyrf24 on the Pi's SPI bus. Only this module touches hardware; tests replace it."""

from __future__ import annotations

from typing import Protocol

from citizenwatt_common.collector import DeviceUnavailable

from .settings import Nrf24Settings


class Radio(Protocol):
    def receive(self) -> bytes | None:
        """One 16-byte payload if one arrived, else None (never blocks for long)."""


class Rf24Radio:
    def __init__(self, settings: Nrf24Settings) -> None:
        try:
            import pyrf24  # the RF24 C++ library's binding; installed on the Pi only
        except ImportError as exc:
            raise DeviceUnavailable(f"pyrf24 is not installed ({exc}): this collector runs on a Raspberry Pi") from exc
        self._lib = pyrf24
        self._radio = pyrf24.RF24(settings.nrf24_ce_pin, settings.nrf24_csn)
        where = f"nRF24L01+ on /dev/spidev0.{settings.nrf24_csn} (CE GPIO{settings.nrf24_ce_pin})"
        try:
            started = self._radio.begin()
        except (OSError, RuntimeError) as exc:
            raise DeviceUnavailable(f"{where}: {exc}; is SPI enabled (raspi-config) and the device passed in?") from exc
        if not started or not self._radio.isChipConnected():
            raise DeviceUnavailable(f"{where} does not answer: check the wiring (VCC on 3.3 V) and SPI")
        rates = {250: pyrf24.RF24_250KBPS, 1000: pyrf24.RF24_1MBPS, 2000: pyrf24.RF24_2MBPS}
        crcs = {8: pyrf24.RF24_CRC_8, 16: pyrf24.RF24_CRC_16}
        self._radio.setChannel(settings.nrf24_channel)
        self._radio.setDataRate(rates[settings.nrf24_data_rate_kbps])
        self._radio.setCRCLength(crcs[settings.nrf24_crc_bits])
        self._radio.setPayloadSize(16)
        self._radio.setAutoAck(True)
        self._radio.openReadingPipe(1, settings.nrf24_address)
        self._radio.startListening()

    def receive(self) -> bytes | None:
        if not self._radio.available():
            return None
        return bytes(self._radio.read(16))
