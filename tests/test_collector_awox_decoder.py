"""AWOX SMP-B16 frames, checked against the frames the plug is known to accept and bytes built by hand."""

from __future__ import annotations

from citizenwatt_awox.decoder import (
    STATUS_REQUEST,
    SWITCH_OFF,
    SWITCH_ON,
    FrameAssembler,
    FrameRejected,
    PlugStatus,
    decode_status_frame,
    is_switch_confirmation,
)

# Status answer built by hand: payload 04 00 | relay 01 | unused 00 | 00 01 e2 40 (123456 mW) | e6 (230 V)
# | five zero bytes; checksum (4 + 1 + 1 + 0xe2 + 0x40 + 0xe6 + 1) & 0xff = 527 & 0xff = 0x0f.
STATUS = bytes.fromhex("0f0f 0400 0100 0001e240 e6 0000000000 0f ffff".replace(" ", ""))


def test_command_frames_are_the_known_ones() -> None:
    assert bytes.fromhex("0f 05 04 00 00 00 05 ff ff") == STATUS_REQUEST
    assert bytes.fromhex("0f 06 03 00 01 00 00 05 ff ff") == SWITCH_ON
    assert bytes.fromhex("0f 06 03 00 00 00 00 04 ff ff") == SWITCH_OFF


def test_a_status_answer_decodes() -> None:
    assert decode_status_frame(STATUS) == PlugStatus(relay_on=True, power_w=123.456, voltage=230)


def test_a_bad_checksum_is_refused() -> None:
    corrupted = STATUS[:-3] + b"\x10" + STATUS[-2:]
    result = decode_status_frame(corrupted)
    assert isinstance(result, FrameRejected) and "checksum" in result.reason


def test_a_status_answer_split_over_two_notifications() -> None:
    assembler = FrameAssembler()
    assert assembler.feed(STATUS[:9]) is None
    assert assembler.feed(STATUS[9:]) == STATUS
    assert assembler.feed(b"\x00\x01ff") is None  # a tail without its start is ignored
    # A new start drops a half frame.
    assert assembler.feed(STATUS[:5]) is None
    assert assembler.feed(STATUS) == STATUS


def test_switch_confirmation() -> None:
    # 0f 04 03 00 00 checksum (3 + 0 + 0 + 1) = 04, ff ff
    assert is_switch_confirmation(bytes.fromhex("0f04030000 04ffff".replace(" ", "")))
    assert not is_switch_confirmation(bytes.fromhex("0f04030000 05ffff".replace(" ", "")))
