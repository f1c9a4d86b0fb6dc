#!/usr/bin/env bash
# The connection pool's criterion bench (pingora-pool/benches/pool.rs) on the current tree
# and on an older commit, in one run, with the ratio of every case both have.
#
#   bench/pool.sh [BASE]      BASE: a commit (default: the last one before pingora-core used
#                             pingora-pool, 5df50ce)
#
# The older commit is checked out in a temporary git worktree and built in its own target
# directory; the two benches run one after the other on the same machine. Criterion's medians
# are compared; "new/old" below 1 means the current tree is faster.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-5df50ce}
JOBS=${JOBS:-2}
work=$(mktemp -d /tmp/pool-bench.XXXXXX)
trap 'git worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git worktree add --detach -q "$work/old" "$BASE"
run() { # run DIR LABEL
  (cd "$1" && CRITERION_HOME="$work/$2" cargo bench -q -j "$JOBS" -p pingora-pool --bench pool \
    -- --noplot >"$work/$2.log" 2>&1) || { cat "$work/$2.log"; exit 1; }
}
echo "== bench at $BASE (old)"
CARGO_TARGET_DIR="$work/target-old" run "$work/old" old
echo "== bench of the current tree (new)"
run . new

python3 - "$work" <<'EOF'
import json, os, sys
root = sys.argv[1]
def medians(side):
    found = {}
    for dirpath, _, files in os.walk(os.path.join(root, side)):
        if os.path.basename(dirpath) == "new" and "estimates.json" in files:
            bench_id = os.path.relpath(os.path.dirname(dirpath), os.path.join(root, side))
            with open(os.path.join(dirpath, "estimates.json")) as f:
                found[bench_id] = json.load(f)["median"]["point_estimate"]
    return found
old, new = medians("old"), medians("new")
print(f"{'case':<58} {'old':>10} {'new':>10} {'new/old':>8}")
for case in sorted(new):
    o = old.get(case)
    ratio = f"{new[case] / o:8.2f}" if o else "       -"
    o_text = f"{o:8.0f}ns" if o else "         -"
    print(f"{case:<58} {o_text} {new[case]:8.0f}ns {ratio}")
EOF
