#!/usr/bin/env bash
# Runs restsip on this machine: builds the browser package the demo page imports, then starts
# the relay with its embedded defaults (HTTP on 127.0.0.1:8080, SIP on 127.0.0.1:5060, SQLite in
# data/restsip.db). Extra arguments go to relay-server (see `relay-server --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh run
bash scripts/wasm.sh >/dev/null
exec cargo run --locked --release -p relay-server -- "$@"
