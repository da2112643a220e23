#!/usr/bin/env bash
# apt-get install of the named Debian packages, as root or through sudo, that waits for a package
# lock held by someone else (unattended-upgrades on a fresh Pi or VM, another terminal) instead of
# failing at once: apt's own DPkg::Lock::Timeout covers the dpkg lock, and `apt-get update` (whose
# lists lock that option does not cover on every apt) is retried for as long.
set -euo pipefail
[ $# -gt 0 ] || exit 0
wait_seconds="${CW_APT_LOCK_WAIT:-900}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
apt_opts=(-q -o "DPkg::Lock::Timeout=$wait_seconds")
deadline=$((SECONDS + wait_seconds))
until $sudo apt-get "${apt_opts[@]}" update; do
  if [ $SECONDS -ge $deadline ]; then
    echo "apt-install: apt-get update still failing after ${wait_seconds} s" >&2
    exit 1
  fi
  echo "apt-install: package lists busy or unreachable, trying again in 5 s" >&2
  sleep 5
done
DEBIAN_FRONTEND=noninteractive $sudo apt-get "${apt_opts[@]}" install -y --no-install-recommends "$@"
