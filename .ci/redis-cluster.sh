#!/usr/bin/env bash
# Starts the Redis deployments the failover tests of challenge/redisstore run
# against, on loopback, and exports where they are:
#
#   - a Redis Cluster of 3 primaries and 3 replicas, made with
#     `redis-cli --cluster create`:
#     STEPUP_REDIS_CLUSTER=127.0.0.1:<port>,... (six nodes)
#   - a primary with two replicas watched by three Sentinels under the
#     master name "stepup":
#     STEPUP_REDIS_SENTINEL=127.0.0.1:<port>,... (the three Sentinels)
#   - STEPUP_REDIS_CLUSTER_DIR, the run's directory: one subdirectory per
#     process (config file, pidfile, log). The failover tests kill and
#     restart only processes whose config file lies in it.
#
#   source .ci/redis-cluster.sh          # start both; exports the three variables
#   bash .ci/redis-cluster.sh stop       # stop every process of $STEPUP_REDIS_CLUSTER_DIR, remove it
#
# Every run gets deployments of its own (.ci/redis-node.sh: ports picked among
# free ones, processes stopped by PID, never by port), so two runs on one
# machine do not meet; sourcing it again in the same shell reuses the
# deployments of $STEPUP_REDIS_CLUSTER_DIR while every process runs. Every node runs with noeviction, no
# persistence, no delay before a full resync, and short failure timeouts
# (cluster-node-timeout 1000 ms, Sentinel down-after-milliseconds 1000), so
# that a failover takes seconds. The tests kill primaries (SIGKILL) and
# restart them from the same file (INFO server gives the executable and the
# config file), so a node that comes back rejoins as a replica. It installs
# Debian's redis-server and redis-sentinel when missing (root or sudo
# needed). Sourcing it never exits the calling shell; it returns non-zero
# on failure.

# shellcheck source=redis-node.sh
source "$(dirname "${BASH_SOURCE[0]}")/redis-node.sh"

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

# The settings of every data node.
_stepup_data_node=("save \"\"" "appendonly no" "maxmemory-policy noeviction"
	"repl-diskless-sync-delay 0") # a restarted node resyncs at once

_stepup_cluster_start() { # root
	local root=$1 i p addrs=() first
	for i in 1 2 3 4 5 6; do
		p=$(_stepup_start "$root/cluster-$i" redis-server "${_stepup_data_node[@]}" "cluster-enabled yes" \
			"cluster-config-file nodes.conf" "cluster-node-timeout 1000" "cluster-replica-validity-factor 0") || return 1
		addrs+=("127.0.0.1:$p")
	done
	first=${addrs[0]#127.0.0.1:}
	echo "redis-cluster.sh: creating the cluster (3 primaries, 3 replicas)" >&2
	redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$root/create.log" 2>&1 || {
		cat "$root/create.log" >&2
		return 1
	}
	for i in $(seq 1 150); do
		redis-cli -p "$first" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
		sleep 0.1
	done
	redis-cli -p "$first" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || {
		echo "redis-cluster.sh: the cluster is not ok after 15s" >&2
		return 1
	}
	# Every primary has its replica attached before a test kills one.
	for i in $(seq 1 150); do
		[ "$(redis-cli -p "$first" cluster nodes 2>/dev/null | grep -c 'slave.*connected')" -ge 3 ] && break
		sleep 0.1
	done
	STEPUP_REDIS_CLUSTER=$(
		IFS=,
		echo "${addrs[*]}"
	)
}

_stepup_sentinel_start() { # root
	local root=$1 i p primary addrs=()
	primary=$(_stepup_start "$root/sentinel-redis-1" redis-server "${_stepup_data_node[@]}") || return 1
	for i in 2 3; do
		_stepup_start "$root/sentinel-redis-$i" redis-server "${_stepup_data_node[@]}" "replicaof 127.0.0.1 $primary" >/dev/null || return 1
	done
	for i in 1 2 3; do
		p=$(_stepup_start "$root/sentinel-$i" redis-sentinel \
			"sentinel monitor stepup 127.0.0.1 $primary 2" \
			"sentinel down-after-milliseconds stepup 1000" \
			"sentinel failover-timeout stepup 4000" \
			"sentinel parallel-syncs stepup 1") || return 1
		addrs+=("127.0.0.1:$p")
	done
	STEPUP_REDIS_SENTINEL=$(
		IFS=,
		echo "${addrs[*]}"
	)
}

# _stepup_cluster_alive root: whether every process of the run in root
# still runs (then its deployments are reused).
_stepup_cluster_alive() {
	local root=$1 d n=0
	[ -f "$root/env" ] || return 1
	for d in "$root"/*/; do
		[ -f "$d/redis.conf" ] || continue
		_stepup_owned "$(cat "$d/pid" 2>/dev/null)" "${d%/}" || return 1
		n=$((n + 1))
	done
	[ "$n" -eq 12 ]
}

_stepup_cluster_main() {
	local root
	case "${1:-start}" in
	stop)
		if [ -z "${STEPUP_REDIS_CLUSTER_DIR:-}" ]; then
			echo "redis-cluster.sh stop: STEPUP_REDIS_CLUSTER_DIR is not set (it names the run whose deployments to stop)" >&2
			return 1
		fi
		_stepup_stop_run "$STEPUP_REDIS_CLUSTER_DIR"
		;;
	start)
		_stepup_install || return 1
		root=$(_stepup_run_dir STEPUP_REDIS_CLUSTER_DIR) || return 1
		if _stepup_cluster_alive "$root"; then
			# shellcheck source=/dev/null
			source "$root/env"
		else
			_stepup_stop_run "$root"
			mkdir -p "$root"
			if ! _stepup_cluster_start "$root" || ! _stepup_sentinel_start "$root"; then
				_stepup_stop_run "$root"
				return 1
			fi
			echo "STEPUP_REDIS_CLUSTER=$STEPUP_REDIS_CLUSTER STEPUP_REDIS_SENTINEL=$STEPUP_REDIS_SENTINEL" >"$root/env"
			echo "redis-cluster.sh: Redis Cluster on $STEPUP_REDIS_CLUSTER; Sentinels on $STEPUP_REDIS_SENTINEL" \
				"(master stepup); directory $root" >&2
		fi
		STEPUP_REDIS_CLUSTER_DIR=$root
		export STEPUP_REDIS_CLUSTER STEPUP_REDIS_SENTINEL STEPUP_REDIS_CLUSTER_DIR
		echo "export STEPUP_REDIS_CLUSTER=$STEPUP_REDIS_CLUSTER STEPUP_REDIS_SENTINEL=$STEPUP_REDIS_SENTINEL STEPUP_REDIS_CLUSTER_DIR=$root"
		;;
	*)
		echo "usage: redis-cluster.sh [start|stop]" >&2
		return 2
		;;
	esac
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
	_stepup_cluster_main start >/dev/null
else
	_stepup_cluster_main "$@"
	exit $?
fi
