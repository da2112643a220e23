"""Pure decoding of the CitizenWatt sensor's 16-byte radio packets: no radio, no I/O.

The sensor sends one AES-128-ECB block; decrypted, it is little-endian (AVR ints are 16 bits):
int16 power W, int16 voltage V, int16 battery mV, uint32 uptime ms, int32 + int16 padding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from citizenwatt_common.contract import parse_aes_key

from .aes import decrypt_block

PACKET_BYTES = 16
_LAYOUT = struct.Struct("<hhhIih")
_UPTIME_WRAP = 2**32
# An uptime this small means the sensor has just booted, so going backwards is a reboot, not a replay.
REBOOT_UPTIME_MS = 120_000
# Within this distance of the 32-bit wrap (~49.7 days), a small uptime is the counter wrapping.
WRAP_MARGIN_MS = 3_600_000


@dataclass(frozen=True)
class SensorPacket:
    power: int  # W
    voltage: int  # V, the sensor's configured nominal voltage
    battery_mv: int
    uptime_ms: int


@dataclass(frozen=True)
class PacketRejected:
    reason: str


parse_key = parse_aes_key  # the key format belongs to the MQTT contract (the api validates it too)
__all__ = ["PacketRejected", "ReplayGuard", "SensorPacket", "decode_packet", "decrypt_block", "parse_key"]


def decode_packet(block: bytes, key: bytes, check_padding: bool = True) -> SensorPacket | PacketRejected:
    """Decrypt and validate one packet. A wrong key yields random plaintext, which these checks refuse."""
    if len(block) != PACKET_BYTES:
        return PacketRejected(f"packet of {len(block)} bytes, expected {PACKET_BYTES}")
    power, voltage, battery, uptime, pad_a, pad_b = _LAYOUT.unpack(decrypt_block(block, key))
    if check_padding and (pad_a, pad_b) != (0, 0):
        return PacketRejected("padding bytes are not zero: wrong AES key, or garbage")
    if not 0 <= power <= 30_000:
        return PacketRejected(f"power {power} W out of range 0..30000: wrong AES key, or garbage")
    if not 50 <= voltage <= 300:
        return PacketRejected(f"voltage {voltage} V out of range 50..300: wrong AES key, or garbage")
    if not 1_500 <= battery <= 6_000:
        return PacketRejected(f"battery {battery} mV out of range 1500..6000: wrong AES key, or garbage")
    return SensorPacket(power, voltage, battery, uptime)


class ReplayGuard:
    """Refuses packets whose uptime does not move forward, except a reboot or the 32-bit wrap."""

    def __init__(self) -> None:
        self.last_uptime_ms: int | None = None

    def accept(self, packet: SensorPacket) -> PacketRejected | None:
        last = self.last_uptime_ms
        uptime = packet.uptime_ms
        if last is None or uptime > last:
            self.last_uptime_ms = uptime
            return None
        if uptime < REBOOT_UPTIME_MS and last >= REBOOT_UPTIME_MS:
            self.last_uptime_ms = uptime  # the sensor rebooted: start over from its new counter
            return None
        if last > _UPTIME_WRAP - WRAP_MARGIN_MS and uptime < WRAP_MARGIN_MS:
            self.last_uptime_ms = uptime
            return None
        return PacketRejected(f"uptime {uptime} ms not after {last} ms: a replayed or duplicated packet")
