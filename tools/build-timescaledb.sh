#!/usr/bin/env bash
# Builds TimescaleDB from ../shared/vendor into a private copy of Debian's PostgreSQL 15 tree, once,
# in a cache outside the checkout, and prints that tree's bin folder.
#
# Why a private copy: installing the extension into /usr/lib/postgresql/15 would make every cluster on
# the machine list timescaledb as available, including ones that do not preload it. Debian's server is
# relocatable, so a copy of its lib/ and share/ trees with the extension added is a complete server of
# its own. The cache is keyed on the source archive's checksum and the server's version, so a new
# archive or a PostgreSQL point release rebuilds it; a finished tree carries a stamp file, so a build cut
# short is never mistaken for a good one.
#
# Environment: CW_TIMESCALEDB_SOURCE (the .tar.gz; default ../shared/vendor/timescaledb-2.28.3.tar.gz, or
# the same beside the local repository this checkout was cloned from),
# CW_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/citizenwatt).
set -euo pipefail
project_root="$(cd "$(dirname "$0")/.." && pwd)"
archive_name=timescaledb-2.28.3.tar.gz
source_archive="${CW_TIMESCALEDB_SOURCE:-$project_root/../shared/vendor/$archive_name}"
if [ -z "${CW_TIMESCALEDB_SOURCE:-}" ] && [ ! -f "$source_archive" ]; then
  # A checkout cloned elsewhere (the README's test command clones into a temporary folder): the
  # archive beside the local repository it was cloned from, if it was cloned from one.
  origin="$(git -C "$project_root" config --get remote.origin.url 2>/dev/null || true)"
  origin="${origin#file://}"
  if [ -n "$origin" ] && [ -d "$origin" ] && [ -f "$origin/../shared/vendor/$archive_name" ]; then
    source_archive="$(cd "$origin/.." && pwd)/shared/vendor/$archive_name"
  fi
fi
cache_dir="${CW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/citizenwatt}"
pg_bindir_system=/usr/lib/postgresql/15/bin

if [ ! -f "$source_archive" ]; then
  echo "build-timescaledb: no source archive at $source_archive (set CW_TIMESCALEDB_SOURCE)" >&2
  exit 3
fi

need=(postgresql-server-dev-15 cmake gcc make libssl-dev)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  bash "$project_root/tools/apt-install.sh" "${missing[@]}" >&2
fi

server_version="$("$pg_bindir_system/postgres" --version | awk '{print $3}')"
archive_sum="$(sha256sum "$source_archive" | cut -c1-16)"
root="$cache_dir/timescaledb-$archive_sum-pg$server_version"
if [ -f "$root/.complete" ]; then
  echo "$root/lib/postgresql/15/bin"
  exit 0
fi

mkdir -p "$cache_dir"
work="$(mktemp -d "$cache_dir/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
started=$SECONDS
echo "build-timescaledb: building $(basename "$source_archive") for PostgreSQL $server_version in $work" >&2
tar -xzf "$source_archive" -C "$work"
src="$(find "$work" -maxdepth 1 -mindepth 1 -type d | head -n1)"
(
  cd "$src"
  ./bootstrap -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DAPACHE_ONLY=OFF \
    -DPG_CONFIG="$pg_bindir_system/pg_config" >"$work/bootstrap.log" 2>&1
  cd build
  make -j"$(nproc)" >"$work/make.log" 2>&1
  make install DESTDIR="$work/stage" >"$work/install.log" 2>&1
) || { echo "build-timescaledb: build failed; last lines:" >&2; tail -n 30 "$work"/*.log >&2; exit 1; }

# The private tree: Debian's server, then the extension's files on top of it.
tree="$work/tree"
mkdir -p "$tree/lib/postgresql" "$tree/share/postgresql"
cp -a /usr/lib/postgresql/15 "$tree/lib/postgresql/15"
cp -a /usr/share/postgresql/15 "$tree/share/postgresql/15"
cp -a "$work/stage/usr/lib/postgresql/15/lib/." "$tree/lib/postgresql/15/lib/"
cp -a "$work/stage/usr/share/postgresql/15/extension/." "$tree/share/postgresql/15/extension/"
touch "$tree/.complete"
rm -rf "$root"
mv "$tree" "$root"
echo "build-timescaledb: done in $((SECONDS - started)) s -> $root" >&2
echo "$root/lib/postgresql/15/bin"
