#!/usr/bin/env bash
# Media benchmarks on loopback, with a release build of the relay (figures only, no thresholds):
#   bench/media.sh [--calls N]            dial → first audio packet, browser ⇄ browser and
#                                         browser ⇄ phone (bench/media.mjs)
#   bench/media.sh --concurrent [OPTIONS] concurrent browser ⇄ phone calls (bench/media-calls.mjs;
#                                         --calls N, --seconds S, --codec pcmu|opus)
# Needs what scripts/setup.sh installs (Chromium, baresip, rtpengine, the npm tooling) and the
# wasm package (built here by scripts/wasm.sh when www/pkg is missing). Runs in a network
# namespace with only loopback when `unshare -n` is allowed (every ICE candidate 127.0.0.1),
# as the browser ⇄ phone test does. RESTSIP_RELAY_BIN overrides the relay binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

script=bench/media.mjs
if [ "${1:-}" = "--concurrent" ]; then
  script=bench/media-calls.mjs
  shift
fi
if [ -z "${RESTSIP_RELAY_BIN:-}" ]; then
  cargo build --locked --release -p relay-server
  export RESTSIP_RELAY_BIN=target/release/relay-server
fi
if [ "$script" = bench/media.mjs ] && [ ! -f www/pkg/restsip_wasm.js ]; then
  bash scripts/wasm.sh >/dev/null
fi
if unshare -n true 2>/dev/null; then
  exec unshare -n bash -c 'ip link set lo up && exec "$@"' _ node "$script" "$@"
fi
echo "(unshare -n refused: running on the host's network)" >&2
exec node "$script" "$@"
