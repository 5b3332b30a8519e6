#!/usr/bin/env bash
# Builds the browser package and prints the size of what a page downloads: the .wasm and the
# JS glue, raw and gzip -9 (the glue also bundled with its snippets — the small JS shims of
# src/js.rs — and minified with esbuild, as JsSIP's and SIP.js's bundles are measured).
# Budget: 36 KB gzip for .wasm + glue with calls with media (30 KB before them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/wasm.sh >/dev/null
pkg=wasm-client/pkg
wasm=$(stat -c %s "$pkg/restsip_wasm_bg.wasm")
wasm_gz=$(gzip -9c "$pkg/restsip_wasm_bg.wasm" | wc -c)
js=$(stat -c %s "$pkg/restsip_wasm.js")
js_gz=$(gzip -9c "$pkg/restsip_wasm.js" | wc -c)
js_min_gz=$(node_modules/.bin/esbuild --bundle --minify --format=esm --log-level=error "$pkg/restsip_wasm.js" | gzip -9c | wc -c)
printf '%-28s %9s %9s\n' "file" "bytes" "gzip -9"
printf '%-28s %9d %9d\n' "restsip_wasm_bg.wasm" "$wasm" "$wasm_gz"
printf '%-28s %9d %9d\n' "restsip_wasm.js (glue)" "$js" "$js_gz"
printf '%-28s %9s %9d\n' "glue + snippets, minified" "-" "$js_min_gz"
total=$((wasm_gz + js_min_gz))
budget=36864
printf '%-28s %9s %9d  (budget %d; JsSIP 3.13.8: 56525, SIP.js 0.21.2: 63590)\n' "total (.wasm + min glue)" "-" "$total" "$budget"
[ "$total" -le "$budget" ] || { echo "over the budget by $((total - budget)) bytes" >&2; exit 1; }
