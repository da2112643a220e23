"""``GET /api/v2/alerts``: each sensor's open alerts and standby baseline, as the aggregator found them.

The aggregator evaluates the rules (citizenwatt_common.alerts) and keeps the open alerts in the
database; this route reads them, so the page shows exactly what MQTT announced. Only the standby's
yearly cost is worked out here, at the all-day price of the tariff version in force today, so a
price or tariff changed in the settings shows at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from citizenwatt_common.alerts import all_day_price, yearly_cost
from citizenwatt_common.tariff_store import load_plan
from citizenwatt_common.tariffs import TariffError

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
    euros_per_kwh: float | None = Field(
        description="the all-day price the yearly costs use: today's tariff version, its prices weighted by"
        " their hours (Tempo: by 300 blue, 43 white and 22 red days a year)"
    )
    sensors: list[SensorAlerts]


@router.get("/alerts", response_model=AlertsReport)
def alerts(request: Request, user: User = Depends(current_user), conn: Conn = Depends(get_conn)) -> AlertsReport:
    today = datetime.now(request.app.state.settings.zone).date()
    try:
        price: float | None = all_day_price(load_plan(conn).on(today)[1])
    except TariffError:
        price = None  # the household has no tariff yet
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
