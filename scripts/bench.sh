#!/usr/bin/env bash
# Benchmarks: vccfs against a direct HTTP download measured in the same run.
# Builds in release mode, starts `vccfs emulator` (throttled: 30 ms latency, 25 MB/s per
# connection; and unthrottled), mounts it, runs each case and prints one table;
# results also go to target/bench/results.json.
# Usage: scripts/bench.sh [CASE...]  (sequential random grep persist rsync fleet media audit; all by
# default). `scale` runs only when named, e.g. small:
#   scripts/bench.sh scale --scale-interactions 50000 --scale-days 7
# `window` (issue 24: a live 60-day window within --catalog-memory) likewise:
#   scripts/bench.sh window --window-interactions 2000000 --window-days 60
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh bench
cargo build --release --quiet
mkdir -p target/bench
exec python3 scripts/bench.py "$@"
