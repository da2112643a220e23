"""``GET /api/v2/alerts``: each sensor's open alerts and standby baseline, as the aggregator found them.

The aggregator evaluates the rules (citizenwatt_common.alerts) and keeps the open alerts in the
database; this route reads them, so the page shows exactly what MQTT announced. Only the standby's
yearly cost is worked out here, at the current provider's price, so a price changed in the
settings shows at once.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from citizenwatt_common.alerts import all_day_price, yearly_cost
from citizenwatt_common.store import load_household

from . import queries
from .auth import User, current_user
from .db import get_conn

router = APIRouter(prefix="/api/v2", tags=["v2"])
Conn = psycopg.Connection[Any]


class AlertOut(BaseModel):
    kind: str = Field(description="silent, unusual or standby")
    since: float = Field(description="unix time it began")
    message: str = Field(description="in English, as published on MQTT")
    details: dict[str, Any] = Field(description="the figures behind it (see the README's Alerts section)")


class SensorAlerts(BaseModel):
    sensor: int
    key: str
    name: str
    active: list[AlertOut]
    standby_w: float | None = Field(description="lowest sustained power overnight (median of the last nights)")
    standby_nights: int = Field(description="nights it was found from")
    standby_euros_per_year: float | None = Field(description="standby_w around the clock for a year, priced")
    checked_at: float | None = Field(description="when the aggregator last worked out the standby baseline (hourly)")


class AlertsReport(BaseModel):
    euros_per_kwh: float | None = Field(description="the all-day price the yearly costs use (tariffs by their hours)")
    sensors: list[SensorAlerts]


@router.get("/alerts", response_model=AlertsReport)
def alerts(user: User = Depends(current_user), conn: Conn = Depends(get_conn)) -> AlertsReport:
    provider = queries.current_provider(conn)
    price = (
        None
        if provider is None
        else all_day_price(provider.day_slope, provider.night_slope, load_household(conn).night_window)
    )
    rows = conn.execute(
        """
        SELECT s.id, s.key, s.name, c.standby_w, coalesce(c.standby_nights, 0),
               extract(epoch FROM c.checked_at)::float8,
               coalesce((SELECT json_agg(json_build_object(
                            'kind', a.kind, 'since', extract(epoch FROM a.since)::float8,
                            'message', a.message, 'details', a.details) ORDER BY a.since)
                         FROM alerts a WHERE a.sensor_id = s.id AND a.cleared_at IS NULL), '[]'::json)
        FROM sensors s LEFT JOIN sensor_checks c ON c.sensor_id = s.id
        ORDER BY s.id
        """
    ).fetchall()
    return AlertsReport(
        euros_per_kwh=price,
        sensors=[
            SensorAlerts(
                sensor=r[0],
                key=r[1],
                name=r[2],
                standby_w=r[3],
                standby_nights=r[4],
                standby_euros_per_year=None if r[3] is None or price is None else yearly_cost(r[3], price),
                checked_at=r[5],
                active=[AlertOut.model_validate(a) for a in r[6]],
            )
            for r in rows
        ],
    )
