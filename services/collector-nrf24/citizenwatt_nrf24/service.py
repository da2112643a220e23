"""Wiring: radio packets -> decoder -> replay guard -> published readings."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from citizenwatt_common.collector import CollectorRuntime, DeviceUnavailable

from .decoder import PacketRejected, ReplayGuard, decode_packet
from .settings import Nrf24Settings
from .transport import Radio, Rf24Radio

log = logging.getLogger(__name__)
# After this many undecodable packets in a row the key is most likely wrong: say so, go offline.
WRONG_KEY_STREAK = 5


def receive_packets(runtime: CollectorRuntime, open_radio: Callable[[Nrf24Settings], Radio] = Rf24Radio) -> None:
    settings = runtime.settings
    assert isinstance(settings, Nrf24Settings)
    key, guard, radio, bad_streak = settings.key, ReplayGuard(), None, 0
    while not runtime.stop_event.is_set():
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
        received_at = time.time()
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
                float(packet.power), ts=received_at, voltage=float(packet.voltage), battery=packet.battery_mv / 1000
            )
        )
