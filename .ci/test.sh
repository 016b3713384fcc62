#!/usr/bin/env bash
# make test: every test with the race detector. The Redis-backed tests need a
# redis-server: with STEPUP_REDIS_ADDR set, that one is used (.ci/run starts
# it with .ci/redis.sh); otherwise, when redis-server is installed, one of
# this run is started on a free loopback port and stopped afterwards. The
# same for the Redis Cluster and Sentinel of the failover tests. Two runs on
# one machine (two checkouts, two CI jobs) each get their own.
# Whatever cannot run here is said loudly, before and after the results.
set -euo pipefail
cd "$(dirname "$0")/.."

skipped=()
# What this run starts, it stops on exit: by the PIDs in the run's own
# directories (.ci/redis-node.sh), never by port, so that another run on the
# same machine keeps its servers.
stops=()
trap 'for s in "${stops[@]}"; do eval "$s"; done' EXIT
if [ -z "${STEPUP_REDIS_ADDR:-}" ]; then
	if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
		unset STEPUP_REDIS_DIR
		source .ci/redis.sh
		stops+=("STEPUP_REDIS_DIR=$STEPUP_REDIS_DIR bash .ci/redis.sh stop")
		echo "make test: started redis-server on $STEPUP_REDIS_ADDR for the Redis tests (stopped on exit)"
	else
		skipped+=("the Redis-backed tests (challenge/redisstore, gateway replicas): no redis-server installed, no STEPUP_REDIS_ADDR (source .ci/redis.sh installs and starts one)")
	fi
fi
# The failover tests: a Redis Cluster and a Sentinel deployment of this run,
# on free loopback ports (.ci/redis-cluster.sh), stopped on exit.
if [ -z "${STEPUP_REDIS_CLUSTER:-}" ] || [ -z "${STEPUP_REDIS_SENTINEL:-}" ]; then
	if command -v redis-server >/dev/null 2>&1 && command -v redis-sentinel >/dev/null 2>&1; then
		unset STEPUP_REDIS_CLUSTER_DIR
		source .ci/redis-cluster.sh
		stops+=("STEPUP_REDIS_CLUSTER_DIR=$STEPUP_REDIS_CLUSTER_DIR bash .ci/redis-cluster.sh stop")
		echo "make test: Redis Cluster and Sentinel for the failover tests on $STEPUP_REDIS_CLUSTER, $STEPUP_REDIS_SENTINEL (stopped on exit)"
	else
		skipped+=("the Redis Cluster and Sentinel failover tests (challenge/redisstore): redis-server or redis-sentinel missing (source .ci/redis-cluster.sh installs and starts them)")
	fi
fi
[ -d gateway/testdata/node-backend/node_modules ] ||
	skipped+=("the Node backend tests (gateway, make gateway-demo): npm ci --prefix gateway/testdata/node-backend")
if [ -z "${STEPUP_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
	skipped+=("the approver page's browser tests (approval/) and the demo's browser step: no chromium (apt-get install chromium)")
fi
command -v protoc >/dev/null 2>&1 || skipped+=("the protoc half of the proto vendoring test: no protoc (Debian's protobuf-compiler)")

banner() {
	if [ ${#skipped[@]} -gt 0 ]; then
		echo "================================================================"
		echo "make test: NOT THE FULL SUITE. Skipped here:"
		printf '  - %s\n' "${skipped[@]}"
		echo "================================================================"
	fi
}
banner
status=0
go test -race -count=1 ./... || status=$?
banner
exit "$status"
