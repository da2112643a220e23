# Test stand-in for timescale/timescaledb:2.28.3-pg15, which cannot be pulled on the CI machines:
# Debian 12's PostgreSQL 15 with TimescaleDB 2.28.3 built from ../shared/vendor (tools/build-timescaledb.sh)
# and an entrypoint honouring the variables docker-compose.yml gives the official image
# (POSTGRES_USER, POSTGRES_PASSWORD_FILE, POSTGRES_DB, TIMESCALEDB_TELEMETRY, data in
# /var/lib/postgresql/data). Built by tests/test_compose_stack.py from a context it assembles.
FROM debian:bookworm-slim
# The server release the extension was compiled against (the host's postgresql-server-dev-15).
ARG POSTGRESQL_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15=${POSTGRESQL_VERSION} \
 && rm -rf /var/lib/apt/lists/*
COPY lib/ /usr/lib/postgresql/15/lib/
COPY extension/ /usr/share/postgresql/15/extension/
COPY entrypoint.sh /usr/local/bin/entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["sh", "/usr/local/bin/entrypoint.sh"]
