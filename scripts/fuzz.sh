#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ (release, libFuzzer coverage instrumentation, no sanitizer:
# what `cargo fuzz build -O -s none` does, with plain cargo on stable Rust), runs each for a
# bounded time from its committed corpus, and fails on a crash; then runs every corpus and
# crash regression as an ordinary test on stable.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 15: build and run of all targets then take about 5 minutes
# on a 2-core machine from a warm cargo registry and a cold target directory (less when the
# target directory is warm). Crashes are written to fuzz/artifacts/<target>/. New corpus
# entries stay in a scratch directory unless FUZZ_KEEP_CORPUS=1, which adds them to
# fuzz/corpus/<target>/ (minimise before committing, see docs/fuzzing.md). FUZZ_SEED=N fixes
# libFuzzer's seed, so that a run is repeatable: CI uses it, so that its smoke run fails
# because of a change, not by luck; fuzz longer without it to explore.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-15}
shift || true
JOBS=${JOBS:-2}
export CARGO_TERM_COLOR=never
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/fuzz/target}
HOST=$(rustc -vV | sed -n 's/^host: //p')

TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  mapfile -t TARGETS < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^pingora-fuzz$')
fi

start=$(date +%s)
echo "== building the fuzz targets (release, sancov, no sanitizer); running: ${TARGETS[*]}"
# The flags cargo-fuzz passes for `-O -s none`, plus debug assertions and overflow checks.
# `--target` keeps them off build scripts and proc macros, as cargo-fuzz does.
RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  -Cdebug-assertions -Coverflow-checks ${RUSTFLAGS:-}" \
  cargo build --manifest-path fuzz/Cargo.toml --release --target "$HOST" --bins -j "$JOBS"
bin_dir=$CARGO_TARGET_DIR/$HOST/release
echo "   (build: $(( $(date +%s) - start )) s)"

seed=()
[ -z "${FUZZ_SEED:-}" ] || seed=(-seed="$FUZZ_SEED")

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in "${TARGETS[@]}"; do
  corpus=$scratch/$target
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  cp fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  cp fuzz/regressions/"$target"/* "$corpus"/ 2>/dev/null || true
  log=$scratch/$target.log
  status=0
  RUST_BACKTRACE=0 "$bin_dir/$target" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 ${seed[@]+"${seed[@]}"} \
    -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  if [ "$status" -ne 0 ]; then
    echo "== $target: CRASH (exit $status); input in fuzz/artifacts/$target/, log below"
    grep -v -e '^#[0-9]' -e '^stat::' "$log" | tail -25
    failed+=("$target")
  else
    echo "== $target: ${runs:-?} runs, ${secs:-?} exec/s, corpus $(ls "$corpus" | wc -l) inputs"
  fi
  if [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ]; then
    cp -n "$corpus"/* "fuzz/corpus/$target/" 2>/dev/null || true
  fi
done

echo "== corpus and regression tests on stable"
cargo test --manifest-path fuzz/Cargo.toml -j "$JOBS"

echo "== fuzzing done in $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "== crashes in: ${failed[*]}"
  exit 1
fi
