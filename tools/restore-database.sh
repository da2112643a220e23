#!/bin/sh
# Replaces CitizenWatt's database with a backup made by backup-database.sh, read from standard input:
#   sh tools/restore-database.sh < citizenwatt.dump
# The aggregator and the api are stopped meanwhile; the collectors keep publishing and the broker
# keeps their readings for the aggregator, which stores them once it is back. TimescaleDB wants its
# pre/post-restore calls around pg_restore. CW_COMPOSE as in backup-database.sh.
set -eu
compose=${CW_COMPOSE:-}
if [ -z "$compose" ]; then
  if docker compose version >/dev/null 2>&1; then compose="docker compose"; else compose="docker-compose"; fi
fi
# Only pg_restore may read the backup: `compose exec` passes standard input on to every command.
exec 3<&0 </dev/null
sql() { $compose exec -T timescaledb psql -q -v ON_ERROR_STOP=1 -U citizenwatt "$@"; }
$compose stop aggregator api
sql -d postgres -c 'DROP DATABASE IF EXISTS citizenwatt WITH (FORCE)' -c 'CREATE DATABASE citizenwatt'
sql -d citizenwatt -c 'CREATE EXTENSION IF NOT EXISTS timescaledb' -c 'SELECT timescaledb_pre_restore()' >/dev/null
$compose exec -T timescaledb pg_restore -U citizenwatt -d citizenwatt --no-owner --exit-on-error <&3
sql -d citizenwatt -c 'SELECT timescaledb_post_restore()' >/dev/null
$compose start aggregator api
echo "restore-database: done" >&2
