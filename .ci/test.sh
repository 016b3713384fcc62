#!/usr/bin/env bash
# make test: every test with the race detector. The Redis-backed tests need a
# redis-server: with STEPUP_REDIS_ADDR set, that one is used (.ci/run starts
# it with .ci/redis.sh); otherwise, when redis-server is installed, a
# throwaway one is started on a free loopback port and stopped afterwards.
# Whatever cannot run here is said loudly, before and after the results.
set -euo pipefail
cd "$(dirname "$0")/.."

skipped=()
redis_trap=":" cluster_trap=":"
trap 'eval "$redis_trap"; eval "$cluster_trap"' EXIT
if [ -z "${STEPUP_REDIS_ADDR:-}" ]; then
	if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
		for port in $(seq 6391 6399); do
			if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
		done
		dir=$(mktemp -d)
		redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
			--maxmemory-policy noeviction --daemonize yes --dir "$dir" \
			--pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
		redis_trap='redis-cli -h 127.0.0.1 -p '"$port"' shutdown nosave >/dev/null 2>&1 || true; rm -rf '"$dir"
		for _ in $(seq 1 50); do
			[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && break
			sleep 0.1
		done
		export STEPUP_REDIS_ADDR="127.0.0.1:$port"
		echo "make test: started redis-server on $STEPUP_REDIS_ADDR for the Redis tests (stopped on exit)"
	else
		skipped+=("the Redis-backed tests (challenge/redisstore, gateway replicas): no redis-server installed, no STEPUP_REDIS_ADDR (source .ci/redis.sh installs and starts one)")
	fi
fi
# The failover tests: a Redis Cluster and a Sentinel deployment on fixed
# loopback ports (.ci/redis-cluster.sh), reused when already running,
# stopped afterwards when started here.
if [ -z "${STEPUP_REDIS_CLUSTER:-}" ] || [ -z "${STEPUP_REDIS_SENTINEL:-}" ]; then
	if command -v redis-server >/dev/null 2>&1 && command -v redis-sentinel >/dev/null 2>&1; then
		if [ "$(redis-cli -h 127.0.0.1 -p 7101 ping 2>/dev/null || true)" != PONG ]; then
			cluster_trap='bash .ci/redis-cluster.sh stop'
		fi
		source .ci/redis-cluster.sh
		echo "make test: Redis Cluster and Sentinel for the failover tests on $STEPUP_REDIS_CLUSTER, $STEPUP_REDIS_SENTINEL"
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
