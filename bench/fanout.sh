#!/usr/bin/env bash
# Fan-out: WATCHERS (default 10,000) watchers of one call over SSE and over the WebSocket, on
# the release relay and on bare axum (the same-run reference). Prints the time until all are
# streaming after connecting at once, RSS per watcher, and change delivery percentiles.
# Usage: [WATCHERS=N] [CHANGES=N] bench/fanout.sh [--only sse|ws] [--relay PATH]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Every watcher is a descriptor in the client and one in the server (both inherit this).
want=65536
hard="$(ulimit -Hn)"
if [[ "$hard" != unlimited && "$hard" -lt "$want" ]]; then
    want="$hard"
fi
ulimit -n "$want"
if [[ -z "${RESTSIP_RELAY_BIN:-}" ]]; then
    cargo build --release -p relay-server -p restsip-bench
    relay=(--relay target/release/relay-server)
else
    cargo build --release -p restsip-bench
    relay=(--relay "$RESTSIP_RELAY_BIN")
fi
exec target/release/fanout-bench "${relay[@]}" \
    --watchers "${WATCHERS:-10000}" --changes "${CHANGES:-5}" "$@"
