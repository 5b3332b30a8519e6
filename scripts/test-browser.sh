#!/usr/bin/env bash
# Browser tests of the wasm client: starts a real relay on a free port, then runs the
# wasm_bindgen_test suite (wasm-client/tests/browser.rs) in Debian's headless Chromium with
# RELAY_URL compiled in, then the page test of www/ (two browser contexts, two users), the calls
# with media between two pages (fake microphones, audio through WebRTC) and the bundler build;
# then a page calling a real SIP phone (baresip) and back through a relay and rtpengine of the
# test's own (tests/browser/phone.test.mjs), in a network namespace with only loopback. Stops the
# relay afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

relay_bin=${RESTSIP_RELAY_BIN:-target/debug/relay-server}
[ -x "$relay_bin" ] || cargo build --locked -p relay-server
work=$(mktemp -d)
relay_pid=
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Lifetimes down to 1 s, so the refresh test runs in seconds. Everything here is on loopback,
# the SOAP test's SERVICE target (the relay's own SIP address) included: private targets allowed.
"$relay_bin" --http 127.0.0.1:0 --sip 127.0.0.1:0 --database "sqlite:$work/relay.db" --www www \
  --min-expires 1 --allow-private-targets > "$work/stdout" 2> "$work/stderr" &
relay_pid=$!
for _ in $(seq 1 100); do
  url=$(head -n1 "$work/stdout" 2>/dev/null | grep -o 'http://[0-9.:]*' || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || { echo "relay did not start"; cat "$work/stderr"; exit 1; }
# The SIP address is the second line (restsip relay sip on udp+tcp ADDR).
for _ in $(seq 1 50); do
  sip=$(sed -n 2p "$work/stdout" 2>/dev/null | grep -o '[0-9.]*:[0-9]*$' || true)
  [ -n "$sip" ] && break
  sleep 0.1
done
echo "browser tests against $url (sip ${sip:-none})"

RELAY_URL="$url" RELAY_SIP="${sip:-127.0.0.1:5060}" wasm-pack test --mode no-install --headless --chrome \
  --chromedriver /usr/bin/chromedriver wasm-client

echo "== the demo page, two users in two browser contexts"
bash scripts/wasm.sh >/dev/null
echo "== the generated typings against a typed page (tsc --strict)"
node_modules/.bin/tsc -p tests/browser/tsconfig.json
RELAY_URL="$url" node --test tests/browser/page.test.mjs tests/browser/media.test.mjs \
  tests/browser/bundler.test.mjs

echo "== a page and a SIP phone (baresip) through the relay and rtpengine"
# In a network namespace of its own with only loopback (we run as root), every ICE candidate of
# Chromium and rtpengine is 127.0.0.1 and no port range can collide with another run's; where
# unshare is refused, on the host's network (the candidates then include its other addresses).
phone_test=(node --test tests/browser/phone.test.mjs)
if unshare -n true 2>/dev/null; then
  RESTSIP_RELAY_BIN="$relay_bin" unshare -n bash -c 'ip link set lo up && exec "$@"' _ "${phone_test[@]}"
else
  echo "(unshare -n refused: running on the host's network)"
  RESTSIP_RELAY_BIN="$relay_bin" "${phone_test[@]}"
fi
