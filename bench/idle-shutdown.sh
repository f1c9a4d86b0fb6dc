#!/usr/bin/env bash
# Graceful shutdown with many idle keepalive connections: a server process (the
# `lifecycle_server` example inside the `lifecycle_processes` test binary) serves one request on
# each of CONNS connections, which then stay idle; SIGTERM; every connection must be closed
# cleanly (EOF, no reset) well within the grace period and the process must exit with status 0.
# Prints how long the closing and the exit took after the signal.
#
#   bench/idle-shutdown.sh [CONNS]    CONNS: connections (default 8000; the CI case opens 2000)
#
# Environment: RUNS (default 3), PROFILE (the cargo profile of the test binary, and so of the
# server: default dev, or release), JOBS (default 2). Needs CONNS + 512 file
# descriptors in both the client and the server process (`ulimit -n`).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-8000}
RUNS=${RUNS:-3}
PROFILE=${PROFILE:-dev}
JOBS=${JOBS:-2}

need=$((CONNS + 512))
if [ "$(ulimit -n)" -lt "$need" ] && ! ulimit -n "$need" 2>/dev/null; then
  echo "needs $need file descriptors; ulimit -n is $(ulimit -n)" >&2
  exit 1
fi

cargo test -q -j "$JOBS" --profile "$PROFILE" -p pingora-core --test lifecycle_processes --no-run
for run in $(seq 1 "$RUNS"); do
  echo "== run $run of $RUNS: $CONNS idle connections, profile $PROFILE"
  IDLE_CONNS=$CONNS cargo test -q -j "$JOBS" --profile "$PROFILE" -p pingora-core \
    --test lifecycle_processes -- --exact sigterm_closes_idle_keepalive_connections |
    grep -E '^    |^test '
done
