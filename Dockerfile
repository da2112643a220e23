# CitizenWatt's images, every one from this recipe; docker-compose.yml picks a target and build
# arguments per service. Every stage starts from debian:bookworm-slim, which is published for amd64,
# arm64 and armv7 (32-bit Raspberry Pi OS), and uses Debian 12's Python 3.11.
#
#   target    what             build arguments
#   service   one Python       REQUIREMENTS (docker/requirements/<name>.txt), SERVICE_DIR (folder under
#             service          services/), SERVICE_MODULE (python -m ...), RUNTIME_PACKAGES (Debian
#                              packages it needs at run time)
#   api       the api + web UI the same, for the api
#   mosquitto the broker       (none) Debian's Mosquitto 2, as uid 1883
#
# Each image holds its own service's code, the shared package and its own pinned dependencies only.
# (The broker comes first: the classic builder, used by docker-compose 1.x, builds every stage before
# the target it is asked for.)


# --- The broker: Debian's Mosquitto 2 ------------------------------------------------------------
# A fixed uid (1883) so that secrets-init can hand the password file to it before it starts.
FROM debian:bookworm-slim AS mosquitto
RUN groupadd --system --gid 1883 mosquitto \
 && useradd --system --uid 1883 --gid 1883 --no-create-home --home-dir /mosquitto/data mosquitto \
 && apt-get update \
 && apt-get install -y --no-install-recommends mosquitto \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o mosquitto -g mosquitto /mosquitto/data /mosquitto/config /mosquitto/secrets
USER mosquitto
EXPOSE 1883
CMD ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]

# --- Debian's Python and the services' user --------------------------------------------------------
FROM debian:bookworm-slim AS python
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent citizenwatt
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH PYTHONPATH=/app
# glibc malloc on a 1 GB Pi, as tools/run_local.py sets it for `make run` (the reasons are there): blocks
# of 128 KiB and more are mapped and given back when freed (one 16 MB scrypt password check no longer
# stays resident in the api), and two arenas rather than 8 per core for C libraries' allocations in threads.
ENV MALLOC_MMAP_THRESHOLD_=131072 MALLOC_ARENA_MAX=2

# --- Build stage: the virtual environment --------------------------------------------------------
# Compilers and headers live only here. A package with no wheel for the platform (spidev and psycopg-c
# everywhere, cffi and dbus-fast on armv7: tests/test_images_installable.py keeps the list) is compiled
# here; the runtime image gets the finished venv.
FROM python AS venv
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gcc g++ make cmake python3-dev libpq-dev libffi-dev \
 && rm -rf /var/lib/apt/lists/*
ARG REQUIREMENTS
COPY docker/requirements/${REQUIREMENTS}.txt /tmp/requirements.txt
# `pip check` proves the pinned set is complete and consistent on this platform; pip and setuptools
# are not needed at run time.
RUN python3 -m venv /opt/venv \
 && pip install --no-deps --prefer-binary -r /tmp/requirements.txt \
 && pip check \
 && pip uninstall -y -q pip setuptools

# --- A Python service ----------------------------------------------------------------------------
FROM python AS service
ARG RUNTIME_PACKAGES=""
RUN if [ -n "$RUNTIME_PACKAGES" ]; then \
      apt-get update && apt-get install -y --no-install-recommends $RUNTIME_PACKAGES \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && install -d -o citizenwatt -g citizenwatt /var/lib/citizenwatt
COPY --from=venv /opt/venv /opt/venv
COPY common/citizenwatt_common /app/citizenwatt_common
ARG SERVICE_DIR
COPY services/${SERVICE_DIR} /app/
ARG SERVICE_MODULE
ENV CW_SERVICE_MODULE=${SERVICE_MODULE}
USER citizenwatt
WORKDIR /var/lib/citizenwatt
# exec: the service itself is process 1 and receives docker's SIGTERM.
CMD ["sh", "-c", "exec python3 -m \"$CW_SERVICE_MODULE\""]

# --- The api, with the static web UI it serves ---------------------------------------------------
FROM service AS api
COPY services/ui /app/ui
# glibc's allocator for Python's objects too, so that the memory of a heavy answer can be handed
# back after it (limits.give_back_memory); tools/run_local.py starts the api the same way.
ENV CW_UI_DIR=/app/ui PYTHONMALLOC=malloc
EXPOSE 8080
