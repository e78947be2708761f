#!/usr/bin/env bash
# Runs every test: installs the test tools on first use (scripts/install-test-deps.sh),
# then the unit, integration and end-to-end tests of the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/authtrail-target}"
scripts/install-test-deps.sh
cargo test --workspace --locked "$@"
