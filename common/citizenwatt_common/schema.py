"""The database schema, created and migrated idempotently by whichever service starts first.

Migrations only ever get appended. They run in one transaction under an advisory lock, so the
aggregator and the api starting together cannot race.
"""

from __future__ import annotations

import logging
from typing import Final

import psycopg

log = logging.getLogger(__name__)

_MIGRATION_LOCK: Final = 0x43570001  # arbitrary, constant: "CW" + 1

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: the core tables.
    """
    CREATE TABLE measure_types (
        id smallint PRIMARY KEY,
        name text NOT NULL UNIQUE
    );
    INSERT INTO measure_types (id, name) VALUES (1, 'electricity');

    CREATE TABLE sensors (
        id serial PRIMARY KEY,
        key text NOT NULL UNIQUE,          -- the MQTT <sensor_id>
        name text NOT NULL,
        kind text NOT NULL,
        type_id smallint NOT NULL DEFAULT 1 REFERENCES measure_types (id),
        created_at timestamptz NOT NULL DEFAULT now(),
        last_seen timestamptz,
        energy_total_wh double precision NOT NULL DEFAULT 0,  -- exact sum of its rollups
        meter_wh double precision NOT NULL DEFAULT 0          -- never decreases (for dashboards)
    );

    CREATE SEQUENCE readings_id_seq AS bigint;
    CREATE TABLE readings (
        id bigint NOT NULL DEFAULT nextval('readings_id_seq'),  -- the legacy API's measure id
        sensor_id integer NOT NULL REFERENCES sensors (id),
        ts timestamptz NOT NULL,
        power double precision NOT NULL,
        night_rate boolean NOT NULL,
        voltage double precision,
        current double precision,
        battery double precision,
        soc double precision,
        energy double precision,
        state boolean,
        seq bigint,
        received_at timestamptz NOT NULL DEFAULT now(),
        -- (sensor, ts) identifies a reading: a redelivered message cannot make a second row.
        PRIMARY KEY (sensor_id, ts)
    );
    ALTER SEQUENCE readings_id_seq OWNED BY readings.id;
    CREATE INDEX readings_sensor_id_idx ON readings (sensor_id, id);

    -- Energy per sensor per 15-minute bucket, kept exact by the writers (see store.py).
    CREATE TABLE energy_rollups (
        sensor_id integer NOT NULL REFERENCES sensors (id),
        bucket timestamptz NOT NULL,
        day_wh double precision NOT NULL DEFAULT 0,
        night_wh double precision NOT NULL DEFAULT 0,
        day_seconds double precision NOT NULL DEFAULT 0,
        night_seconds double precision NOT NULL DEFAULT 0,
        PRIMARY KEY (sensor_id, bucket)
    );

    CREATE TABLE rejected_messages (
        id bigserial PRIMARY KEY,
        received_at timestamptz NOT NULL DEFAULT now(),
        topic text NOT NULL,
        payload bytea NOT NULL,
        reason text NOT NULL
    );
    CREATE INDEX rejected_messages_received_at_idx ON rejected_messages (received_at);

    CREATE TABLE energy_providers (
        id serial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        type_id smallint NOT NULL DEFAULT 1 REFERENCES measure_types (id),
        day_slope_watt_euros double precision NOT NULL,      -- EUR per kWh
        day_constant_watt_euros double precision NOT NULL,   -- subscription, EUR per month
        night_slope_watt_euros double precision NOT NULL,
        night_constant_watt_euros double precision NOT NULL,
        threshold double precision NOT NULL DEFAULT 0         -- W, a line on the live graph
    );

    -- One row: the household's settings that every service must agree on.
    CREATE TABLE household (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        provider_id integer REFERENCES energy_providers (id),
        night_start_minute smallint CHECK (night_start_minute BETWEEN 0 AND 1439),
        night_end_minute smallint CHECK (night_end_minute BETWEEN 0 AND 1439),
        max_gap_seconds double precision NOT NULL CHECK (max_gap_seconds > 0),
        CHECK ((night_start_minute IS NULL) = (night_end_minute IS NULL))
    );

    CREATE TABLE users (
        id serial PRIMARY KEY,
        login text NOT NULL UNIQUE,
        password_hash text NOT NULL,
        is_admin boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE sessions (
        token_hash bytea PRIMARY KEY,
        user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
    );
    """,
    # 2: API tokens for scripts and Home Assistant; only a hash is kept, revocation is a timestamp.
    """
    CREATE TABLE api_tokens (
        id serial PRIMARY KEY,
        user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name text NOT NULL,
        token_hash bytea NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz,
        revoked_at timestamptz
    );
    """,
    # 3: nRF24 radio settings chosen in the web page, per collector (its MQTT sensor id). The api
    # keeps them here so it can publish them again (retained) whenever it reconnects to the broker.
    """
    CREATE TABLE radio_configs (
        sensor_key text PRIMARY KEY,
        aes_key text NOT NULL,
        address bigint NOT NULL CHECK (address >= 0 AND address < 1099511627776),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    """,
)

# EDF "Tarif Bleu" regulated prices in force from 2026-02-01, tax included, 6 kVA meter (the
# per-kWh prices from the published grid; the monthly subscriptions are approximate):
# energy in EUR/kWh, subscription in EUR/month. The admin can edit them in the settings.
SEED_PROVIDERS: Final = (
    ("EDF Tarif Bleu - Base", 0.1940, 16.87, 0.1940, 16.87),
    ("EDF Tarif Bleu - Heures creuses", 0.2065, 17.32, 0.1579, 17.32),
)


def migrate(conn: psycopg.Connection[tuple[object, ...]], default_max_gap_seconds: float) -> None:
    """Bring the schema to the newest version; safe to call from every service at every start."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        current = int(str(row[0])) if row else 0
        for version, sql in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            log.info("applying schema migration %d", version)
            conn.execute(sql.encode())
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
        conn.execute(
            "INSERT INTO household (id, max_gap_seconds) VALUES (true, %s) ON CONFLICT (id) DO NOTHING",
            (default_max_gap_seconds,),
        )
        for name, day_slope, day_const, night_slope, night_const in SEED_PROVIDERS:
            conn.execute(
                "INSERT INTO energy_providers (name, day_slope_watt_euros, day_constant_watt_euros,"
                " night_slope_watt_euros, night_constant_watt_euros) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (name, day_slope, day_const, night_slope, night_const),
            )
    _try_hypertable(conn)


def _try_hypertable(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Make ``readings`` a TimescaleDB hypertable when the extension can be loaded."""
    with conn.transaction():
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    if not available:
        log.info("timescaledb extension not available: readings stay a plain PostgreSQL table")
        return
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute(
                "SELECT create_hypertable('readings', by_range('ts'), if_not_exists => TRUE, migrate_data => TRUE)"
            )
    except psycopg.Error as exc:
        # Typically: the library is not in shared_preload_libraries. Plain tables work the same.
        log.warning("timescaledb present but unusable (%s): readings stay a plain table", exc)
