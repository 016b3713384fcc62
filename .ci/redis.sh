#!/usr/bin/env bash
# Starts the redis-server that the tests of challenge/redisstore run against,
# on 127.0.0.1:6390, and sets STEPUP_REDIS_ADDR.
#
#   source .ci/redis.sh        # in CI, before `make test`: exports STEPUP_REDIS_ADDR
#   eval "$(.ci/redis.sh)"     # the same from an interactive shell
#
# It installs Debian's redis-server when it is missing (apt-get update, then
# install; root or sudo needed), starts it without persistence and with
# maxmemory-policy noeviction (the policy the store requires), and waits until
# it answers PING. It is idempotent: a server already answering on 6390 is
# reused, provided its policy is noeviction. It is safe to source under
# `set -euo pipefail`: it never exits the calling shell, does not change its
# options or directory, and returns non-zero on failure, which stops a
# `set -e` caller. Stop the server with: redis-cli -p 6390 shutdown nosave

_stepup_redis_start() {
	local host=127.0.0.1 port=6390
	local dir=${TMPDIR:-/tmp}
	local pidfile="$dir/stepup-redis-$port.pid" logfile="$dir/stepup-redis-$port.log"
	local sudo="" i policy

	if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
		if [ "$(id -u)" -ne 0 ]; then
			if ! command -v sudo >/dev/null 2>&1; then
				echo "redis.sh: redis-server is not installed, and installing it needs root or sudo" >&2
				return 1
			fi
			sudo=sudo
		fi
		echo "redis.sh: installing redis-server (apt-get)" >&2
		if ! $sudo apt-get update -qq >&2; then
			echo "redis.sh: apt-get update failed" >&2
			return 1
		fi
		if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >&2; then
			echo "redis.sh: apt-get install redis-server failed" >&2
			return 1
		fi
	fi

	if [ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null || true)" != "PONG" ]; then
		echo "redis.sh: starting redis-server on $host:$port" >&2
		if ! redis-server --bind "$host" --port "$port" --save '' --appendonly no \
			--maxmemory-policy noeviction --daemonize yes \
			--pidfile "$pidfile" --logfile "$logfile" --dir "$dir" >&2; then
			echo "redis.sh: redis-server did not start" >&2
			return 1
		fi
		for i in $(seq 1 100); do
			if [ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null || true)" = "PONG" ]; then
				break
			fi
			sleep 0.1
		done
		if [ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null || true)" != "PONG" ]; then
			echo "redis.sh: redis-server on $host:$port does not answer after 10s; its log ($logfile):" >&2
			tail -n 20 "$logfile" >&2 2>/dev/null || true
			return 1
		fi
	fi

	policy=$(redis-cli -h "$host" -p "$port" config get maxmemory-policy 2>/dev/null | sed -n 2p || true)
	if [ "$policy" != "noeviction" ]; then
		echo "redis.sh: the redis-server on $host:$port runs with maxmemory-policy '${policy:-unknown}';" \
			"the tests need noeviction: stop it (redis-cli -p $port shutdown nosave) and run this again" >&2
		return 1
	fi

	export STEPUP_REDIS_ADDR="$host:$port"
	echo "redis.sh: redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') ready on $host:$port" \
		"(maxmemory-policy noeviction, no persistence)" >&2
	echo "export STEPUP_REDIS_ADDR=$host:$port"
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
	# Sourced: export into the caller's shell; never exit it.
	_stepup_redis_start
	_stepup_redis_rc=$?
	unset -f _stepup_redis_start
	if [ "$_stepup_redis_rc" -ne 0 ]; then
		unset _stepup_redis_rc
		return 1
	fi
	unset _stepup_redis_rc
else
	_stepup_redis_start
fi
