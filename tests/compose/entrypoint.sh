#!/bin/sh
# First start: initdb with the given superuser and password file, TimescaleDB preloaded, the database
# created with the extension in it; then PostgreSQL runs as the postgres user, as process 1, with the
# flags of the service's command.
set -eu
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
install -d -o postgres -g postgres -m 0700 "$PGDATA"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  password_copy=$(mktemp)
  cat "$POSTGRES_PASSWORD_FILE" > "$password_copy"
  chown postgres "$password_copy"
  as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$password_copy" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$password_copy"
  {
    echo "listen_addresses = '*'"
    echo "shared_preload_libraries = 'timescaledb'"
    echo "timescaledb.telemetry_level = ${TIMESCALEDB_TELEMETRY:-off}"
  } >> "$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  as_postgres psql -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
  as_postgres psql -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "CREATE EXTENSION IF NOT EXISTS timescaledb"
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "entrypoint: database $POSTGRES_DB initialised with TimescaleDB"
fi
# The service's command (docker-compose.yml's `postgres -c ...` memory and WAL settings) reaches the
# server as the official image's entrypoint passes it.
if [ "${1:-}" = postgres ]; then shift; fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" "$@"
