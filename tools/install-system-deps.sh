#!/usr/bin/env bash
# Installs the Debian packages CitizenWatt's `make run` and `make test` need, if they are missing.
# Debian 12: mosquitto (the broker), postgresql (its server binaries: make run and the tests start
# their own server in a folder they own), docker-compose (only to validate docker-compose.yml), and
# Debian's AVR toolchain with arduino-mk (the tests build the ACS712 sketch for an Uno), and chromium
# (the UI tests drive it through Playwright; Playwright's own browser download is never used).
set -euo pipefail
packages=(mosquitto mosquitto-clients postgresql docker-compose gcc-avr avr-libc arduino-core-avr arduino-mk chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
# The Debian package starts a system broker on 1883; `make run` brings its own.
if [ -d /run/systemd/system ]; then $sudo systemctl disable --now mosquitto 2>/dev/null || true; fi
