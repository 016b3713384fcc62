#!/usr/bin/env bash
# Compares BenchmarkCalls between a base revision and the working tree in
# alternating runs, so that both see the same machine: the way to judge a
# change of a few percent on a shared machine (docs/PERFORMANCE.md).
#
#   bash .ci/bench-compare.sh BASE [ROUNDS] [BENCH]
#
# BASE is any git revision; ROUNDS (default 4) alternations of 2 counts
# each; BENCH (default 'BenchmarkCalls/^(a|c|d|e)') the -bench pattern.
# The test binaries are built once, then run in turn (base, then the
# working tree), and the x-limit table of each side is printed.
#
# BENCHTIME (default 2s), COUNT (counts per round, default 2) and TABLE
# (the awk script that prints the table, default .ci/bench-table.awk) change
# what is run and printed; the Redis store against the store in process
# (docs/PERFORMANCE.md), with STEPUP_REDIS_ADDR set:
#
#   BENCHTIME=3000x COUNT=1 TABLE=.ci/scale-table.awk bash .ci/bench-compare.sh BASE 5 \
#     'BenchmarkScaleCallers/callers=(1|16|64|256)/'
set -euo pipefail

base=${1:?usage: bash .ci/bench-compare.sh BASE [ROUNDS] [BENCH]}
rounds=${2:-4}
bench=${3:-'BenchmarkCalls/^(a|c|d|e)'}
benchtime=${BENCHTIME:-2s}
count=${COUNT:-2}
table=${TABLE:-.ci/bench-table.awk}
root=$(git rev-parse --show-toplevel)
rev=$(git -C "$root" rev-parse --verify "$base^{commit}")
work=$(mktemp -d)
cleanup() {
	git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

git -C "$root" worktree add --detach --quiet "$work/base" "$rev"
(cd "$work/base" && go test -c -o "$work/base.test" ./interceptor/)
(cd "$root" && go test -c -o "$work/head.test" ./interceptor/)

for r in $(seq 1 "$rounds"); do
	for side in base head; do
		dir=$root
		[ "$side" = base ] && dir=$work/base
		echo "round $r/$rounds: $side" >&2
		# A failed benchmark (a store that timed out under load) is reported
		# and left out of the table; the other rounds still count.
		(cd "$dir/interceptor" && "$work/$side.test" -test.run '^$' -test.bench "$bench" \
			-test.benchmem -test.benchtime "$benchtime" -test.count "$count") >>"$work/$side.out" ||
			{ echo "round $r/$rounds: $side: a benchmark failed:" >&2; grep -A2 -- '--- FAIL' "$work/$side.out" | tail -3 >&2; }
	done
done

echo "== base ${base} (${rev:0:12}), $((count * rounds)) counts"
awk -f "$root/$table" "$work/base.out"
echo "== working tree, $((count * rounds)) counts"
awk -f "$root/$table" "$work/head.out"
