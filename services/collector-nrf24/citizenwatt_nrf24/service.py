"""Wiring: radio packets -> decoder -> replay guard -> published readings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from citizenwatt_common.collector import CollectorRuntime, DeviceUnavailable
from citizenwatt_common.contract import InvalidPayload, Nrf24Config

from .decoder import PacketRejected, ReplayGuard, decode_packet
from .settings import Nrf24Settings
from .transport import Radio, Rf24Radio

log = logging.getLogger(__name__)
# After this many undecodable packets in a row the key is most likely wrong: say so, go offline.
WRONG_KEY_STREAK = 5


class ConfigMailbox:
    """The newest radio configuration from the web page, handed from paho's thread to the radio loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Nrf24Config | None = None

    def deliver(self, payload: bytes) -> None:
        try:
            config = Nrf24Config.from_payload(payload)
        except InvalidPayload as exc:
            log.error("ignoring a radio configuration that does not validate: %s", exc)
            return
        with self._lock:
            self._pending = config

    def take(self) -> Nrf24Config | None:
        with self._lock:
            config, self._pending = self._pending, None
            return config


def receive_packets(runtime: CollectorRuntime, open_radio: Callable[[Nrf24Settings], Radio] = Rf24Radio) -> None:
    settings = runtime.settings
    assert isinstance(settings, Nrf24Settings)
    mailbox = ConfigMailbox()
    runtime.publisher.subscribe(runtime.publisher.topics.config(settings.sensor_id), mailbox.deliver)
    key, guard, radio, bad_streak = settings.key, ReplayGuard(), None, 0
    while not runtime.stop_event.is_set():
        config = mailbox.take()
        if config is not None:
            log.info("radio settings from the web page: address 0x%010X, new AES key", config.address)
            if config.address != settings.nrf24_address:
                radio = None  # reopen the pipe on the new address
            settings = settings.replace(nrf24_aes_key=config.aes_key, nrf24_address=config.address)
            key = config.key  # a wrong-key outage ends with the first packet that decodes
        if radio is None:
            try:
                radio = open_radio(settings)
            except DeviceUnavailable as exc:
                runtime.device_failed(exc)
                continue
            runtime.device_ok()
        try:
            block = radio.receive()
        except OSError as exc:
            radio = None
            runtime.device_failed(DeviceUnavailable(f"nRF24L01+ stopped answering: {exc}"))
            continue
        if block is None:
            runtime.stop_event.wait(settings.nrf24_poll_seconds)  # the radio has nothing: look again soon
            continue
        received_at = runtime.now()
        packet = decode_packet(block, key, settings.nrf24_check_padding)
        if isinstance(packet, PacketRejected):
            bad_streak += 1
            log.warning("nRF24 packet refused: %s", packet.reason)
            if bad_streak == WRONG_KEY_STREAK:
                runtime.device_failed(
                    DeviceUnavailable(
                        f"{bad_streak} packets in a row do not decode: check CW_NRF24_AES_KEY against the sensor's key"
                    )
                )
            continue
        replay = guard.accept(packet)
        if replay is not None:
            log.warning("nRF24 packet refused: %s", replay.reason)
            continue
        if bad_streak >= WRONG_KEY_STREAK:
            runtime.device_ok()
        bad_streak = 0
        runtime.publish(
            runtime.reading(
                float(packet.power), at=received_at, voltage=float(packet.voltage), battery=packet.battery_mv / 1000
            )
        )
