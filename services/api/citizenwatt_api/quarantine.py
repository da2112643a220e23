"""Readings kept aside for an impossible time (issue 14): listed to anyone, released or deleted by
the administrator.

The aggregator quarantines a reading stamped too far in the future, or whose clock went back
(citizenwatt_common/clock_check.py). Releasing one stores it as if it had just arrived, through
store_readings, so the rollups move by exactly its energy; deleting one forgets it.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from citizenwatt_common.clock_check import DEFAULT_MAX_FUTURE_SECONDS, future_reason
from citizenwatt_common.contract import Reading
from citizenwatt_common.store import load_household, store_readings

from .auth import ApiError, User, admin_allowed_to_change, current_user
from .db import get_conn
from .errors import ErrorCode

router = APIRouter(prefix="/api/v2", tags=["v2"])
Conn = psycopg.Connection[Any]


class QuarantinedReading(BaseModel):
    id: int
    sensor: int = Field(description="the sensor's id")
    sensor_key: str = Field(description="its MQTT id")
    sensor_name: str
    ts: float = Field(description="unix time the reading is stamped with (the suspect one)")
    power: float = Field(description="W")
    seq: int | None
    reason: str = Field(description="why it was kept aside, in English")
    received_at: float = Field(description="unix time the aggregator received it")


class QuarantineList(BaseModel):
    total: int = Field(description="how many readings are in quarantine (the list may show fewer)")
    readings: list[QuarantinedReading] = Field(description="the most recently received first")


class Released(BaseModel):
    id: int
    outcome: Literal["stored", "duplicate"] = Field(
        description="stored: now a reading like any other; duplicate: the very same reading was already stored"
    )


_COLUMNS = """q.id, q.sensor_id, s.key, s.name, extract(epoch FROM q.ts)::float8, q.power, q.seq, q.reason,
              extract(epoch FROM q.received_at)::float8"""


@router.get("/quarantine", response_model=QuarantineList)
def quarantine(
    limit: int = Query(1000, ge=1, le=10_000, description="at most this many, the most recently received"),
    user: User = Depends(current_user),
    conn: Conn = Depends(get_conn),
) -> QuarantineList:
    total = conn.execute("SELECT count(*) FROM quarantined_readings").fetchone()
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM quarantined_readings q JOIN sensors s ON s.id = q.sensor_id"
        " ORDER BY q.id DESC LIMIT %s",
        (limit,),
    ).fetchall()
    return QuarantineList(total=int(total[0]) if total else 0, readings=[_listed(row) for row in rows])


@router.post("/quarantine/{reading_id}/release", response_model=Released)
def release(
    request: Request, reading_id: int, user: User = Depends(admin_allowed_to_change), conn: Conn = Depends(get_conn)
) -> Released:
    """Store a quarantined reading into the readings (its energy counted from now on) and take it
    out of quarantine. Refused (409), the reading staying in quarantine, while it is still stamped
    in the future (stored, it would be the sensor's newest until then: what quarantine prevents),
    and when another reading of that sensor, with other values, is stored at the very same instant."""
    with conn.transaction():
        row = conn.execute(
            """
            SELECT s.key, s.kind, extract(epoch FROM q.ts)::float8, q.power, q.voltage, q.current, q.battery,
                   q.soc, q.energy, q.state, q.seq
            FROM quarantined_readings q JOIN sensors s ON s.id = q.sensor_id WHERE q.id = %s FOR UPDATE OF q
            """,
            (reading_id,),
        ).fetchone()
        if row is None:
            raise _unknown(reading_id)
        key, kind, ts, power, voltage, current, battery, soc, energy, state, seq = row
        if future_reason(ts, time.time(), DEFAULT_MAX_FUTURE_SECONDS) is not None:
            raise ApiError(
                409,
                f"Reading {reading_id} is still stamped in the future: release it once its time has come, or delete it",
                code=ErrorCode.QUARANTINE_IN_FUTURE,
                params={"id": reading_id},
            )
        reading = Reading(
            sensor=key,
            kind=kind,
            ts=ts,
            power=power,
            voltage=voltage,
            current=current,
            battery=battery,
            soc=soc,
            energy=energy,
            state=state,
            seq=seq,
        )
        household = load_household(conn, with_plan=True)
        stored = store_readings(conn, [reading], household, request.app.state.settings.zone)
        if stored.conflicts:  # raised inside the transaction: nothing is stored, nothing removed
            raise ApiError(
                409,
                f"Reading {reading_id} not released: another reading of its sensor, with other values,"
                " is stored at the same instant",
                code=ErrorCode.QUARANTINE_CONFLICT,
                params={"id": reading_id},
            )
        conn.execute("DELETE FROM quarantined_readings WHERE id = %s", (reading_id,))
    return Released(id=reading_id, outcome="stored" if stored.inserted else "duplicate")


@router.delete("/quarantine/{reading_id}", status_code=204)
def delete(reading_id: int, user: User = Depends(admin_allowed_to_change), conn: Conn = Depends(get_conn)) -> None:
    """Forget a quarantined reading for good."""
    if conn.execute("DELETE FROM quarantined_readings WHERE id = %s", (reading_id,)).rowcount == 0:
        raise _unknown(reading_id)


def _unknown(reading_id: int) -> ApiError:
    return ApiError(
        404,
        f"No quarantined reading {reading_id}",
        code=ErrorCode.UNKNOWN_QUARANTINED_READING,
        params={"id": reading_id},
    )


def _listed(row: tuple[Any, ...]) -> QuarantinedReading:
    reading_id, sensor, key, name, ts, power, seq, reason, received_at = row
    return QuarantinedReading(
        id=reading_id,
        sensor=sensor,
        sensor_key=key,
        sensor_name=name,
        ts=ts,
        power=power,
        seq=seq,
        reason=reason,
        received_at=received_at,
    )
