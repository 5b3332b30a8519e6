#!/usr/bin/env bash
# Runs every test of restsip: formatting and lints, unit tests, the end-to-end tests against the
# real relay binary, and the browser tests of the wasm client and the demo page.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== wasm client lints for the browser target"
cargo clippy --locked -p restsip-wasm --target wasm32-unknown-unknown --all-targets -- -D warnings

echo "== unit and end-to-end tests"
# The end-to-end tests start the relay binary built here.
cargo build --locked -p relay-server
cargo test --workspace --locked

echo "== fuzz: every parser of network input, ${FUZZ_SECONDS:-20} s each"
bash scripts/fuzz.sh

echo "== browser: the wasm client in headless Chromium, the demo page, a Vite build"
bash scripts/test-browser.sh

echo "== size of the browser package"
bash scripts/wasm-size.sh
