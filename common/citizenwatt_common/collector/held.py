"""Readings measured while the wall clock is not synchronised: held in the outbox, then re-stamped.

A held reading is kept in the outbox like any other, as its JSON with one more field in front,
``"held": {"boot": <boot id>, "at": <seconds since boot>, "wall": <wall clock then>}``, and the
mark ``"clock": "unsynced"``. That JSON is still a valid reading: an older version finding it in
the outbox would publish it, marked, and the aggregator ignores the unknown ``held``.

When the kernel says the clock is synchronised, a held reading measured ``d`` seconds before
(by the clock since boot, which no clock setting moves) gets ``ts = wall clock now - d`` and loses
the mark: the wall-clock time it was really measured at. A reading whose boot is not this one
cannot be re-stamped (the clock since boot restarted) and, like every held reading once the wait
is over, is released as measured: its ``ts`` from the wall clock then, with the mark.

A released reading replaces its held record in the outbox (same seq) before it is sent, synced,
so a restart never sends it again with a different ``ts`` (a second row: ``(sensor, ts)`` is the
key). On reading the outbox back, a held record never replaces the released one of its seq.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from ..contract import CLOCK_UNSYNCED

log = logging.getLogger(__name__)

_PREFIX = b'{"held":'


def is_held(payload: bytes) -> bool:
    return payload.startswith(_PREFIX)


@dataclass(frozen=True)
class Held:
    boot: str | None
    at: float  # seconds since boot when measured
    wall: float  # the wall clock then
    fields: dict[str, Any]  # the reading's own fields, ts as the wall clock gave it, marked

    def payload(self) -> bytes:
        held = {"held": {"boot": self.boot, "at": self.at, "wall": self.wall}}
        return json.dumps({**held, **self.fields}, separators=(",", ":")).encode()

    @classmethod
    def from_payload(cls, payload: bytes) -> Held | None:
        """None if the record is not a well-formed held reading: then it is sent as it is (and the
        aggregator keeps it as rejected if it is no reading either)."""
        try:
            values = json.loads(payload)
            held = values.pop("held")
            return cls(boot=held["boot"], at=float(held["at"]), wall=float(held["wall"]), fields=values)
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("an outbox record that looks held is not: sent as it is")
            return None

    def restamped(self, wall_now: float, since_boot_now: float) -> bytes:
        """The payload to publish, measured ``since_boot_now - at`` seconds before ``wall_now`` (a
        synchronised wall clock). A ``ts`` the collector gave itself (not the stamp's wall time,
        e.g. the simulator's backfill) moves by the same correction."""
        corrected = wall_now - (since_boot_now - self.at)
        fields = {name: value for name, value in self.fields.items() if name != "clock"}
        fields["ts"] = round(fields["ts"] - self.wall + corrected, 6)
        return json.dumps(fields, separators=(",", ":")).encode()

    def as_measured(self) -> bytes:
        """The payload to publish when it cannot be re-stamped: ts as measured, marked."""
        return json.dumps({**self.fields, "clock": CLOCK_UNSYNCED}, separators=(",", ":")).encode()
