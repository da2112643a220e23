"""``/healthz``: can the api serve? Answered on the event loop, whatever else is running.

It asks the database ``SELECT 1`` on the api's dedicated connection (dedicated_db.py), not through
the pool nor a worker thread: heavy requests that hold both (up to limits.HEAVY_SLOTS of them, with
more queued) make the api slow for those, not unable to serve, and a health check that failed then
would have Docker mark the api unhealthy (and whatever watches that restart it, closing every open
page) for a load that passes by itself. So:

- 200 ``{"status": "ok"}`` while the database answers, with ``busy`` true when requests are
  waiting for a heavy-request slot or a pooled connection (for a person reading it, not a failure);
- 503 ``{"status": "unavailable"}`` when the database does not answer within HEALTH_TIMEOUT seconds.

``live_streams`` counts the open live pages (the hub's subscribers), ``live_polling`` says whether
the hub polls (only while one is open), ``live_broker`` whether it also takes readings from the
broker (null: not asked for; "connecting"; "subscribed").
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import FastAPI
from fastapi.responses import JSONResponse

HEALTH_TIMEOUT = 3.0


async def health(app: FastAPI) -> JSONResponse:
    try:
        await app.state.dedicated_db.fetch("SELECT 1", within=HEALTH_TIMEOUT)
    except TimeoutError:
        return JSONResponse({"status": "unavailable", "database": "no answer in time"}, status_code=503)
    except (psycopg.Error, OSError) as exc:
        return JSONResponse({"status": "unavailable", "database": str(exc)}, status_code=503)
    admission = app.state.admission
    pool_waiting = int(app.state.pool.get_stats().get("requests_waiting", 0))
    body: dict[str, Any] = {
        "status": "ok",
        "busy": admission.waiting > 0 or pool_waiting > 0,
        "heavy_running": admission.running,
        "heavy_waiting": admission.waiting,
        "pool_waiting": pool_waiting,
        "live_streams": app.state.live_hub.streams,
        "live_polling": app.state.live_hub.polling,
        "live_broker": app.state.live_hub.broker,
    }
    return JSONResponse(body)
