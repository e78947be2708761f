#!/usr/bin/env bash
# Installs the Kafka-compatible broker `tansu` used by the end-to-end tests, once per
# machine: later runs find it in the cache and return at once.
#
# Built with the `dynostore` (in-memory engine) and `libsql` (durable sqlite engine, for
# tests that restart the broker) storage features.
set -euo pipefail

TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
TOOLS_ROOT="${AUTHTRAIL_TOOLS:-$HOME/.cache/authtrail-tools}"
bin="$TOOLS_ROOT/bin/tansu"
stamp="$TOOLS_ROOT/tansu-$TANSU_VERSION-dynostore-libsql.stamp"

if [[ -x "$bin" && -f "$stamp" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$TOOLS_ROOT"
echo "installing tansu $TANSU_VERSION into $TOOLS_ROOT (takes ~12 minutes once)" >&2
CARGO_TARGET_DIR="$TOOLS_ROOT/target" cargo install tansu \
  --version "$TANSU_VERSION" --locked --features dynostore,libsql \
  --root "$TOOLS_ROOT" >&2
rm -rf "$TOOLS_ROOT/target"
touch "$stamp"
echo "$bin"
