#!/usr/bin/env bash
# Kill -9 cycles of the disk cache: the `cache` example (inside the `cache_disk_faults` test
# binary) with `--disk`, every other start with `--tiered`, in front of a slow origin; clients
# request new objects of 64-320 KiB and old ones; SIGKILL while writes are in progress; restart
# on the same directory. Every whole response must be its object's exact bytes, every object
# complete on disk before a kill must be a hit after it, no file may fail its checks at start.
# Prints one line per cycle, then "cycles N, objects checked M, corrupt 0".
#
#   bench/cache_kill.sh [CYCLES]    CYCLES: kill cycles (default 20; the CI test runs 3)
#
# Environment: PROFILE (the cargo profile of the test binary, and so of the proxy: default
# release, or dev), JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${1:-20}
PROFILE=${PROFILE:-release}
JOBS=${JOBS:-2}

cargo test -q -j "$JOBS" --profile "$PROFILE" -p pingora-proxy --test cache_disk_faults --no-run
CYCLES=$CYCLES cargo test -q -j "$JOBS" --profile "$PROFILE" -p pingora-proxy \
  --test cache_disk_faults -- --exact kill_9_under_load_never_serves_a_cut_object |
  grep -E '^cycle|^test '
