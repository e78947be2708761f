#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, once per machine (later runs
# find everything cached and return in a second):
#   - the Kafka-compatible broker tansu (built from crates.io, ~12-20 minutes once);
#   - a Python virtualenv with the real clients and readers the end-to-end tests use:
#     confluent-kafka (producer), duckdb and pyarrow (independent lake readers), selenium
#     (drives the web UI), moto (an S3-compatible server with conditional writes, for the
#     lake on object storage);
#   - Debian packages: prometheus (for `promtool check metrics`), chromium and
#     chromium-driver (headless browser for the web UI test).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

"$here/install-tansu.sh" >/dev/null

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  # As root (CI), or through sudo for a developer.
  as_root=()
  if ((EUID != 0)); then as_root=(sudo --preserve-env=DEBIAN_FRONTEND); fi
  "${as_root[@]}" apt-get update -qq >&2
  "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

venv="${AUTHTRAIL_VENV:-$HOME/.cache/authtrail-venv}"
requirements="$here/test-requirements.txt"
stamp="$venv/.authtrail-requirements"
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$requirements" "$stamp"; then
  echo "creating the test virtualenv in $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi
