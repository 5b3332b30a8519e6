#!/usr/bin/env bash
# Builds the browser package with wasm-pack (offline: the pinned wasm-bindgen CLI from
# scripts/setup.sh, never a download), then optimises it with npm's binaryen 132 (Debian's
# wasm-opt corrupts wasm-bindgen output). Out: wasm-client/pkg, an npm package of an ES module
# that pages import directly and bundlers such as Vite bundle; www/pkg is the copy the demo page
# imports.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# --converge repeats -Oz while it still shrinks the module; --low-memory-unused and
# --zero-filled-memory hold for a Rust module (its data and stack start at 1 MiB, its memory is
# its own, so fresh and zeroed).
optimise() {
  node_modules/.bin/wasm-opt -Oz --converge --low-memory-unused --zero-filled-memory --strip-debug --strip-producers --enable-bulk-memory \
    --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    --enable-reference-types --enable-multivalue \
    "$1/restsip_wasm_bg.wasm" -o "$1/restsip_wasm_bg.wasm"
  # Short import names instead of wasm-bindgen's hashed ones, in the .wasm and the glue alike.
  node wasm-client/short-imports.mjs "$1/restsip_wasm_bg.wasm" "$1/restsip_wasm.js"
}
wasm-pack build --mode no-install --profile wasm --target web --out-dir pkg --no-opt wasm-client >&2
optimise wasm-client/pkg
rm -rf www/pkg && cp -r wasm-client/pkg www/pkg
