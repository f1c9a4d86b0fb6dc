#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/integration/doc tests.
# Installs the system packages the tests use when they are missing (Debian/Ubuntu, apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
command -v h2load >/dev/null 2>&1 || need_pkgs+=(nghttp2-client)
command -v wrk >/dev/null 2>&1 || need_pkgs+=(wrk)
# TLS: `openssl s_client` is a test peer; openssl-sys needs pkg-config and libssl-dev;
# BoringSSL (pingora-boringssl) is built from source with cmake, clang and libclang-dev.
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need_pkgs+=(libssl-dev)
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
command -v clang >/dev/null 2>&1 || need_pkgs+=(clang)
dpkg -s libclang-dev >/dev/null 2>&1 || need_pkgs+=(libclang-dev)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need_pkgs[@]}"
fi

# Each step prints its name, and its time when the next one starts.
STEP_NAME=""
STEP_START=$(date +%s)
SUITE_START=$STEP_START
step() {
  local now
  now=$(date +%s)
  [ -z "$STEP_NAME" ] || echo "   ($STEP_NAME: $((now - STEP_START)) s)"
  STEP_NAME=$1
  STEP_START=$now
  [ -z "$1" ] || echo "== $1"
}

export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1
JOBS=${JOBS:-2}

step "cargo fmt --check"
cargo fmt --all -- --check

# What crates.io would receive, without building it: metadata and file lists. Not verified,
# because a verifying build resolves sibling crates from the registry, where `pingora-*` are
# Pingora's. The tests and benches left out of the packages (`exclude` in the root Cargo.toml)
# make cargo warn once per dropped target; those expected lines are filtered out.
step "cargo package --workspace --no-verify"
cargo package --workspace --no-verify --allow-dirty 2>&1 |
  { grep -v -e '^warning: ignoring .* is not included in the published package$' || true; }

step "pingora-core's module layers (no import cycle)"
python3 scripts/check-layers.py >/dev/null || python3 scripts/check-layers.py

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -j "$JOBS" -- -D warnings

step "cargo test (lib, bins, tests, examples, doc tests)"
cargo test --workspace -j "$JOBS"

step "cargo build --benches (every bench compiles and links; they are run by hand, see docs/benchmarks.md)"
cargo build --workspace --benches -j "$JOBS"

# The TLS conformance suite: pingora-core/tests/tls_{openssl,s2n,rustls}.rs run in the
# workspace tests above; tls_boringssl.rs needs --features boringssl (BoringSSL never links
# next to OpenSSL), see below.

# Not --all-features: `openssl` and `boringssl` cannot link into one binary, and pingora-core
# refuses to build with both. Every other feature, then boringssl on its own.
step "cargo test -p pingora with every feature but boringssl (the umbrella's optional parts)"
cargo test -p pingora --features "time proxy lb cache upstream_modules openssl s2n rustls sentry" -j "$JOBS"
# pingora-core's own openssl feature makes its TLS API OpenSSL-shaped (TlsRef = SslRef, TlsSettings
# derefs to the acceptor builder); the conformance suite's checks of that shape need it on. The
# feature set is the one pingora-core just got, so its library build is reused.
cargo test -p pingora-core --features "openssl s2n rustls sentry" --test tls_openssl -j "$JOBS"

step "cargo check --examples of the crates with examples, with openssl and with boringssl (issue #23: Pingora's programs have our counterparts, and they build with each OpenSSL-family backend)"
cargo check -p pingora-core -p pingora-proxy -p pingora-load-balancing --examples \
  --features "pingora-core/openssl pingora-core/sentry pingora-core/connection_filter pingora-proxy/upstream_modules" \
  -j "$JOBS"

step "cargo check -p pingora --features boringssl (the umbrella wired to BoringSSL)"
cargo check -p pingora --features "proxy lb cache boringssl" --all-targets -j "$JOBS"
cargo check -p pingora-core -p pingora-proxy --examples --features "pingora-core/boringssl" -j "$JOBS"

# `sentry` rides along with this build of pingora-core (its own feature set anyway): the unit
# tests compile with it, and the daemons of the process tests report their panics.
step "cargo test -p pingora-core --features boringssl,sentry (unit tests and the TLS conformance suite on BoringSSL; daemons' crash reports)"
cargo test -p pingora-core --features "boringssl sentry" --lib --test tls_boringssl -j "$JOBS"
cargo test -p pingora-core --features "boringssl sentry" --test lifecycle_processes -j "$JOBS" -- sentry

step "docs build with -D warnings (with the umbrella's generated feature table)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --features pingora/document-features \
  -j "$JOBS" >/dev/null

step "fuzz targets: fmt, clippy, build, 15 s per target with a fixed seed, corpus tests (scripts/fuzz.sh)"
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -j "$JOBS" -- -D warnings
FUZZ_SEED=1 scripts/fuzz.sh

step ""
# The target directory's size, so a suite that grows toward the disk's free space shows it.
echo "== target directories: $(du -shc "${CARGO_TARGET_DIR:-target}" fuzz/target 2>/dev/null | tail -1 | cut -f1)," \
  "disk free: $(df -h --output=avail . | tail -1 | tr -d ' ')"
echo "== all tests passed in $(( $(date +%s) - SUITE_START )) s"
