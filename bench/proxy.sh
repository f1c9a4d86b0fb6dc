#!/usr/bin/env bash
# End-to-end proxy benchmark: nginx (origin, and as a proxy), HAProxy and our load_balancer
# example, on loopback, under the same wrk load. See docs/benchmarks.md.
#
#   bench/proxy.sh                 # full matrix, 3 runs each (about 10 minutes)
#   RUNS=1 DURATION=5 bench/proxy.sh   # a quick look
#   INSTR=0 bench/proxy.sh             # without the callgrind count of instructions per request
#   bench/proxy.sh --cache             # the cache benchmark (bench/proxy_cache.py)
#   PARTS=callgrind bench/proxy.sh --cache   # instructions per request under callgrind
#   PARTS=disk,diskcg bench/proxy.sh --cache # the disk store vs nginx on disk (DISK_DIRS), and under callgrind
#   BASE=old/load_balancer bench/proxy.sh --observe  # instructions per request, observability on/off
#   IDLE_CONNS=8000 bench/proxy.sh --idle   # memory per idle keepalive connection (bench/idle_memory.py)
#   bench/proxy.sh --tls               # TLS termination: ours (openssl, rustls) vs nginx and HAProxy (bench/proxy_tls.py)
#   bench/proxy.sh --compress          # compressing proxies: ours vs nginx `gzip on` (bench/proxy_compress.py)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
# Instructions per request (callgrind), on unless INSTR=0.
[ "${INSTR:-1}" = 0 ] || command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}"
fi

if [ "${1:-}" = "--cache" ]; then
  # The cache benchmark (bench/proxy_cache.py); its callgrind part needs valgrind.
  shift
  case "${PARTS:-}" in *callgrind*|*diskcg*)
    command -v valgrind >/dev/null 2>&1 || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"; $SUDO apt-get install -y -qq valgrind; } ;;
  esac
  cargo build --release -p pingora-proxy --example load_balancer --example cache_bench
  exec python3 bench/proxy_cache.py "$@"
fi
if [ "${1:-}" = "--observe" ]; then
  # Instructions per request with and without observability (bench/observe_cost.py).
  shift
  command -v valgrind >/dev/null 2>&1 || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"; $SUDO apt-get install -y -qq valgrind; }
  cargo build --release -p pingora-proxy --example load_balancer
  exec python3 bench/observe_cost.py "$@"
fi
if [ "${1:-}" = "--idle" ]; then
  # Memory per idle keepalive connection (bench/idle_memory.py).
  shift
  cargo build --release -p pingora-proxy --example load_balancer
  exec python3 bench/idle_memory.py "$@"
fi
if [ "${1:-}" = "--tls" ]; then
  # TLS termination vs nginx and HAProxy (bench/proxy_tls.py): our proxy built once per TLS
  # backend in TLS_BACKENDS, each copy kept beside the plain build.
  shift
  command -v openssl >/dev/null 2>&1 || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"; $SUDO apt-get install -y -qq openssl; }
  examples="${CARGO_TARGET_DIR:-target}/release/examples"
  for backend in $(echo "${TLS_BACKENDS:-openssl,rustls}" | tr ',' ' '); do
    cargo build --release -p pingora-proxy --example load_balancer --features "$backend"
    cp "$examples/load_balancer" "$examples/load_balancer-$backend"
  done
  exec python3 bench/proxy_tls.py "$@"
fi
if [ "${1:-}" = "--compress" ]; then
  # The compression benchmark (bench/proxy_compress.py); its checks decode with zstd and brotli.
  shift
  need=()
  command -v zstd >/dev/null 2>&1 || need+=(zstd)
  command -v brotli >/dev/null 2>&1 || need+=(brotli)
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y -qq "${need[@]}"
  fi
  cargo build --release -p pingora-proxy --example compress_bench
  exec python3 bench/proxy_compress.py "$@"
fi
cargo build --release -p pingora-proxy --example load_balancer
exec python3 bench/proxy.py "$@"
