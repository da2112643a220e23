"""The database schema, created and migrated idempotently by whichever service starts first.

Migrations only ever get appended. They run in one transaction under an advisory lock, so the
aggregator and the api starting together cannot race.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

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
    # 4: energy per sensor per UTC hour, kept exact by the same writers as the 15-minute rollups.
    # A year by day from 15-minute rows sums 35 040 of them; from hours, 8 760. Local hours and
    # days are whole UTC hours wherever the offset is (zones with a half- or quarter-hour offset
    # fall back to the 15-minute rows at the edges). Filled from the existing 15-minute rows.
    """
    CREATE TABLE energy_rollups_hourly (
        sensor_id integer NOT NULL REFERENCES sensors (id),
        bucket timestamptz NOT NULL,
        day_wh double precision NOT NULL DEFAULT 0,
        night_wh double precision NOT NULL DEFAULT 0,
        day_seconds double precision NOT NULL DEFAULT 0,
        night_seconds double precision NOT NULL DEFAULT 0,
        PRIMARY KEY (sensor_id, bucket)
    );
    INSERT INTO energy_rollups_hourly (sensor_id, bucket, day_wh, night_wh, day_seconds, night_seconds)
    SELECT sensor_id, date_trunc('hour', bucket, 'UTC'), sum(day_wh), sum(night_wh), sum(day_seconds),
           sum(night_seconds)
    FROM energy_rollups GROUP BY 1, 2;
    """,
    # 5: alerts found by the aggregator (see alerts.py). One row per alert raised, closed by
    # cleared_at when it ends: the open rows are what the page and the retained MQTT state show,
    # and the aggregator compares against them after a restart, so it announces a raise or a
    # clear once and only once. sensor_checks: each sensor's standby baseline and last check.
    """
    CREATE TABLE alerts (
        id bigserial PRIMARY KEY,
        sensor_id integer NOT NULL REFERENCES sensors (id),
        kind text NOT NULL,
        since timestamptz NOT NULL,
        cleared_at timestamptz,
        message text NOT NULL,
        details jsonb NOT NULL DEFAULT '{}'
    );
    CREATE UNIQUE INDEX alerts_open_idx ON alerts (sensor_id, kind) WHERE cleared_at IS NULL;
    CREATE TABLE sensor_checks (
        sensor_id integer PRIMARY KEY REFERENCES sensors (id),
        checked_at timestamptz NOT NULL,
        standby_w double precision,
        standby_nights integer NOT NULL DEFAULT 0
    );
    """,
    # 6: import and export apart (negative power is export, see energy.py): both rollup tables get
    # the energy of each direction (each >= 0; import - export = day_wh + night_wh, the net), and
    # sensors get exact totals of each, their never-decreasing meters for dashboards and Home
    # Assistant, and whether the sensor ever reported negative power.
    #
    # Filling the existing rows: a sensor with no negative reading has no segment below zero, so
    # its import is its net energy and its export nothing (greatest(): float dust of the deltas
    # never makes a negative import). Proving that takes one scan of the readings for power < 0
    # (no index can answer it), once. Only the sensors that did report negative power have their
    # 15-minute rollups worked out again from their readings, segment by segment, cut at the
    # quarter hours and split at zero crossings as energy.linear_flows does; the hourly rows and
    # the sensors' totals are then summed from the 15-minute rows. A household without solar
    # panels pays one scan and two small UPDATEs.
    """
    ALTER TABLE energy_rollups ADD COLUMN import_wh double precision NOT NULL DEFAULT 0,
                               ADD COLUMN export_wh double precision NOT NULL DEFAULT 0;
    ALTER TABLE energy_rollups_hourly ADD COLUMN import_wh double precision NOT NULL DEFAULT 0,
                                      ADD COLUMN export_wh double precision NOT NULL DEFAULT 0;
    ALTER TABLE sensors ADD COLUMN exports boolean NOT NULL DEFAULT false,   -- ever reported power < 0
                        ADD COLUMN energy_import_wh double precision NOT NULL DEFAULT 0,  -- exact
                        ADD COLUMN energy_export_wh double precision NOT NULL DEFAULT 0,  -- exact
                        ADD COLUMN meter_import_wh double precision NOT NULL DEFAULT 0,   -- never decreases
                        ADD COLUMN meter_export_wh double precision NOT NULL DEFAULT 0;   -- never decreases

    UPDATE sensors SET exports = true WHERE id IN (SELECT DISTINCT sensor_id FROM readings WHERE power < 0);

    UPDATE energy_rollups r SET import_wh = greatest(r.day_wh + r.night_wh, 0)
    FROM sensors s WHERE s.id = r.sensor_id AND NOT s.exports;

    WITH seg AS (
        SELECT sensor_id, lag(t) OVER w AS t0, t AS t1, lag(p) OVER w AS p0, p AS p1
        FROM (SELECT sensor_id, ts, date_part('epoch', ts) AS t, power AS p FROM readings
              WHERE sensor_id IN (SELECT id FROM sensors WHERE exports)) AS r
        WINDOW w AS (PARTITION BY sensor_id ORDER BY ts)
    ), part AS (  -- each segment's part in each quarter hour it touches, with its end powers
        SELECT sensor_id, b, z - a AS len,
               p0 + (p1 - p0) * (a - t0) / (t1 - t0) AS pa, p0 + (p1 - p0) * (z - t0) / (t1 - t0) AS pb
        FROM seg
        CROSS JOIN LATERAL generate_series(floor(t0 / 900)::int8 * 900, ceil(t1)::int8, 900) AS q(b)
        CROSS JOIN LATERAL (SELECT greatest(t0, b::float8) AS a, least(t1, b::float8 + 900) AS z) AS cut
        WHERE t1 - t0 > 0 AND t1 - t0 <= (SELECT max_gap_seconds FROM household) AND z > a
    ), flows AS (
        SELECT sensor_id, b,
               sum(CASE WHEN pa >= 0 AND pb >= 0 THEN (pa + pb) / 2 * len
                        WHEN pa <= 0 AND pb <= 0 THEN 0
                        ELSE greatest(pa, pb) ^ 2 * len / (2 * abs(pa - pb)) END) / 3600 AS i,
               sum(CASE WHEN pa >= 0 AND pb >= 0 THEN 0
                        WHEN pa <= 0 AND pb <= 0 THEN -(pa + pb) / 2 * len
                        ELSE least(pa, pb) ^ 2 * len / (2 * abs(pa - pb)) END) / 3600 AS e
        FROM part GROUP BY 1, 2
    )
    UPDATE energy_rollups r SET import_wh = f.i, export_wh = f.e
    FROM flows f WHERE r.sensor_id = f.sensor_id AND r.bucket = to_timestamp(f.b);

    UPDATE energy_rollups_hourly h SET import_wh = q.i, export_wh = q.e
    FROM (SELECT sensor_id, date_trunc('hour', bucket, 'UTC') AS hour, sum(import_wh) AS i, sum(export_wh) AS e
          FROM energy_rollups GROUP BY 1, 2) AS q
    WHERE h.sensor_id = q.sensor_id AND h.bucket = q.hour;

    UPDATE sensors s SET energy_import_wh = q.i, energy_export_wh = q.e, meter_import_wh = q.i, meter_export_wh = q.e
    FROM (SELECT sensor_id, sum(import_wh) AS i, sum(export_wh) AS e FROM energy_rollups_hourly GROUP BY 1) AS q
    WHERE s.id = q.sensor_id;
    """,
    # 7: tariffs as dated versions (citizenwatt_common/tariffs.py). A version's prices, subscription,
    # time-of-use windows and export credit apply from its local date; the household's choice of
    # tariff is dated too; Tempo day colours come from the api or the retained MQTT topic
    # citizenwatt/_household/tempo/<date>. Amounts are numeric: exact decimals, as on a bill.
    #
    # Seeded: EDF's regulated "Tarif Bleu" (TRVE), 6 kVA, tax included, per kWh and per month.
    # Sources, read on 2026-11-25:
    # - 2025-02-01 Base 0.2016, HP 0.2146, HC 0.1696, subscriptions Base 13.72 and HC 14.04 EUR/month
    #   (164.64 EUR/year): kelwatt.fr/prix/tarif-bleu-edf ("nouveaux prix officiels de février 2025").
    # - 2025-08-01 Base 0.1952, subscription 185.64 EUR/year = 15.47 EUR/month:
    #   commentaider.fr/tarifs-abonnements-edf-2025; HP 0.2081, HC 0.1635: jechange.fr (tarifs
    #   réglementés, checked 2025-08-07); Tempo blue HC 0.1232 HP 0.1494, white HC 0.1391 HP 0.1730,
    #   red HC 0.1460 HP 0.6468: moneyvox.fr (actualité 107038, "depuis le 1er août 2025").
    # - 2026-02-01 Base 0.1940 (3 and 6 kVA), HP 0.2065, HC 0.1579, Tempo blue HC 0.1325 HP 0.1612,
    #   white HC 0.1499 HP 0.1871, red HC 0.1575 HP 0.7060: revolution-energetique.com, "voici les
    #   nouveaux prix de l'électricité au 1er février 2026".
    # NOT CONFIRMED (no source found; check them against your bill and correct them with
    # PUT /api/v2/tariffs/<id>/versions/<date>): the 2025-02-01 Tempo prices (blue 0.1288/0.1552,
    # white 0.1447/0.1792, red 0.1518/0.6586, as remembered); the HC subscription of 2025-08-01
    # (15.74); every subscription of 2026-02-01 (those of 2025-08-01 carried over); and every Tempo
    # subscription (the HC option's used in its place). 2024 versions are not seeded: they could
    # not be confirmed either.
    #
    # A household starts on the tariff of its legacy provider (Base on a fresh install, as the
    # legacy API's default provider is), from 2000-01-01, so all stored history has a price; one on
    # Heures creuses with night hours of its own gets a copy of that tariff with those hours.
    """
    CREATE TABLE tariffs (
        id serial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        kind text NOT NULL CHECK (kind IN ('base', 'hc', 'tempo', 'custom')),
        builtin boolean NOT NULL DEFAULT false
    );
    CREATE TABLE tariff_versions (
        tariff_id integer NOT NULL REFERENCES tariffs (id) ON DELETE CASCADE,
        valid_from date NOT NULL,
        subscription_euros_per_month numeric NOT NULL CHECK (subscription_euros_per_month >= 0),
        periods jsonb NOT NULL,        -- period -> EUR/kWh, or period -> {blue, white, red} -> EUR/kWh
        default_period text NOT NULL,  -- the period of every minute outside the windows
        windows jsonb NOT NULL DEFAULT '[]',  -- [{"start": "22:00", "end": "06:00", "period": ...}]
        export_euros_per_kwh numeric NOT NULL DEFAULT 0 CHECK (export_euros_per_kwh >= 0),
        PRIMARY KEY (tariff_id, valid_from)
    );
    CREATE TABLE household_tariffs (
        valid_from date PRIMARY KEY,
        tariff_id integer NOT NULL REFERENCES tariffs (id)
    );
    CREATE TABLE tempo_days (
        day date PRIMARY KEY,
        colour text NOT NULL CHECK (colour IN ('blue', 'white', 'red')),
        source text NOT NULL CHECK (source IN ('api', 'mqtt')),
        updated_at timestamptz NOT NULL DEFAULT now()
    );

    INSERT INTO tariffs (name, kind, builtin) VALUES
        ('EDF Tarif Bleu - Base', 'base', true),
        ('EDF Tarif Bleu - Heures creuses', 'hc', true),
        ('EDF Tarif Bleu - Tempo', 'tempo', true);

    INSERT INTO tariff_versions (tariff_id, valid_from, subscription_euros_per_month, periods, default_period, windows)
    SELECT t.id, v.valid_from::date, v.subscription, v.periods::jsonb, v.default_period, v.windows::jsonb
    FROM (VALUES
        ('base', '2025-02-01', 13.72, '{"base": 0.2016}', 'base', '[]'),
        ('base', '2025-08-01', 15.47, '{"base": 0.1952}', 'base', '[]'),
        ('base', '2026-02-01', 15.47, '{"base": 0.1940}', 'base', '[]'),
        ('hc', '2025-02-01', 14.04, '{"peak": 0.2146, "offpeak": 0.1696}', 'peak',
         '[{"start": "22:00", "end": "06:00", "period": "offpeak"}]'),
        ('hc', '2025-08-01', 15.74, '{"peak": 0.2081, "offpeak": 0.1635}', 'peak',
         '[{"start": "22:00", "end": "06:00", "period": "offpeak"}]'),
        ('hc', '2026-02-01', 15.74, '{"peak": 0.2065, "offpeak": 0.1579}', 'peak',
         '[{"start": "22:00", "end": "06:00", "period": "offpeak"}]'),
        ('tempo', '2025-02-01', 14.04,
         '{"peak": {"blue": 0.1552, "white": 0.1792, "red": 0.6586},'
         ' "offpeak": {"blue": 0.1288, "white": 0.1447, "red": 0.1518}}', 'peak',
         '[{"start": "22:00", "end": "06:00", "period": "offpeak"}]'),
        ('tempo', '2025-08-01', 15.74,
         '{"peak": {"blue": 0.1494, "white": 0.1730, "red": 0.6468},'
         ' "offpeak": {"blue": 0.1232, "white": 0.1391, "red": 0.1460}}', 'peak',
         '[{"start": "22:00", "end": "06:00", "period": "offpeak"}]'),
        ('tempo', '2026-02-01', 15.74,
         '{"peak": {"blue": 0.1612, "white": 0.1871, "red": 0.7060},'
         ' "offpeak": {"blue": 0.1325, "white": 0.1499, "red": 0.1575}}', 'peak',
         '[{"start": "22:00", "end": "06:00", "period": "offpeak"}]')
    ) AS v(kind, valid_from, subscription, periods, default_period, windows)
    JOIN tariffs t ON t.kind = v.kind AND t.builtin;

    INSERT INTO household_tariffs (valid_from, tariff_id)
    SELECT '2000-01-01', t.id FROM tariffs t
    WHERE t.kind = CASE WHEN EXISTS (SELECT 1 FROM household h JOIN energy_providers p ON p.id = h.provider_id
                                     WHERE p.name ILIKE '%creuses%') THEN 'hc' ELSE 'base' END
      AND t.builtin;

    -- A household on Heures creuses that had set other night hours keeps them: a copy of the tariff
    -- with those hours in every version, chosen from 2000-01-01 (how it was priced until now).
    INSERT INTO tariffs (name, kind, builtin)
    SELECT 'EDF Tarif Bleu - Heures creuses (own hours)', 'custom', false
    FROM household h JOIN energy_providers p ON p.id = h.provider_id
    WHERE p.name ILIKE '%creuses%' AND h.night_start_minute IS NOT NULL
      AND h.night_start_minute <> h.night_end_minute
      AND (h.night_start_minute, h.night_end_minute) <> (1320, 360);
    INSERT INTO tariff_versions (tariff_id, valid_from, subscription_euros_per_month, periods, default_period, windows)
    SELECT c.id, v.valid_from, v.subscription_euros_per_month, v.periods, v.default_period,
           jsonb_build_array(jsonb_build_object(
               'start', to_char(make_interval(mins => h.night_start_minute), 'HH24:MI'),
               'end', to_char(make_interval(mins => h.night_end_minute), 'HH24:MI'),
               'period', 'offpeak'))
    FROM tariffs c CROSS JOIN household h
    JOIN tariff_versions v ON v.tariff_id = (SELECT id FROM tariffs WHERE kind = 'hc' AND builtin)
    WHERE c.name = 'EDF Tarif Bleu - Heures creuses (own hours)';
    UPDATE household_tariffs SET tariff_id = c.id
    FROM tariffs c WHERE c.name = 'EDF Tarif Bleu - Heures creuses (own hours)';
    """,
    # 8: readings with an impossible time (citizenwatt_common/clock_check.py), kept aside with their
    # reason until the administrator releases (stores) or deletes them. Not in readings, so no
    # energy, newest reading or state ever sees them. The unique index makes a redelivered
    # message harmless, as readings' primary key does; seq is NULL for readings without one.
    """
    CREATE TABLE quarantined_readings (
        id bigserial PRIMARY KEY,
        sensor_id integer NOT NULL REFERENCES sensors (id),
        ts timestamptz NOT NULL,
        power double precision NOT NULL,
        voltage double precision,
        current double precision,
        battery double precision,
        soc double precision,
        energy double precision,
        state boolean,
        seq bigint,
        payload bytea NOT NULL,          -- the message as received
        reason text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX quarantined_readings_once_idx ON quarantined_readings (sensor_id, ts, coalesce(seq, -1));
    """,
    # 9: energy per sensor per UTC minute, kept exact by the same writers as the other rollups, so
    # that a bucket of a fine step is summed from minutes and only the seconds around its edges
    # come from raw readings (queries.energy_in_intervals). A minute row is updated by each reading
    # of its minute and then left alone, and only the newest minute of each sensor is being
    # updated: fillfactor 90 leaves room on the newest page for those few rows' new versions (HOT
    # updates, no index entry each) and little empty space on the others. Existing readings are cut
    # into minutes here,
    # segment by segment, as energy.split_by_bucket does (the same trapezoids, tariff of the
    # segment's end, import and export apart as energy.linear_flows): one pass over readings.
    """
    -- The 15-minute table's columns, defaults and primary key (LIKE copies no foreign key).
    CREATE TABLE energy_rollups_minute (
        LIKE energy_rollups INCLUDING DEFAULTS INCLUDING INDEXES,
        FOREIGN KEY (sensor_id) REFERENCES sensors (id)
    ) WITH (fillfactor = 90);

    WITH seg AS (
        SELECT sensor_id, lag(t) OVER w AS t0, t AS t1, lag(p) OVER w AS p0, p AS p1, n
        FROM (SELECT sensor_id, ts, date_part('epoch', ts) AS t, power AS p, night_rate AS n FROM readings) AS r
        WINDOW w AS (PARTITION BY sensor_id ORDER BY ts)
    ), part AS (
        SELECT sensor_id, n, b, z - a AS len,
               CASE WHEN a = t0 AND z = t1 THEN p0 ELSE p0 + (p1 - p0) * (a - t0) / (t1 - t0) END AS pa,
               CASE WHEN a = t0 AND z = t1 THEN p1 ELSE p0 + (p1 - p0) * (z - t0) / (t1 - t0) END AS pb
        FROM seg
        CROSS JOIN LATERAL generate_series(floor(t0 / 60)::int8 * 60, ceil(t1)::int8, 60) AS q(b)
        CROSS JOIN LATERAL (SELECT greatest(t0, b::float8) AS a, least(t1, b::float8 + 60) AS z) AS cut
        WHERE t1 - t0 > 0 AND t1 - t0 <= (SELECT max_gap_seconds FROM household) AND z > a
    )
    INSERT INTO energy_rollups_minute (sensor_id, bucket, day_wh, night_wh, day_seconds, night_seconds,
                                       import_wh, export_wh)
    SELECT sensor_id, to_timestamp(b),
           coalesce(sum((pa + pb) / 2 * len) FILTER (WHERE NOT n), 0) / 3600,
           coalesce(sum((pa + pb) / 2 * len) FILTER (WHERE n), 0) / 3600,
           coalesce(sum(len) FILTER (WHERE NOT n), 0),
           coalesce(sum(len) FILTER (WHERE n), 0),
           sum(CASE WHEN pa >= 0 AND pb >= 0 THEN (pa + pb) / 2 * len
                    WHEN pa <= 0 AND pb <= 0 THEN 0
                    ELSE greatest(pa, pb) ^ 2 * len / (2 * abs(pa - pb)) END) / 3600,
           sum(CASE WHEN pa >= 0 AND pb >= 0 THEN 0
                    WHEN pa <= 0 AND pb <= 0 THEN -(pa + pb) / 2 * len
                    ELSE least(pa, pb) ^ 2 * len / (2 * abs(pa - pb)) END) / 3600
    FROM part GROUP BY 1, 2;
    """,
    # 10: energy per sensor per local day (the household's calendar days: its time zone, with its
    # 23- and 25-hour days), for years by day and long totals: a year is 365 rows instead of 8 760
    # hourly ones. Unlike the other rollups, the day being measured is not written by every
    # reading, which would add a row update (about 170 bytes of WAL) to each one: a day is
    # "closed" once, from its quarter-hour rows, two hours after it has ended (store.close_days);
    # sensors.days_closed_until says up to where, household.day_zone in which zone. From then on
    # the writers keep its row exact like the others (a late reading, a deletion). Readers use day
    # rows only before that instant, and finer rows after it. The first closing after this
    # migration closes the existing history. A bucket is the day's first instant as PostgreSQL
    # reads "midnight" in that zone (AT TIME ZONE), the one rule writers and readers all use.
    """
    CREATE TABLE energy_rollups_daily (
        LIKE energy_rollups INCLUDING DEFAULTS INCLUDING INDEXES,
        FOREIGN KEY (sensor_id) REFERENCES sensors (id)
    );
    ALTER TABLE sensors ADD COLUMN days_closed_until timestamptz;
    ALTER TABLE household ADD COLUMN day_zone text;
    """,
)

# EDF "Tarif Bleu" regulated prices in force from 2026-02-01, tax included, 6 kVA meter (the
# per-kWh prices from the published grid; the monthly subscriptions are approximate):
# energy in EUR/kWh, subscription in EUR/month. The admin can edit them in the settings.
SEED_PROVIDERS: Final = (
    ("EDF Tarif Bleu - Base", 0.1940, 16.87, 0.1940, 16.87),
    ("EDF Tarif Bleu - Heures creuses", 0.2065, 17.32, 0.1579, 17.32),
)


# Chunks of readings, when they live in a TimescaleDB hypertable. A household has one to a few
# sensors sending a reading every few seconds: a week is about 76 000 rows (16 MB before compression)
# per sensor, small enough for a Pi's memory, and 52 chunks a year keep planning cheap for years.
# Smaller chunks would compress sooner, but each chunk has a fixed cost (~120 kB of empty heap and
# indexes once compressed): measured on 30 days of 8-s readings, 1-day chunks took 29 bytes per
# reading compressed, 7-day chunks 19 (`make bench`). A chunk is compressed once all of it is
# older than the policy's delay, so readings stay uncompressed for at most 7 + N days.
CHUNK_DAYS: Final = 7
# Each compressed batch holds up to 1000 readings of one sensor in time order: sensors are
# queried one at a time and by time range, so whole batches are skipped by sensor and by their
# first/last timestamps without being decompressed. The legacy API also selects by measure id;
# ids grow with arrival, so a batch's smallest and largest id (a min/max sparse index) let id
# ranges skip batches too (measured: 500 measures by id in 1 ms instead of decompressing every
# batch's ids). TimescaleDB's default for that indexed column would be a bloom filter, which
# helps single ids only.
COMPRESS_SEGMENTBY: Final = "sensor_id"
COMPRESS_ORDERBY: Final = "ts"
COMPRESS_INDEX: Final = "minmax(id)"


class StorageError(RuntimeError):
    """The database cannot be used safely as it is configured; the message says how to fix it."""


@dataclass(frozen=True)
class StorageMode:
    """How readings are stored, decided at every start from what the server offers."""

    timescaledb: str | None = None  # the extension's version when readings is a hypertable
    compress_after_days: float | None = None  # the compression policy in force (None: none)
    reason: str = ""  # why readings are in plain tables, when they are
    misconfigured: bool = False  # plain tables although TimescaleDB is there: worth a warning

    def describe(self) -> str:
        if self.timescaledb is None:
            return f"plain PostgreSQL tables ({self.reason})"
        if self.compress_after_days is None:
            compression = "no compression policy"
        else:
            compression = f"compression after {self.compress_after_days:g} days"
        return f"TimescaleDB {self.timescaledb} hypertable ({CHUNK_DAYS}-day chunks), {compression}"

    def as_json(self) -> dict[str, object]:
        return {
            "backend": "plain" if self.timescaledb is None else "timescaledb",
            "timescaledb_version": self.timescaledb,
            "compress_after_days": self.compress_after_days,
            "description": self.describe(),
        }


def migrate(
    conn: psycopg.Connection[Any], default_max_gap_seconds: float, compress_after_days: int | None = None
) -> StorageMode:
    """Bring the schema to the newest version; safe to call from every service at every start.

    ``compress_after_days``: the compression policy to set up with TimescaleDB (0: none); None
    leaves whatever policy is in force alone (the api: the aggregator owns the policy, so two
    services started with different settings cannot undo each other at every restart).

    On a server where TimescaleDB cannot be used, readings stay in plain tables. Attempting to
    use it can kill the connection (a missing preload answers FATAL): when the returned mode says
    plain tables, check ``conn.closed``/``conn.broken`` and reconnect (``connect_migrated`` does).
    """
    _refuse_a_lost_preload(conn)
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
    mode = _setup_storage(conn, compress_after_days)
    log.log(logging.WARNING if mode.misconfigured else logging.INFO, "storage: %s", mode.describe())
    return mode


def connect_migrated(
    url: str, default_max_gap_seconds: float, compress_after_days: int | None = None, connect_timeout: int = 10
) -> tuple[psycopg.Connection[Any], StorageMode]:
    """An autocommit connection to a migrated database, and its storage mode.

    If setting up TimescaleDB killed the connection anyway, the schema is committed and readings
    are in plain tables: a fresh connection is all that is needed to go on.
    """
    conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
    try:
        mode = migrate(conn, default_max_gap_seconds, compress_after_days)
    except BaseException:
        conn.close()
        raise
    if conn.closed or conn.broken:
        conn.close()
        conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
    return conn, mode


def _preloaded(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    libraries = [part.strip().strip('"') for part in str(row[0] if row else "").split(",")]
    return any(name == "timescaledb" or name.startswith("timescaledb-") for name in libraries)


_NOT_PRELOADED_FIX = (
    "add shared_preload_libraries = 'timescaledb' to postgresql.conf (or start the server with"
    " -c shared_preload_libraries=timescaledb) and restart PostgreSQL"
)


def _refuse_a_lost_preload(conn: psycopg.Connection[Any]) -> None:
    """A database already holding TimescaleDB, on a server that no longer preloads it, is unusable.

    Seen on 2.28.3: without the library's hooks, a SELECT on the hypertable silently misses every
    compressed row, an INSERT lands where TimescaleDB never looks, and DDL fails in its event
    triggers. Nothing sensible can be done but say how to fix it.
    """
    with conn.transaction():
        installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        if installed and not _preloaded(conn):
            raise StorageError(
                "readings is stored with TimescaleDB but this PostgreSQL server does not preload it:"
                f" compressed readings would be invisible and new ones misplaced; {_NOT_PRELOADED_FIX}"
            )


def _setup_storage(conn: psycopg.Connection[Any], compress_after_days: int | None) -> StorageMode:
    """Make ``readings`` a compressed hypertable when TimescaleDB can be used; say why not otherwise."""
    with conn.transaction():
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
        preloaded = _preloaded(conn)
    if not available:
        return StorageMode(reason="the timescaledb extension is not installed on the server")
    if not preloaded:
        # Checked before trying: CREATE EXTENSION would answer FATAL and close the connection.
        return StorageMode(
            reason="the timescaledb extension is installed but not in shared_preload_libraries;"
            f" to store readings in a compressed hypertable, {_NOT_PRELOADED_FIX}",
            misconfigured=True,
        )
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            # migrate_data: a household that ran on plain tables keeps its history.
            conn.execute(
                "SELECT create_hypertable('readings', by_range('ts', make_interval(days => %s)),"
                " if_not_exists => TRUE, migrate_data => TRUE)",
                (CHUNK_DAYS,),
            )
            if compress_after_days is not None:
                _set_compression(conn, compress_after_days)
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
            version = str(row[0]) if row else "?"
            policy = _compression_policy(conn)
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StorageMode(reason=f"TimescaleDB could not be set up: {first_line}", misconfigured=True)
    return StorageMode(timescaledb=version, compress_after_days=policy[1] if policy else None)


def _compression_policy(conn: psycopg.Connection[Any]) -> tuple[int, float] | None:
    """(job id, days) of the compression policy on readings, if there is one."""
    row = conn.execute(
        "SELECT job_id, extract(epoch FROM (config->>'compress_after')::interval) / 86400"
        " FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_compression' AND hypertable_schema = current_schema()"
        " AND hypertable_name = 'readings'"
    ).fetchone()
    return (int(row[0]), float(row[1])) if row else None


def _set_compression(conn: psycopg.Connection[Any], days: int) -> None:
    """Compression settings and a policy compressing chunks older than ``days`` (0: no policy).

    Idempotent: settings are applied once (they cannot change while chunks are compressed), and
    the policy is replaced only when its delay differs from the one asked for.
    """
    enabled = conn.execute(
        "SELECT compression_enabled FROM timescaledb_information.hypertables"
        " WHERE hypertable_schema = current_schema() AND hypertable_name = 'readings'"
    ).fetchone()
    if days > 0 and not (enabled and enabled[0]):
        conn.execute(
            f"ALTER TABLE readings SET (timescaledb.compress,"
            f" timescaledb.compress_segmentby = '{COMPRESS_SEGMENTBY}',"
            f" timescaledb.compress_orderby = '{COMPRESS_ORDERBY}',"
            f" timescaledb.compress_index = '{COMPRESS_INDEX}')"
        )
    policy = _compression_policy(conn)
    if policy is not None and policy[1] == days:
        return
    if policy is not None:
        conn.execute("SELECT remove_compression_policy('readings', if_exists => TRUE)")
        log.info("compression policy changed from %g to %d days", policy[1], days)
    if days > 0:
        conn.execute("SELECT add_compression_policy('readings', make_interval(days => %s))", (days,))
