#!/usr/bin/env bash
# Starts the Redis deployments the failover tests of challenge/redisstore run
# against, on loopback, and exports where they are:
#
#   - a Redis Cluster of 3 primaries and 3 replicas, 127.0.0.1:7101-7106,
#     made with `redis-cli --cluster create`:
#     STEPUP_REDIS_CLUSTER=127.0.0.1:7101,...,127.0.0.1:7106
#   - a primary (7111) with two replicas (7112, 7113) watched by three
#     Sentinels (7121-7123) under the master name "stepup":
#     STEPUP_REDIS_SENTINEL=127.0.0.1:7121,127.0.0.1:7122,127.0.0.1:7123
#
#   source .ci/redis-cluster.sh          # start (or reuse) both; exports the two variables
#   bash .ci/redis-cluster.sh stop       # stop every server it started
#
# Every node runs from a config file under $STEPUP_REDIS_CLUSTER_DIR
# (default ${TMPDIR:-/tmp}/stepup-redis-cluster), with noeviction, no
# persistence, no delay before a full resync, and short failure timeouts (cluster-node-timeout 1000 ms,
# Sentinel down-after-milliseconds 1000), so that a failover takes seconds.
# The tests kill primaries (SIGKILL) and restart them from the same file
# (INFO server gives the executable and the config file), so a node that
# comes back rejoins as a replica. It installs Debian's redis-server and
# redis-sentinel when missing (root or sudo needed). Sourcing it never
# exits the calling shell; it returns non-zero on failure.

_stepup_cluster_dir=${STEPUP_REDIS_CLUSTER_DIR:-${TMPDIR:-/tmp}/stepup-redis-cluster}
_stepup_cluster_ports="7101 7102 7103 7104 7105 7106"
_stepup_sentinel_redis="7111 7112 7113"
_stepup_sentinel_ports="7121 7122 7123"

_stepup_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null || true)" = PONG ]; }

_stepup_wait() { # port what
	local i
	for i in $(seq 1 100); do
		_stepup_ping "$1" && return 0
		sleep 0.1
	done
	echo "redis-cluster.sh: $2 on 127.0.0.1:$1 does not answer after 10s; its log:" >&2
	tail -n 20 "$_stepup_cluster_dir/$1/log" >&2 2>/dev/null || true
	return 1
}

_stepup_install() {
	local sudo="" missing=()
	command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || missing+=(redis-server)
	command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || { echo "redis-cluster.sh: installing ${missing[*]} needs root or sudo" >&2; return 1; }
		sudo=sudo
	fi
	echo "redis-cluster.sh: installing ${missing[*]} (apt-get)" >&2
	$sudo apt-get update -qq >&2 || return 1
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

_stepup_node() { # port bin extra-config-lines...
	local port=$1 bin d="$_stepup_cluster_dir/$1"
	bin=$(command -v "$2") || return 1 # absolute: INFO server reports it as the executable
	shift 2
	_stepup_ping "$port" && return 0
	mkdir -p "$d"
	rm -f "$d/nodes.conf"
	{
		echo "bind 127.0.0.1"
		echo "port $port"
		echo "dir $d"
		echo "daemonize yes"
		echo "pidfile $d/pid"
		echo "logfile $d/log"
		echo "save \"\""
		echo "appendonly no"
		echo "maxmemory-policy noeviction"
		echo "repl-diskless-sync-delay 0" # a restarted node resyncs at once
		printf '%s\n' "$@"
	} >"$d/redis.conf"
	"$bin" "$d/redis.conf" >&2 || return 1
	_stepup_wait "$port" "$bin"
}

_stepup_cluster_start() {
	local p addrs=() i
	for p in $_stepup_cluster_ports; do
		_stepup_node "$p" redis-server "cluster-enabled yes" "cluster-config-file nodes.conf" \
			"cluster-node-timeout 1000" "cluster-replica-validity-factor 0" || return 1
		addrs+=("127.0.0.1:$p")
	done
	if ! redis-cli -p 7101 cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
		if [ "$(redis-cli -p 7101 cluster info 2>/dev/null | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')" = 1 ]; then
			echo "redis-cluster.sh: creating the cluster (3 primaries, 3 replicas)" >&2
			redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$_stepup_cluster_dir/create.log" 2>&1 || {
				cat "$_stepup_cluster_dir/create.log" >&2
				return 1
			}
		fi
		for i in $(seq 1 150); do
			redis-cli -p 7101 cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
			sleep 0.1
		done
		redis-cli -p 7101 cluster info 2>/dev/null | grep -q 'cluster_state:ok' || {
			echo "redis-cluster.sh: the cluster is not ok after 15s" >&2
			return 1
		}
	fi
	# Every primary has its replica attached before a test kills one.
	for i in $(seq 1 150); do
		[ "$(redis-cli -p 7101 cluster nodes 2>/dev/null | grep -c 'slave.*connected')" -ge 3 ] && break
		sleep 0.1
	done
	STEPUP_REDIS_CLUSTER=$(
		IFS=,
		echo "${addrs[*]}"
	)
	export STEPUP_REDIS_CLUSTER
}

_stepup_sentinel_start() {
	local p addrs=() d
	_stepup_node 7111 redis-server || return 1
	for p in 7112 7113; do
		_stepup_node "$p" redis-server "replicaof 127.0.0.1 7111" || return 1
	done
	for p in $_stepup_sentinel_ports; do
		addrs+=("127.0.0.1:$p")
		_stepup_ping "$p" && continue
		d="$_stepup_cluster_dir/$p"
		mkdir -p "$d"
		cat >"$d/sentinel.conf" <<-EOF
			bind 127.0.0.1
			port $p
			dir $d
			daemonize yes
			pidfile $d/pid
			logfile $d/log
			sentinel monitor stepup 127.0.0.1 7111 2
			sentinel down-after-milliseconds stepup 1000
			sentinel failover-timeout stepup 4000
			sentinel parallel-syncs stepup 1
		EOF
		"$(command -v redis-sentinel)" "$d/sentinel.conf" >&2 || return 1
		_stepup_wait "$p" redis-sentinel || return 1
	done
	STEPUP_REDIS_SENTINEL=$(
		IFS=,
		echo "${addrs[*]}"
	)
	export STEPUP_REDIS_SENTINEL
}

_stepup_cluster_stop() {
	local p
	for p in $_stepup_sentinel_ports $_stepup_sentinel_redis $_stepup_cluster_ports; do
		redis-cli -h 127.0.0.1 -p "$p" shutdown nosave >/dev/null 2>&1 || true
	done
	rm -rf "$_stepup_cluster_dir"
}

_stepup_cluster_main() {
	case "${1:-start}" in
	stop)
		_stepup_cluster_stop
		;;
	start)
		_stepup_install || return 1
		mkdir -p "$_stepup_cluster_dir"
		_stepup_cluster_start || return 1
		_stepup_sentinel_start || return 1
		echo "redis-cluster.sh: Redis Cluster on $STEPUP_REDIS_CLUSTER; Sentinels on $STEPUP_REDIS_SENTINEL (master stepup)" >&2
		echo "export STEPUP_REDIS_CLUSTER=$STEPUP_REDIS_CLUSTER STEPUP_REDIS_SENTINEL=$STEPUP_REDIS_SENTINEL"
		;;
	*)
		echo "usage: redis-cluster.sh [start|stop]" >&2
		return 2
		;;
	esac
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
	_stepup_cluster_main "$@"
else
	_stepup_cluster_main "$@"
	exit $?
fi
