#!/usr/bin/env bash
# Runs every fuzz target (cargo fuzz: coverage-guided libFuzzer, on the stable toolchain with
# no sanitizer: Rust's own panics, overflow checks and the targets' assertions end a run with
# the input that caused them) for FUZZ_SECONDS each (default 20), from the committed seeds
# (fuzz/seeds/TARGET) plus the corpus earlier runs grew (fuzz/corpus/TARGET, not committed).
# Usage: scripts/fuzz.sh [TARGET...]        A crash leaves its input in fuzz/artifacts/TARGET/.
# Reproduce one: cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

SECONDS_EACH=${FUZZ_SECONDS:-20}
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(sip_message sip_stream sip_headers sdp soap_envelope rest_json bencode dtmf_relay)
fi

cargo fuzz build -s none >/dev/null 2>&1 || cargo fuzz build -s none
failed=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" fuzz/logs
  # Not in artifacts/: cargo fuzz takes the newest file there for the failing input.
  log="fuzz/logs/$t.log"
  # -rss_limit_mb: a parser that holds gigabytes for one input is a bug too.
  if cargo fuzz run -s none "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 -max_len=70000 \
      -print_final_stats=1 >"$log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    printf 'fuzz %-14s ok: %s runs in %ss, coverage %s edges, corpus %s inputs\n' \
      "$t" "${runs:-?}" "$SECONDS_EACH" "${cov:-?}" "$(ls "fuzz/corpus/$t" | wc -l)"
  else
    echo "fuzz $t FAILED: the input is in fuzz/artifacts/$t/; what failed:"
    grep -a -m1 -A12 "panicked at" "$log" || tail -c 3000 "$log"
    failed=1
  fi
done
exit "$failed"
