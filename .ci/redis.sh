#!/usr/bin/env bash
# Starts a redis-server of this run for the tests of challenge/redisstore
# (and the other Redis-backed tests), on a free loopback port, and exports
# STEPUP_REDIS_ADDR and STEPUP_REDIS_DIR (the run's directory: config,
# pidfile, log).
#
#   source .ci/redis.sh        # in CI, before `make test`: exports the two variables
#   eval "$(.ci/redis.sh)"     # the same from an interactive shell
#   bash .ci/redis.sh stop     # stop it (by the PID in $STEPUP_REDIS_DIR) and remove the directory
#
# It installs Debian's redis-server when it is missing (apt-get update, then
# install; root or sudo needed), starts it without persistence and with
# maxmemory-policy noeviction (the policy the store requires), and waits until
# it answers. Every run gets a server of its own (.ci/redis-node.sh: a port
# picked among free ones, stopped by PID, never by port), so two runs on one
# machine do not meet; sourcing it again in the same shell reuses the server
# of $STEPUP_REDIS_DIR while it runs. It is safe to source under
# `set -euo pipefail`: it never exits the calling shell, does not change its
# options or directory, and returns non-zero on failure, which stops a
# `set -e` caller.

# shellcheck source=redis-node.sh
source "$(dirname "${BASH_SOURCE[0]}")/redis-node.sh"

_stepup_redis_install() {
	local sudo=""
	command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
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
}

_stepup_redis_start() {
	local root port
	_stepup_redis_install || return 1
	root=$(_stepup_run_dir STEPUP_REDIS_DIR) || return 1
	port=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$root/server/redis.conf" 2>/dev/null || true)
	if [ -z "$port" ] || ! _stepup_owned "$(cat "$root/server/pid" 2>/dev/null)" "$root/server"; then
		port=$(_stepup_start "$root/server" redis-server "save \"\"" "appendonly no" "maxmemory-policy noeviction") || {
			rm -rf "$root"
			return 1
		}
		echo "redis.sh: redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') ready on 127.0.0.1:$port" \
			"(maxmemory-policy noeviction, no persistence; directory $root)" >&2
	fi
	export STEPUP_REDIS_ADDR="127.0.0.1:$port" STEPUP_REDIS_DIR="$root"
	echo "export STEPUP_REDIS_ADDR=$STEPUP_REDIS_ADDR STEPUP_REDIS_DIR=$STEPUP_REDIS_DIR"
}

_stepup_redis_main() {
	case "${1:-start}" in
	start)
		_stepup_redis_start
		;;
	stop)
		if [ -z "${STEPUP_REDIS_DIR:-}" ]; then
			echo "redis.sh stop: STEPUP_REDIS_DIR is not set (it names the run whose server to stop)" >&2
			return 1
		fi
		_stepup_stop_run "$STEPUP_REDIS_DIR"
		;;
	*)
		echo "usage: redis.sh [start|stop]" >&2
		return 2
		;;
	esac
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
	# Sourced: start, and export into the caller's shell (the caller's
	# arguments are not ours); never exit it.
	_stepup_redis_main start >/dev/null
else
	_stepup_redis_main "$@"
	exit $?
fi
