"""The alert watcher: the rules of ``citizenwatt_common.alerts`` on a timer, stored and published.

It runs in a thread of its own with its own database connection, so the ingest loop never waits
for it and its acknowledge-after-commit rule is untouched. Each check reads only small things:
the sensors table, the 15-minute rollups of two hours and of the same hours in past weeks, the
nights' rollups once an hour, and a sensor's last readings only once it has been quiet for longer
than the minimum silence. Open alerts live in the ``alerts`` table, so a restarted aggregator
neither announces an alert twice nor forgets to announce its end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
import psycopg

from citizenwatt_common.alerts import (
    Finding,
    Quarter,
    Standby,
    all_day_price,
    hour_energy,
    local_hour_start,
    night_windows,
    same_hour_weeks_before,
    silent,
    standby_baseline,
    standby_finding,
    typical_period,
    unusual_hour,
    yearly_cost,
)
from citizenwatt_common.backoff import Backoff
from citizenwatt_common.contract import SCHEMA_VERSION, Topics
from citizenwatt_common.energy import ROLLUP_SECONDS
from citizenwatt_common.tariff_store import load_plan
from citizenwatt_common.tariffs import TariffError

from .settings import AggregatorSettings

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
_ALERTS_LOCK: Final = 0x43570002  # pg_advisory_xact_lock key: one writer of the alerts table at a time
_PERIOD_READINGS: Final = 21  # the latest readings a sensor's period is the median spacing of
_STANDBY_REFRESH_SECONDS: Final = 3600  # late readings of a night may still arrive after it


@dataclass(frozen=True)
class OpenAlert:
    kind: str
    since: float
    message: str
    details: dict[str, Any]


@dataclass
class SensorReport:
    sensor_id: int
    key: str
    findings: list[Finding]
    standby: Standby | None
    euros_per_year: float | None
    standby_computed: bool = False  # the baseline was worked out now, not taken from the memo
    active: list[OpenAlert] = field(default_factory=list)  # as stored: ``since`` kept from the raise


@dataclass(frozen=True)
class Change:
    key: str
    event: str  # "raised" or "cleared"
    alert: OpenAlert
    at: float


@dataclass
class Memo:
    """What a check may reuse from the previous ones: a silent sensor's period (its readings do not
    change while it is silent) and each sensor's standby baseline (recomputed hourly)."""

    periods: dict[int, tuple[float, float | None]] = field(default_factory=dict)  # id -> (last_seen, period)
    standby: dict[int, tuple[tuple[float, int], Standby | None]] = field(default_factory=dict)


def evaluate(conn: Conn, settings: AggregatorSettings, now: float, memo: Memo | None = None) -> list[SensorReport]:
    """Every sensor's findings at ``now``, from the database as it is."""
    memo = memo or Memo()
    zone = settings.zone
    sensors = [
        (int(r[0]), str(r[1]), None if r[2] is None else float(r[2]))
        for r in conn.execute("SELECT id, key, extract(epoch FROM last_seen)::float8 FROM sensors ORDER BY id")
    ]
    if not sensors:
        return []
    price = _all_day_price(conn, zone, now)
    hours = _unusual_hours(conn, settings, zone, now, [sid for sid, _, _ in sensors])
    reports = []
    for sensor_id, key, last_seen in sensors:
        findings: list[Finding] = []
        # Silence within the minimum is never an alert: no need to know the period then.
        if last_seen is not None and now - last_seen > settings.alert_silent_min_seconds:
            known = memo.periods.get(sensor_id)
            if known is None or known[0] != last_seen:
                known = memo.periods[sensor_id] = (last_seen, _period(conn, sensor_id, last_seen))
            found = silent(
                last_seen,
                known[1],
                now,
                zone,
                factor=settings.alert_silent_factor,
                min_seconds=settings.alert_silent_min_seconds,
                forget_seconds=settings.alert_silent_forget_days * 86400,
            )
            if found is not None:
                findings.append(found)
        unusual = hours.get(sensor_id)
        if unusual is not None:
            findings.append(unusual)
        before = memo.standby.get(sensor_id)
        standby = _standby(conn, settings, zone, now, sensor_id, memo.standby)
        fresh = memo.standby[sensor_id] is not before  # _standby memoises a new entry when it works one out
        euros = None if standby is None or price is None else yearly_cost(standby.watts, price)
        high = standby_finding(standby, settings.alert_standby_watts, euros)
        if high is not None:
            findings.append(high)
        reports.append(SensorReport(sensor_id, key, findings, standby, euros, fresh))
    return reports


