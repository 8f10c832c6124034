#!/usr/bin/env bash
# The whole test suite: unit, property, emulator and end-to-end FUSE tests.
# Installs missing system packages (fuse3, ffmpeg, rsync, ...) when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
cargo build --all-targets --quiet
# Model-checked lock protocols (src/sync.rs): shuttle's random scheduler over the
# cache's single-flight, passthrough's decide/release and the catalog's day listing.
# SHUTTLE_ITERATIONS (default per test) explores more schedules.
cargo test --features shuttle --lib shuttle 2>&1
cargo test --all-targets 2>&1
