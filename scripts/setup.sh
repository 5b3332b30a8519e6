#!/usr/bin/env bash
# Installs what restsip's build and tests need, idempotently: fast when everything is present.
# Run by scripts/test.sh; safe to run by hand.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export DEBIAN_FRONTEND=noninteractive

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

# Debian packages: Chromium and its driver for the browser tests, sipp and Kamailio (an
# upstream SIP server, tests/sip/kamailio-upstream.cfg; its presence and presence_xml modules
# for the presence test) for the SIP tests, baresip (a softphone, tests/sip/interop.rs;
# `baresip-core` has the binary and the modules it uses: ctrl_tcp, cons, presence, aubridge),
# and rtpengine (`rtpengine-daemon`: the media relay between browsers and SIP phones, run in
# userspace by tests/sip/media/ and by scripts/run.sh). `setup.sh run` installs rtpengine
# only, and goes on without it when it cannot (calls with phones are then refused).
APT_PKGS=(chromium chromium-driver sip-tester kamailio kamailio-presence-modules baresip-core rtpengine-daemon)
# sipvicious: svwar, the extension scanner tests/sip/enumeration.rs runs (issue 18).
APT_PKGS+=(sipvicious)
[ "${1:-}" = "run" ] && APT_PKGS=(rtpengine-daemon)
missing=()
for p in "${APT_PKGS[@]+"${APT_PKGS[@]}"}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "apt-get install ${missing[*]}"
  install_missing() {
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
    $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}"
  }
  if [ "${1:-}" = "run" ]; then
    install_missing || log "could not install ${missing[*]}: calls between browsers and SIP phones will be refused"
  else
    install_missing
  fi
fi

# The wasm-bindgen CLI must equal the wasm-bindgen crate in Cargo.lock; wasm-pack is pinned too.
# (wasm-bindgen-cli installs without --locked: its own lockfile pins a crate the registry lacks.)
have_version() { command -v "$1" >/dev/null 2>&1 && [ "$("$1" --version 2>/dev/null | awk '{print $2}')" = "$2" ]; }
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if ! have_version wasm-bindgen "$WASM_BINDGEN_VERSION" || ! have_version wasm-bindgen-test-runner "$WASM_BINDGEN_VERSION"; then
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi
WASM_PACK_VERSION=0.15.1
if ! have_version wasm-pack "$WASM_PACK_VERSION"; then
  log "cargo install wasm-pack $WASM_PACK_VERSION (a few minutes, once)"
  cargo install wasm-pack --version "$WASM_PACK_VERSION" --locked --force \
    || cargo install wasm-pack --version "$WASM_PACK_VERSION" --force
fi

# cargo-fuzz runs the fuzz targets (scripts/fuzz.sh) on the stable toolchain.
CARGO_FUZZ_VERSION=0.13.2
if [ "${1:-}" != "run" ] && ! { command -v cargo-fuzz >/dev/null 2>&1 \
    && [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" = "$CARGO_FUZZ_VERSION" ]; }; then
  log "cargo install cargo-fuzz $CARGO_FUZZ_VERSION (a few minutes, once)"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force
fi

# Node tooling from package-lock.json: binaryen 132's wasm-opt, playwright-core, vite.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  if ! npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1; then
    # The lock lists every platform's optional packages (@rollup/rollup-*): npm ci accepts it.
    # With omit-lockfile-registry-resolved (set on these machines) npm 11 rewrites a lock
    # without them, which npm ci then refuses; regenerate it with
    # `npm install --package-lock-only --omit-lockfile-registry-resolved=false`. Meanwhile,
    # install from it instead.
    npm install --no-audit --no-fund --no-save --loglevel=error
  fi
fi
