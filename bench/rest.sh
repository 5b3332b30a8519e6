#!/usr/bin/env bash
# Builds the relay and the benchmark in release mode, then runs the benchmark.
# Usage: bench/rest.sh [--seconds 5] [--connections 32] [--senders 8] [--warmup 1] [...]
# (bench/rest.sh --help lists every option)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release -p relay-server -p restsip-bench
exec target/release/rest-bench "$@"
