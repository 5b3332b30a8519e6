#!/usr/bin/env bash
# Runs every test of restsip: formatting and lints, unit tests, the wasm client's build for
# the browser target, and the end-to-end tests against the real relay binary.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== wasm client builds for the browser"
cargo build --locked -p restsip-wasm --target wasm32-unknown-unknown

echo "== unit and end-to-end tests"
# The end-to-end tests start the relay binary built here.
cargo build --locked -p relay-server
cargo test --workspace --locked
