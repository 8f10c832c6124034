#!/usr/bin/env bash
# Make sure the system tools vccfs's demo and tests use are present.
# As root, installs what is missing with apt-get; otherwise says what to install.
# Usage: scripts/deps.sh [demo|test|bench]
set -euo pipefail
want=${1:-test}

# command:package pairs
pairs=("fusermount3:fuse3")
if [ "$want" != demo ]; then
  pairs+=("ffprobe:ffmpeg" "ffmpeg:ffmpeg" "rsync:rsync" "curl:curl" "cmp:diffutils" "getfattr:attr")
fi
if [ "$want" != demo ]; then
  pairs+=("redis-server:redis-server" "openssl:openssl")
fi
if [ "$want" = bench ]; then
  pairs+=("python3:python3")
fi

missing=()
for p in "${pairs[@]}"; do
  cmd=${p%%:*}; pkg=${p#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
# de-duplicate
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -e /dev/fuse ]; then
  if [ "$(id -u)" = 0 ]; then
    modprobe fuse 2>/dev/null || true
  fi
  if [ ! -e /dev/fuse ]; then
    echo "deps: /dev/fuse is missing: load the fuse kernel module (sudo modprobe fuse)" >&2
    exit 1
  fi
fi
