#!/usr/bin/env bash
# Two runs on one machine must neither share a Redis nor stop each other's.
# This starts what two runs of `make test` start (.ci/redis.sh and
# .ci/redis-cluster.sh, each run in a shell of its own, both at once), then
# checks that:
#   - no address of one run is an address of the other;
#   - stopping the first run leaves every server of the second answering,
#     its cluster ok and its Sentinels naming their primary;
#   - stopping the second run leaves none of the servers of either running.
# It uses nothing fixed (ports, directories): it can run beside `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d "${TMPDIR:-/tmp}/stepup-isolation.XXXXXXXX")
cleanup() {
	local r
	for r in a b; do
		[ -f "$work/$r.env" ] || continue
		(
			# shellcheck source=/dev/null
			source "$work/$r.env"
			bash .ci/redis.sh stop || true
			bash .ci/redis-cluster.sh stop || true
		)
	done
	rm -rf "$work"
}
trap cleanup EXIT

# start name: what one run starts; its variables go to $work/name.env.
start() {
	local name=$1
	shift # what the scripts are sourced with: nothing
	(
		unset STEPUP_REDIS_ADDR STEPUP_REDIS_DIR STEPUP_REDIS_CLUSTER STEPUP_REDIS_SENTINEL STEPUP_REDIS_CLUSTER_DIR
		source .ci/redis.sh
		source .ci/redis-cluster.sh
		for v in STEPUP_REDIS_ADDR STEPUP_REDIS_DIR STEPUP_REDIS_CLUSTER STEPUP_REDIS_SENTINEL STEPUP_REDIS_CLUSTER_DIR; do
			printf 'export %s=%q\n' "$v" "${!v:-}"
		done >"$work/$name.env"
	) >"$work/$name.log" 2>&1
}
start a &
pa=$!
start b &
pb=$!
fail=0
wait "$pa" || fail=1
wait "$pb" || fail=1
if [ "$fail" -ne 0 ]; then
	echo "isolation-test: a run could not start its servers:" >&2
	cat "$work"/*.log >&2
	exit 1
fi

# addrs name: every address of the run, one per line.
addrs() {
	(
		# shellcheck source=/dev/null
		source "$work/$1.env"
		echo "$STEPUP_REDIS_ADDR"
		echo "$STEPUP_REDIS_CLUSTER,$STEPUP_REDIS_SENTINEL" | tr ',' '\n'
	) | sort -u
}
# sentinel_redis name: the addresses of the Sentinels' primary and replicas.
sentinel_redis() {
	(
		# shellcheck source=/dev/null
		source "$work/$1.env"
		echo "$STEPUP_REDIS_SENTINEL" | tr ',' '\n' | while read -r s; do
			redis-cli -h 127.0.0.1 -p "${s#127.0.0.1:}" sentinel master stepup 2>/dev/null |
				paste - - | awk '$1 == "ip" { ip = $2 } $1 == "port" { print ip ":" $2 }'
			redis-cli -h 127.0.0.1 -p "${s#127.0.0.1:}" sentinel replicas stepup 2>/dev/null |
				paste - - | awk '$1 == "ip" { ip = $2 } $1 == "port" { print ip ":" $2 }'
		done
	) | sort -u
}
answers() { [ "$(redis-cli -h 127.0.0.1 -p "${1#127.0.0.1:}" ping 2>/dev/null || true)" = PONG ]; }

all_a=$( (addrs a; sentinel_redis a) | sort -u)
all_b=$( (addrs b; sentinel_redis b) | sort -u)
[ "$(echo "$all_a" | wc -l)" -eq 13 ] && [ "$(echo "$all_b" | wc -l)" -eq 13 ] || {
	echo "isolation-test: want 13 addresses per run (a server, 6 cluster nodes, 3 Sentinel data nodes, 3 Sentinels), got:" >&2
	echo "a: $all_a" >&2
	echo "b: $all_b" >&2
	exit 1
}
shared=$(comm -12 <(echo "$all_a") <(echo "$all_b"))
if [ -n "$shared" ]; then
	echo "isolation-test: FAIL: the two runs share $(echo "$shared" | wc -l) addresses: $(echo "$shared" | tr '\n' ' ')" >&2
	exit 1
fi

(
	# shellcheck source=/dev/null
	source "$work/a.env"
	bash .ci/redis.sh stop
	bash .ci/redis-cluster.sh stop
)
rm -f "$work/a.env"
down=()
for x in $all_b; do answers "$x" || down+=("$x"); done
if [ ${#down[@]} -gt 0 ]; then
	echo "isolation-test: FAIL: stopping the first run stopped servers of the second: ${down[*]}" >&2
	exit 1
fi
# shellcheck source=/dev/null
first=$(source "$work/b.env" && echo "${STEPUP_REDIS_CLUSTER%%,*}")
redis-cli -h 127.0.0.1 -p "${first#127.0.0.1:}" cluster info | grep -q 'cluster_state:ok' || {
	echo "isolation-test: FAIL: the second run's cluster is not ok after the first run stopped" >&2
	exit 1
}
for x in $all_a; do
	if answers "$x"; then
		echo "isolation-test: FAIL: $x of the first run still answers after its stop" >&2
		exit 1
	fi
done

(
	# shellcheck source=/dev/null
	source "$work/b.env"
	bash .ci/redis.sh stop
	bash .ci/redis-cluster.sh stop
	[ ! -e "$STEPUP_REDIS_DIR" ] && [ ! -e "$STEPUP_REDIS_CLUSTER_DIR" ] || {
		echo "isolation-test: FAIL: a run's directory is left after its stop" >&2
		exit 1
	}
)
rm -f "$work/b.env"
for x in $all_b; do
	if answers "$x"; then
		echo "isolation-test: FAIL: $x of the second run still answers after its stop" >&2
		exit 1
	fi
done
echo "isolation-test: two runs side by side: 13 servers each, no address shared, each stopped only its own"
