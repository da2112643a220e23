#!/bin/sh
# Writes a backup of CitizenWatt's database to standard output (pg_dump's custom format), from the
# running compose stack, without stopping anything:  sh tools/backup-database.sh > citizenwatt.dump
# CW_COMPOSE overrides the compose command (default: `docker compose`, else `docker-compose`).
set -eu
compose=${CW_COMPOSE:-}
if [ -z "$compose" ]; then
  if docker compose version >/dev/null 2>&1; then compose="docker compose"; else compose="docker-compose"; fi
fi
exec $compose exec -T timescaledb pg_dump -U citizenwatt -d citizenwatt --format=custom
