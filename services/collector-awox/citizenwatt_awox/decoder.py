"""The AWOX SMP-B16 frame format, pure: building commands, reassembling and checking answers.

Frame: 0x0F, length (payload + 1), payload, checksum ((sum(payload) + 1) & 0xFF), 0xFF 0xFF.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

START = 0x0F
END = b"\xff\xff"


def encode_command(payload: bytes) -> bytes:
    return bytes([START, len(payload) + 1, *payload, (sum(payload) + 1) & 0xFF]) + END


STATUS_REQUEST = encode_command(bytes.fromhex("04000000"))
SWITCH_ON = encode_command(bytes.fromhex("0300010000"))
SWITCH_OFF = encode_command(bytes.fromhex("0300000000"))


@dataclass(frozen=True)
class FrameRejected:
    reason: str


@dataclass(frozen=True)
class PlugStatus:
    relay_on: bool
    power_w: float
    voltage: int


def check_frame(frame: bytes) -> bytes | FrameRejected:
    """The payload of a complete frame, or why the frame is not one."""
    if len(frame) < 5 or frame[0] != START or not frame.endswith(END):
        return FrameRejected(f"not a frame: {frame.hex(' ')}")
    length = frame[1]
    if len(frame) != length + 4:
        return FrameRejected(f"length byte says {length + 4} bytes, got {len(frame)}")
    payload, checksum = frame[2 : 2 + length - 1], frame[2 + length - 1]
    if (sum(payload) + 1) & 0xFF != checksum:
        return FrameRejected(f"bad checksum {checksum:#04x} (expected {(sum(payload) + 1) & 0xFF:#04x})")
    return payload


def decode_status_frame(frame: bytes) -> PlugStatus | FrameRejected:
    """A status answer: ``0f 0f 04``, relay at offset 4, power (mW, big-endian) at 6, volts at 10."""
    payload = check_frame(frame)
    if isinstance(payload, FrameRejected):
        return payload
    if frame[1] != 0x0F or payload[0] != 0x04:
        return FrameRejected(f"not a status answer: {frame[:3].hex(' ')}")
    (milliwatts,) = struct.unpack(">I", frame[6:10])
    return PlugStatus(relay_on=bool(frame[4]), power_w=milliwatts / 1000, voltage=frame[10])


def is_switch_confirmation(frame: bytes) -> bool:
    return frame[:3] == b"\x0f\x04\x03" and not isinstance(check_frame(frame), FrameRejected)


class FrameAssembler:
    """Notifications may split a frame: a chunk starting with 0x0F starts one, FF FF ends it."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> bytes | None:
        if chunk[:1] == bytes([START]):
            self._buffer = bytearray(chunk)
        elif self._buffer:
            self._buffer += chunk
        else:
            return None  # the tail of a frame whose start we missed
        if self._buffer.endswith(END) and len(self._buffer) >= self._buffer[1] + 4:
            frame, self._buffer = bytes(self._buffer), bytearray()
            return frame
        return None