def _all_day_price(conn: Conn, zone: ZoneInfo, now: float) -> float | None:
    # The tariff version the household is on today: the one /api/v2/costs prices today with.
    try:
        _, version = load_plan(conn).on(datetime.fromtimestamp(now, zone).date())
    except TariffError:
        return None  # no tariff chosen (a database from before migration 7's rows)
    return all_day_price(version)


def _period(conn: Conn, sensor_id: int, last_seen: float) -> float | None:
    rows = conn.execute(
        "SELECT extract(epoch FROM ts)::float8 FROM readings WHERE sensor_id = %s"
        " AND ts >= to_timestamp(%s) AND ts <= to_timestamp(%s) ORDER BY ts DESC LIMIT %s",
        # Bounded in time so TimescaleDB opens only the newest chunk.
        (sensor_id, last_seen - 86400, last_seen + 1, _PERIOD_READINGS),
    ).fetchall()
    return typical_period(float(r[0]) for r in rows)


def _quarters(conn: Conn, sensor_ids: Sequence[int], starts: Sequence[float]) -> dict[int, dict[float, Quarter]]:
    rows = conn.execute(
        "SELECT sensor_id, extract(epoch FROM bucket)::float8, day_wh + night_wh, day_seconds + night_seconds"
        " FROM energy_rollups WHERE sensor_id = ANY(%s) AND bucket = ANY(%s)",
        (list(sensor_ids), [datetime.fromtimestamp(s, UTC) for s in starts]),
    ).fetchall()
    found: dict[int, dict[float, Quarter]] = {}
    for sensor_id, start, wh, seconds in rows:
        found.setdefault(int(sensor_id), {})[float(start)] = Quarter(float(start), float(wh), float(seconds))
    return found


