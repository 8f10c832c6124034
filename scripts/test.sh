#!/usr/bin/env bash
# The whole test suite: unit, property, emulator and end-to-end FUSE tests.
# Installs missing system packages (fuse3, ffmpeg, rsync, ...) when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
cargo build --all-targets --quiet
cargo test --all-targets 2>&1
