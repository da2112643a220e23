#!/bin/sh
# Creates the broker accounts on first start and keeps their secrets in $SECRETS_DIR.
# Nothing is hard-coded: each password is random, generated once, readable by the services
# that mount the secrets volume. Run by the `mqtt-init` compose service (and by the tests).
# Usage: init-accounts.sh <secrets dir> <account>...
set -eu
secrets_dir=$1
shift
mkdir -p "$secrets_dir"
password_file="$secrets_dir/mosquitto.passwd"
touch "$password_file"
chmod 0640 "$password_file"
for account in "$@"; do
  secret="$secrets_dir/$account.password"
  if [ ! -s "$secret" ]; then
    umask 077
    head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$secret"
    echo "created broker account $account"
  fi
  mosquitto_passwd -b "$password_file" "$account" "$(cat "$secret")"
done
