#!/usr/bin/env bash
# Makes a local stand-in for the official multi-arch `debian:bookworm-slim` image on a machine that
# cannot pull from a registry (CI here): debootstrap's minbase of the same release, imported under the
# same name, so the project's Dockerfiles build unchanged here and pull the real image on a Pi.
# This machine's CA bundle goes in at a path of its own (the image's `ca-certificates` package would
# overwrite the system one) and PIP_CERT points pip at it: pip inside builds then trusts what the host
# trusts. The root filesystem is cached, so only the first run pays for debootstrap (~70 s).
# Usage: DOCKER_HOST=... tools/debian-base-image.sh   (needs root, debootstrap, a running daemon)
set -euo pipefail
image="debian:bookworm-slim"
docker="${DOCKER:-docker}"
# A stand-in made by another version of this script is made again.
recipe="$(sha256sum "$0" | cut -c1-16)"
if [ "$($docker image inspect -f '{{index .Config.Labels "citizenwatt.stand-in"}}' "$image" 2>/dev/null)" = "$recipe" ]; then
  exit 0
fi
cache_dir="${CW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/citizenwatt}"
rootfs="$cache_dir/bookworm-minbase"
if [ ! -f "$rootfs/.complete" ]; then
  command -v debootstrap >/dev/null || bash "$(dirname "$0")/apt-install.sh" debootstrap
  rm -rf "$rootfs"
  mkdir -p "$cache_dir"
  mirror="$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
  debootstrap --variant=minbase bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >&2
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  touch "$rootfs/.complete"
fi
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/host-ca.crt"
# The official image's package sources (with -updates and -security: without them apt would install
# older packages than the host has), and this machine's apt settings for reaching its mirror.
rm -f "$rootfs/etc/apt/sources.list"
cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
for setting in /etc/apt/apt.conf.d/99artifact-registry; do
  [ -f "$setting" ] && cp "$setting" "$rootfs/etc/apt/apt.conf.d/"
done
# The official image's own apt and dpkg settings (no package caches left in layers, unsafe-io in
# builds), which this machine, itself made from that image, carries too.
for setting in /etc/apt/apt.conf.d/docker-* /etc/dpkg/dpkg.cfg.d/docker-*; do
  [ -f "$setting" ] && cp "$setting" "$rootfs$setting"
done
tar -C "$rootfs" --exclude=./.complete -c . \
  | $docker import --change 'ENV PIP_CERT=/etc/host-ca.crt' --change 'CMD ["bash"]' \
      --change "LABEL citizenwatt.stand-in=$recipe" - "$image" >/dev/null
echo "debian-base-image: imported $image from $rootfs" >&2
