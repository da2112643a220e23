#!/usr/bin/env bash
# Installs the Debian 12 packages CitizenWatt needs, if they are missing (with sudo when not root).
#   run:  mosquitto (the broker) and postgresql (its server binaries: `make run` starts its own server
#         in a folder it owns)
#   test: the above, plus what only the tests need: Debian's AVR toolchain with arduino-mk (the ACS712
#         sketch is built for an Uno), chromium (the UI tests drive it through Playwright; Playwright's
#         own browser download is never used), docker.io, docker-compose and debootstrap (the compose
#         stack is built and run in a Docker daemon of the tests' own), and PostgreSQL's server headers,
#         cmake and OpenSSL's headers (TimescaleDB is built from ../shared/vendor for the tests), strace
#         (the power-cut test and `make bench` count the system calls of real processes)
# Waits for a package lock held by someone else (tools/apt-install.sh) instead of failing.
set -euo pipefail
profile="${1:-run}"
packages=(mosquitto mosquitto-clients postgresql)
if [ "$profile" = test ]; then
  packages+=(gcc-avr avr-libc arduino-core-avr arduino-mk chromium docker.io docker-compose debootstrap
             postgresql-server-dev-15 cmake gcc make libssl-dev strace)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
bash "$(dirname "$0")/apt-install.sh" "${missing[@]}"
# The Debian packages start a system broker on 1883 (and a Docker daemon) where systemd runs;
# `make run` and the tests bring their own.
if [ -d /run/systemd/system ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo systemctl disable --now mosquitto 2>/dev/null || true
fi
