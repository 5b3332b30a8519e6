#!/usr/bin/env bash
# Installs what restsip's build and tests need, idempotently: fast when everything is present.
# Run by scripts/test.sh; safe to run by hand.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  log "cargo is missing: install Rust (rustup) first"
  exit 1
fi

# Components used by the test command.
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    log "adding rustup component ${component}"
    rustup component add "${component}"
  fi
done

# The wasm client is checked to build for the browser target.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding rustup target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
