#!/usr/bin/env bash
# Runs restsip on this machine: builds the browser package the demo page imports, starts
# rtpengine beside the relay when it is installed (userspace, loopback, ng on 127.0.0.1:2223,
# media ports 30000-30199, DTMF events logged to the relay on 127.0.0.1:2224; its log in
# data/rtpengine.log) for calls between browsers and SIP phones, then the relay with its
# embedded defaults (HTTP on 127.0.0.1:8080, SIP on 127.0.0.1:5060, SQLite in data/restsip.db)
# and --rtpengine, --rtpengine-dtmf. Extra arguments go to
# relay-server (see `relay-server --help`); with --rtpengine among them (or RESTSIP_RTPENGINE
# set) no rtpengine is started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh run
bash scripts/wasm.sh >/dev/null
media=()
given=no
for arg in "$@"; do
  case "$arg" in --rtpengine|--rtpengine=*) given=yes ;; esac
done
if [ "$given" = no ] && [ -z "${RESTSIP_RTPENGINE:-}" ]; then
  if command -v rtpengine >/dev/null 2>&1; then
    ng=127.0.0.1:2223
    dtmf=127.0.0.1:2224
    mkdir -p data
    # --config-file=none: the packaged /etc/rtpengine/rtpengine.conf sets other values.
    rtpengine --config-file=none --foreground --log-stderr --table=-1 --interface=127.0.0.1 \
      --listen-ng="$ng" --port-min=30000 --port-max=30199 --dtmf-log-dest="$dtmf" \
      2>data/rtpengine.log &
    rtpengine_pid=$!
    trap 'kill "$rtpengine_pid" 2>/dev/null || true' EXIT
    sleep 0.3
    if ! kill -0 "$rtpengine_pid" 2>/dev/null; then
      echo "run: rtpengine did not start (see data/rtpengine.log; is $ng taken?)" >&2
    fi
    media=(--rtpengine "$ng" --rtpengine-dtmf "$dtmf")
  else
    echo "run: rtpengine is not installed: calls between browsers and SIP phones are refused" >&2
  fi
fi
cargo run --locked --release -p relay-server -- "${media[@]+"${media[@]}"}" "$@"
