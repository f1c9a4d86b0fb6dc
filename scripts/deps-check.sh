#!/usr/bin/env bash
# Checks the workspace against both ends of the version ranges in its Cargo.toml files, so that
# a dependency release that breaks us (or a lower bound that was never true) is found here rather
# than by our users. Run it by hand when dependencies change and before each release, then
# record the result in docs/dependencies.md.
#
#   newest   a fresh `cargo update` (the newest versions the ranges allow), then
#            `cargo check --all-targets` and the unit tests of every crate (`cargo test --lib`)
#   minimal  every direct dependency at the lowest version its range allows
#            (`cargo update -Z direct-minimal-versions`, a nightly flag enabled here through
#            RUSTC_BOOTSTRAP=1), then `cargo check --all-targets`; when it fails, raise the
#            lower bound in the root Cargo.toml to a version that builds
#
#   scripts/deps-check.sh              # both passes
#   scripts/deps-check.sh minimal      # one of them
#
# The committed Cargo.lock is never touched: the passes run in a copy of the work tree (tracked
# and untracked-but-not-ignored files) with its own lock file. They build with their own target
# directory, since their versions differ from the usual build's: DEPS_CHECK_TARGET_DIR (default
# target/deps-check, which also holds the copy). JOBS sets cargo's -j (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

passes=("$@")
[ ${#passes[@]} -eq 0 ] && passes=(newest minimal)
for p in "${passes[@]}"; do
  case "$p" in
    newest | minimal) ;;
    *) echo "unknown pass '$p' (expected: newest, minimal)" >&2; exit 2 ;;
  esac
done

target=${DEPS_CHECK_TARGET_DIR:-$repo/target/deps-check}
JOBS=${JOBS:-2}
export CARGO_TARGET_DIR="$target"
export CARGO_TERM_COLOR=never
# Every optional part of the workspace but `boringssl`, which cannot be enabled next to
# `openssl` (the pingora-boringssl crate itself is a workspace member, checked all the same).
features="pingora/document-features pingora/openssl pingora/s2n pingora/rustls"

# A fresh copy of the work tree at $target/workspace (a fixed place, so that the copy's crates
# keep their fingerprints from one run to the next).
copy_workspace() {
  local dest="$target/workspace"
  cd "$repo"
  rm -rf "$dest"
  mkdir -p "$dest"
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done |
    tar --null -T - -cf - | tar -xf - -C "$dest"
  echo "$dest"
}

# The direct dependencies of the workspace members, as resolved in the copy's lock file.
direct_versions() {
  cargo tree --workspace --depth 1 --edges normal,build,dev --prefix none --no-dedupe --features "$features" |
    grep -v ' (/' | sed 's/ (\*)$//' | sort -u | tr '\n' ' '
  echo
}

failed=()
run() {
  local pass=$1
  shift
  echo "== [$pass] $*"
  if ! "$@"; then
    failed+=("$pass: $*")
    return 1
  fi
}

newest() {
  cd "$(copy_workspace)"
  run newest cargo update || return 0
  echo "== [newest] direct dependencies: $(direct_versions)"
  run newest cargo check --workspace --all-targets --features "$features" -j "$JOBS" || true
  run newest cargo test --workspace --lib --features "$features" -j "$JOBS" || true
}

minimal() {
  cd "$(copy_workspace)"
  run minimal env RUSTC_BOOTSTRAP=1 cargo update -Z direct-minimal-versions || return 0
  echo "== [minimal] direct dependencies: $(direct_versions)"
  run minimal cargo check --workspace --all-targets --features "$features" -j "$JOBS" || true
}

for p in "${passes[@]}"; do
  "$p"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "== deps-check FAILED:"
  printf '   %s\n' "${failed[@]}"
  exit 1
fi
echo "== deps-check passed: ${passes[*]} ($(date -u +%Y-%m-%d), $(rustc --version))"
