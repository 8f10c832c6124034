#!/usr/bin/env bash
# Benchmarks: vccfs against a direct HTTP download measured in the same run.
# Builds in release mode, starts `vccfs emulator` (throttled: 30 ms latency, 25 MB/s per
# connection; and unthrottled), mounts it, runs each case and prints one table;
# results also go to target/bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh bench
cargo build --release --quiet
mkdir -p target/bench
exec python3 scripts/bench.py "$@"
