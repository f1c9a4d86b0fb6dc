#!/usr/bin/env bash
# Compression throughput on one core: our encoders and decoders (pingora-core's criterion
# bench `compression`, fed 16 KiB at a time, each piece flushed, as in the proxy) against the
# gzip, zstd and brotli command-line tools on the same 1 MiB of the repository's text, in the
# same run.
# See docs/benchmarks.md, "Compression".
#
#   bench/compression.sh                            # about 2 minutes after the build
#   COMPRESSION_BROTLI_11=1 bench/compression.sh    # brotli's level 11 under criterion too (+30 s)
#   bench/compression.sh gzip                       # a criterion filter: our gzip rows only
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v gzip >/dev/null 2>&1 || need+=(gzip)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v brotli >/dev/null 2>&1 || need+=(brotli)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pingora-compression-XXXXXX")
trap 'rm -rf "$work"' EXIT

# The bench writes the corpus and our compressed sizes for the comparison below.
COMPRESSION_CORPUS_OUT="$work/corpus" COMPRESSION_SIZES_OUT="$work/sizes.tsv" \
  CRITERION_HOME="$work/criterion" \
  cargo bench -p pingora-core --bench compression -- --noplot "$@"
python3 bench/compression.py "$work"
