#!/usr/bin/env bash
# A bounded soak of the release relay: mixed REST, streams and SIP load at a fixed rate for
# DURATION seconds, printing every minute the relay's RSS, open descriptors, errors by kind and
# latency p50/p99 per operation (bench/src/soak). Exits non-zero on any error.
# Settings (environment): DURATION (s, default 1800), RATE (operations/s, default 400), PHONES
# (50), EVERY (s between reports, 60), RELAY and DRIVER (binaries; default the release builds,
# with SKIP_BUILD=1 to use them as they are). Extra arguments go to the driver (soak --help).
# Only loopback: the relay listens on 127.0.0.1 ports chosen by the kernel.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
DURATION=${DURATION:-1800}
RATE=${RATE:-400}
PHONES=${PHONES:-50}
EVERY=${EVERY:-60}
RELAY=${RELAY:-target/release/relay-server}
DRIVER=${DRIVER:-target/release/soak}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p relay-server -p restsip-bench
fi
work="$(mktemp -d)"
relay_pid=""
cleanup() {
  if [[ -n "$relay_pid" ]]; then kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The relay, quiet (per-request logs would be part of what is measured), SIP digest off as in
# bench/sip-register.sh (the phones are plain UDP sockets).
RUST_LOG=${RUST_LOG:-warn} "$RELAY" \
  --http 127.0.0.1:0 --sip 127.0.0.1:0 --sip-auth off \
  --database "sqlite:$work/soak.db" --www "$work" \
  >"$work/stdout" 2>"$work/stderr" &
relay_pid=$!
http="" sip=""
for _ in $(seq 1 300); do
  http=$(sed -n 's|^restsip relay listening on http://\([0-9.:]*\).*|\1|p' "$work/stdout" | head -1)
  sip=$(sed -n 's|^restsip relay sip on udp+tcp \([0-9.:]*\).*|\1|p' "$work/stdout" | head -1)
  [[ -n "$http" && -n "$sip" ]] && break
  kill -0 "$relay_pid" 2>/dev/null || { cat "$work/stderr" >&2; echo "soak: the relay exited" >&2; exit 2; }
  sleep 0.1
done
[[ -n "$http" && -n "$sip" ]] || { echo "soak: the relay did not say where it listens" >&2; exit 2; }
echo "relay pid $relay_pid, http $http, sip $sip; machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

status=0
"$DRIVER" --http "$http" --sip "$sip" --pid "$relay_pid" \
  --seconds "$DURATION" --rate "$RATE" --phones "$PHONES" --every "$EVERY" "$@" || status=$?
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if ! kill -0 "$relay_pid" 2>/dev/null; then
  echo "soak: the relay died during the run" >&2
  status=1
fi
if grep -qiE "panicked|ERROR" "$work/stderr"; then
  echo "soak: the relay logged errors:" >&2
  grep -iE "panicked|ERROR" "$work/stderr" | head -20 >&2
  status=1
fi
exit "$status"