def _unusual_hours(
    conn: Conn, settings: AggregatorSettings, zone: ZoneInfo, now: float, sensor_ids: Sequence[int]
) -> dict[int, Finding]:
    """The current hour so far, else the last whole hour, when above the usual for its weekday and hour.

    The hour just ended is looked at too so an alert lasts while it is deserved: without it, a
    heater left on would be announced at 14:40, cleared at 15:00 (a new hour starts empty) and
    announced again at 15:40.
    """
    current = local_hour_start(now, zone)
    previous = local_hour_start(current - 1, zone)
    history = {h: same_hour_weeks_before(h, zone, settings.alert_unusual_weeks) for h in (current, previous)}
    starts = [
        hour + i * ROLLUP_SECONDS
        for h, past in history.items()
        for hour in (h, *past)
        for i in range(3600 // ROLLUP_SECONDS)
    ]
    quarters = _quarters(conn, sensor_ids, starts)
    found = {}
    for sensor_id in sensor_ids:
        mine = quarters.get(sensor_id, {})
        for hour in (current, previous):
            finding = unusual_hour(
                hour,
                hour_energy(mine, hour, complete=False) or 0.0,
                [hour_energy(mine, past, complete=True) for past in history[hour]],
                zone,
                factor=settings.alert_unusual_factor,
                margin_wh=settings.alert_unusual_margin_wh,
                min_weeks=settings.alert_unusual_min_weeks,
            )
            if finding is not None:
                found[sensor_id] = finding
                break
    return found


def _standby(
    conn: Conn,
    settings: AggregatorSettings,
    zone: ZoneInfo,
    now: float,
    sensor_id: int,
    cache: dict[int, tuple[tuple[float, int], Standby | None]],
) -> Standby | None:
    windows = night_windows(
        now, zone, settings.alert_night_start_hour, settings.alert_night_end_hour, settings.alert_standby_nights
    )
    # The nights change once a day; recomputed hourly anyway for readings that arrive late.
    key = (windows[-1][1], int(now // _STANDBY_REFRESH_SECONDS))
    if sensor_id in cache and cache[sensor_id][0] == key:
        return cache[sensor_id][1]
    rows = conn.execute(
        "SELECT extract(epoch FROM bucket)::float8, day_wh + night_wh, day_seconds + night_seconds"
        " FROM energy_rollups WHERE sensor_id = %s AND bucket >= to_timestamp(%s) AND bucket < to_timestamp(%s)",
        (sensor_id, windows[0][0], windows[-1][1]),
    ).fetchall()
    quarters = [Quarter(float(r[0]), float(r[1]), float(r[2])) for r in rows]
    standby = standby_baseline(quarters, windows, settings.alert_standby_sustain_minutes * 60 // ROLLUP_SECONDS)
    cache[sensor_id] = (key, standby)
    return standby


def persist(conn: Conn, reports: Sequence[SensorReport], now: float) -> list[Change]:
    """Open the alerts newly found, close those no longer found, keep the rest (with their first
    ``since`` and the latest figures); fill each report's ``active``. One transaction."""
    changes: list[Change] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ALERTS_LOCK,))
        open_rows: dict[tuple[int, str], OpenAlert] = {
            (int(r[0]), str(r[1])): OpenAlert(str(r[1]), float(r[2]), str(r[3]), dict(r[4]))
            for r in conn.execute(
                "SELECT sensor_id, kind, extract(epoch FROM since)::float8, message, details"
                " FROM alerts WHERE cleared_at IS NULL"
            )
        }
        for report in reports:
            for finding in report.findings:
                details = _plain(finding.details)
                previous = open_rows.pop((report.sensor_id, finding.kind), None)
                if previous is None:
                    alert = OpenAlert(finding.kind, finding.since or now, finding.message, details)
                    conn.execute(
                        "INSERT INTO alerts (sensor_id, kind, since, message, details)"
                        " VALUES (%s, %s, to_timestamp(%s), %s, %s::jsonb)",
                        (report.sensor_id, alert.kind, alert.since, alert.message, json.dumps(details)),
                    )
                    changes.append(Change(report.key, "raised", alert, now))
                else:
                    alert = OpenAlert(finding.kind, previous.since, finding.message, details)
                    if (alert.message, alert.details) != (previous.message, previous.details):
                        conn.execute(
                            "UPDATE alerts SET message = %s, details = %s::jsonb"
                            " WHERE sensor_id = %s AND kind = %s AND cleared_at IS NULL",
                            (alert.message, json.dumps(details), report.sensor_id, alert.kind),
                        )
                report.active.append(alert)
            if not report.standby_computed:
                # Only when worked out (hourly): a check that changes nothing writes nothing, so
                # it costs no commit (no WAL write and sync on the SD card) in the steady state.
                continue
            conn.execute(
                "INSERT INTO sensor_checks (sensor_id, checked_at, standby_w, standby_nights)"
                " VALUES (%s, to_timestamp(%s), %s, %s) ON CONFLICT (sensor_id) DO UPDATE SET"
                " checked_at = excluded.checked_at, standby_w = excluded.standby_w,"
                " standby_nights = excluded.standby_nights",
                (
                    report.sensor_id,
                    now,
                    None if report.standby is None else report.standby.watts,
                    0 if report.standby is None else report.standby.nights,
                ),
            )
        keys = {report.sensor_id: report.key for report in reports}
        for (sensor_id, kind), alert in open_rows.items():
            conn.execute(
                "UPDATE alerts SET cleared_at = to_timestamp(%s) WHERE sensor_id = %s AND kind = %s"
                " AND cleared_at IS NULL",
                (now, sensor_id, kind),
            )
            if sensor_id in keys:
                changes.append(Change(keys[sensor_id], "cleared", alert, now))
    return changes


def _plain(details: Any) -> dict[str, Any]:
    """Details as JSON gives them back (rounded: the stored copy compares equal to a fresh one)."""
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in dict(details).items()}


def alert_payload(report: SensorReport) -> dict[str, Any]:
    """The retained ``<base>/<sensor>/alert`` message (schema in the README's MQTT contract)."""
    return {
        "v": SCHEMA_VERSION,
        "sensor": report.key,
        "active": [
            {"kind": a.kind, "since": round(a.since, 3), "message": a.message, **a.details} for a in report.active
        ],
        "standby_w": None if report.standby is None else round(report.standby.watts, 1),
        "standby_nights": 0 if report.standby is None else report.standby.nights,
        "standby_euros_per_year": None if report.euros_per_year is None else round(report.euros_per_year, 2),
    }


def event_payload(change: Change) -> dict[str, Any]:
    alert = change.alert
    return {
        "v": SCHEMA_VERSION,
        "sensor": change.key,
        "event": change.event,
        "kind": alert.kind,
        "since": round(alert.since, 3),
        "at": round(change.at, 3),
        "message": alert.message,
        **alert.details,
    }


class AlertWatcher:
    """Checks every ``CW_ALERT_INTERVAL_SECONDS`` in a daemon thread; publishes through the
    aggregator's MQTT client (paho's publish is thread-safe)."""

    def __init__(
        self,
        settings: AggregatorSettings,
        client: paho.Client,
        topics: Topics,
        generation: Callable[[], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._client = client
        self._topics = topics
        self._generation = generation  # the aggregator's MQTT connection count
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Conn | None = None
        self._memo = Memo()
        self._published: dict[str, str] = {}  # retained payload last sent per sensor
        self._published_generation = -1

    def start(self) -> None:
        if self.settings.alert_interval_seconds <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._drop_connection()

    def _run(self) -> None:
        backoff = Backoff(1.0, 60.0)
        delay = 0.0  # a first check at once: the retained states after a restart
        failing = False
        while not self._stop.wait(delay):
            try:
                self.check()
            except psycopg.Error as exc:
                if not failing:
                    log.warning("alerts not checked (will retry): %s", str(exc).strip())
                failing = True
                self._drop_connection()
                delay = backoff.next_delay()
                continue
            except Exception:
                # A fault in the rules must not end alerting for good (nor touch ingest): say it
                # loudly, once, and try again at the next interval.
                if not failing:
                    log.exception("alerts not checked (will retry)")
                failing = True
                delay = self.settings.alert_interval_seconds
                continue
            if failing:
                log.info("alerts checked again")
            failing = False
            backoff = Backoff(1.0, 60.0)
            delay = self.settings.alert_interval_seconds
            # The connection stays open between checks. Closed and reopened each minute it saved
            # an idle PostgreSQL backend (12 to 20 MB of RSS, 2 to 5 MB of it its own), but a new
            # backend rewrites the relation cache files (about 160 KB) whenever the catalogs
            # changed since the last one started, which autovacuum's statistics make frequent:
            # measured by bench/sdcard.py at 3.2 KB of SD card writes per stored reading, more
            # than the readings themselves. The card wears out; the memory comes back.

    def check(self) -> list[SensorReport]:
        """One evaluation: store the changes, then publish states and events. Returns the reports."""
        conn = self._connection()
        now = self._clock()
        reports = evaluate(conn, self.settings, now, self._memo)
        changes = persist(conn, reports, now)
        self._publish(reports, changes)
        return reports

    def _publish(self, reports: Sequence[SensorReport], changes: Sequence[Change]) -> None:
        generation = self._generation()
        if generation != self._published_generation:
            # A new broker connection: the broker may have lost retained messages (a crash before
            # its snapshot), so every state goes out again. (Home Assistant discovery of the alert
            # entities goes out with each sensor's other entities: discovery.py.)
            self._published = {}
            self._published_generation = generation
        for report in reports:
            payload = json.dumps(alert_payload(report))
            if self._published.get(report.key) == payload:
                continue
            info = self._client.publish(self._topics.alert(report.key), payload, qos=1, retain=True)
            if info.rc == paho.MQTT_ERR_SUCCESS:
                self._published[report.key] = payload
        for change in changes:
            log.info("alert %s for %s: %s", change.event, change.key, change.alert.message)
            self._client.publish(self._topics.alert_event(change.key), json.dumps(event_payload(change)), qos=1)

    def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.settings.database_url, autocommit=True, connect_timeout=10)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None
