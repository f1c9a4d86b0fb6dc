#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/integration/doc tests.
# Installs the system packages the tests use when they are missing (Debian/Ubuntu, apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v h2load >/dev/null 2>&1 || need_pkgs+=(nghttp2-client)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need_pkgs[@]}"
fi

export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1
JOBS=${JOBS:-2}

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -j "$JOBS" -- -D warnings

echo "== cargo test (lib, bins, tests, examples, doc tests)"
cargo test --workspace -j "$JOBS"

echo "== cargo test -p pingora --all-features (the umbrella's optional parts)"
cargo test -p pingora --all-features -j "$JOBS"

echo "== docs build with -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -j "$JOBS" >/dev/null

echo "== all tests passed"
