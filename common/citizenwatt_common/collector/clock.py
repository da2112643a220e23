"""A collector's clocks, and whether the kernel says the wall clock can be trusted.

A Raspberry Pi has no real-time clock: after a reboot its wall clock starts from the last saved
time (fake-hwclock) and may be an hour or more behind until NTP answers. The kernel knows: until a
time daemon (systemd-timesyncd, chrony, ntpd) has disciplined the clock, ``adjtimex(2)`` reports
``TIME_ERROR`` and the ``STA_UNSYNC`` status bit. Asking (``modes=0``) needs no privilege and works
inside a container, whose clock is the host kernel's.

This module is the hardware boundary of the clock: tests stand in for it (``Clock`` and
``ClockState``) to play a reboot with the clock behind, then NTP stepping it.
"""

from __future__ import annotations

import ctypes
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

# adjtimex(2): the return value when the clock is not synchronised, and the status bit saying so.
TIME_ERROR = 5
STA_UNSYNC = 0x0040
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class _Timex(ctypes.Structure):
    """``struct timex`` up to ``status``, then room for the rest: the kernel fills the whole struct."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        # constant .. tai and the kernel's 11 spare ints are under 200 bytes on any ABI: 512 is ample.
        ("rest", ctypes.c_char * 512),
    ]


_warned_unavailable = False
_adjtimex: Any = None  # libc's adjtimex, looked up once


def kernel_clock_synchronised() -> bool:
    """What the kernel says of the wall clock: synchronised by a time daemon (True) or not.

    Never raises. Where the kernel cannot be asked (no ``adjtimex``: not Linux) the clock is
    trusted, as before this check existed, and that is logged once.
    """
    global _warned_unavailable, _adjtimex
    timex = _Timex()  # modes = 0: read only
    try:
        if _adjtimex is None:
            # The C library the interpreter is linked with: ctypes.util.find_library would cost a
            # collector 1.7 MB of RSS (and run ldconfig) to find the same one.
            _adjtimex = ctypes.CDLL(None, use_errno=True).adjtimex
        state = int(_adjtimex(ctypes.byref(timex)))
    except (OSError, AttributeError, TypeError) as exc:
        state, problem = -1, str(exc)
    else:
        problem = f"errno {ctypes.get_errno()}"
    if state < 0:
        if not _warned_unavailable:
            log.warning("cannot ask the kernel whether the clock is synchronised (%s): trusting it", problem)
            _warned_unavailable = True
        return True
    return state != TIME_ERROR and not timex.status & STA_UNSYNC


class ClockState(Protocol):
    def synchronised(self) -> bool: ...


class KernelClockState:
    def synchronised(self) -> bool:
        return kernel_clock_synchronised()


@dataclass(frozen=True)
class Stamp:
    """When a reading was measured, by both clocks, and whether the wall clock was trusted then."""

    wall: float  # Unix time on the wall clock (right only if ``synchronised``)
    since_boot: float  # seconds since the machine booted: never jumps when the wall clock is set
    synchronised: bool


def _since_boot() -> float:
    # CLOCK_BOOTTIME, not time.monotonic(): it also counts time suspended, so a held reading's
    # distance to the moment of synchronisation stays right across a suspend (a laptop's).
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _read_boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text().strip() or None
    except OSError:
        return None


class Clock:
    """The wall clock, the clock since boot, the boot's identity and the kernel's word on the
    wall clock. A test subclasses it to move the wall clock and the boot as it likes."""

    def __init__(self, state: ClockState | None = None) -> None:
        self._state = state or KernelClockState()
        self.boot_id = _read_boot_id()

    def wall(self) -> float:
        return time.time()

    def since_boot(self) -> float:
        return _since_boot()

    def synchronised(self) -> bool:
        return self._state.synchronised()

    def stamp(self) -> Stamp:
        # The kernel is asked first: if it says synchronised, the wall time read after is right; if
        # not, the reading is held and re-stamped from ``since_boot``, right even if NTP stepped
        # the clock in between.
        synchronised = self.synchronised()
        return Stamp(wall=self.wall(), since_boot=self.since_boot(), synchronised=synchronised)
