#!/usr/bin/env bash
# Build vccfs and mount the built-in synthetic contact center at $1 (default /tmp/vcc).
set -euo pipefail
cd "$(dirname "$0")/.."
mnt=${1:-/tmp/vcc}
scripts/deps.sh demo
cargo build --release --quiet
mkdir -p "$mnt"
exec target/release/vccfs demo "$mnt"
