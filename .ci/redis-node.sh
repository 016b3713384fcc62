# Sourced by .ci/redis.sh and .ci/redis-cluster.sh (functions only): start
# and stop the redis-server and redis-sentinel processes that one run owns,
# so that two runs on one machine (two checkouts, two CI jobs on one host)
# never share a server or stop each other's.
#
#   - Every process runs from a config file in a directory of its own,
#     inside the run's directory (mktemp -d): its working directory, its
#     pidfile and its log are there.
#   - Its port is picked at random among the ports nothing listens on, and
#     that no other run's config file names (a node a test has killed keeps
#     its port for its restart). A start that loses its port to another
#     process in between (bind fails) is tried again on another port; a
#     server that answers on the port is used only once INFO server names
#     this run's config file.
#   - It is stopped by the PID in its pidfile (SIGKILL), and only when that
#     process still runs from the run's directory (so a stale pidfile whose PID was
#     reused is never acted on). Nothing is ever stopped by port.

# _stepup_port_open port: whether something accepts connections on the port.
_stepup_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# _stepup_ports_claimed: the ports the config files of every run on this
# machine name (their nodes may be down for a moment, and come back).
_stepup_ports_claimed() {
	local root=${TMPDIR:-/tmp}
	cat "$root"/stepup-redis.*/*/*.conf 2>/dev/null | sed -n 's/^port \([0-9]*\)$/\1/p' || true
}

# _stepup_pick_port: prints a port in [10000, 22767] that is neither open nor
# claimed, and whose cluster bus port (10000 above) is not open either. The
# range lies below Linux's ephemeral ports (32768 and up), so no outgoing
# connection holds one.
_stepup_pick_port() {
	local p i claimed
	claimed=" $(_stepup_ports_claimed | tr '\n' ' ') "
	for i in $(seq 1 500); do
		p=$((10000 + (RANDOM * 32768 + RANDOM) % 12768))
		case "$claimed" in *" $p "*) continue ;; esac
		_stepup_port_open "$p" && continue
		_stepup_port_open $((p + 10000)) && continue
		echo "$p"
		return 0
	done
	echo "redis-node.sh: no free port found" >&2
	return 1
}

# _stepup_info_field port field: one field of INFO server ("" when the
# server does not answer).
_stepup_info_field() {
	redis-cli -h 127.0.0.1 -p "$1" info server 2>/dev/null | tr -d '\r' | sed -n "s/^$2:\(.*\)$/\1/p" || true
}

# _stepup_owned pid dir: whether process pid runs from dir (its working
# directory: every server of a run chdirs to its own directory). Where
# /proc is missing, whether pid is a redis process at all.
_stepup_owned() {
	local pid=$1 dir
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	dir=$(cd "$2" 2>/dev/null && pwd -P) || return 1
	if [ -d /proc/self ]; then
		[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$dir" ]
	else
		ps -p "$pid" -o comm= 2>/dev/null | grep -q redis
	fi
}

# _stepup_start dir program [config lines...]: starts program (redis-server
# or redis-sentinel) from dir/redis.conf with the given lines on a free port,
# waits until it answers as this run's server, and prints the port. The
# lines may contain @PORT@, replaced by the port picked.
_stepup_start() {
	local d=$1 bin attempt port i conf started
	bin=$(command -v "$2") || {
		echo "redis-node.sh: $2 is not installed" >&2
		return 1
	}
	shift 2
	mkdir -p "$d" || return 1
	d=$(cd "$d" && pwd -P)
	conf="$d/redis.conf"
	for attempt in 1 2 3 4 5 6 7 8; do
		port=$(_stepup_pick_port) || return 1
		rm -f "$d/pid" "$d/nodes.conf"
		: >"$d/log"
		{
			echo "bind 127.0.0.1"
			echo "port $port"
			echo "dir $d"
			echo "daemonize yes"
			echo "pidfile $d/pid"
			echo "logfile $d/log"
			printf '%s\n' "$@" | sed "s/@PORT@/$port/g"
		} >"$conf"
		"$bin" "$conf" >/dev/null 2>&1 || continue
		started=""
		for i in $(seq 1 100); do
			if [ "$(_stepup_info_field "$port" config_file)" = "$conf" ]; then
				started=yes
				break
			fi
			# Redis writes its pidfile only once it listens: a start that
			# failed to bind exits without one.
			if grep -q -e 'Address already in use' -e 'aborting' "$d/log" 2>/dev/null; then
				break
			fi
			sleep 0.1
		done
		if [ -n "$started" ]; then
			echo "$port"
			return 0
		fi
		_stepup_stop_one "$d"
		if ! grep -q -e 'Address already in use' -e 'aborting' "$d/log" 2>/dev/null; then
			echo "redis-node.sh: $bin from $conf does not answer on 127.0.0.1:$port after 10s; its log:" >&2
			tail -n 20 "$d/log" >&2 2>/dev/null || true
			return 1
		fi
	done
	echo "redis-node.sh: $bin from $conf lost its port to another process $attempt times; its log:" >&2
	tail -n 20 "$d/log" >&2 2>/dev/null || true
	return 1
}

# _stepup_stop_one dir: stops the process of dir's pidfile, if it is still
# this run's, and waits until it is gone. SIGKILL: the servers keep nothing
# (no persistence), and a SIGTERM'd primary would wait for its replicas.
_stepup_stop_one() {
	local d=$1 pid i
	pid=$(cat "$d/pid" 2>/dev/null || true)
	_stepup_owned "$pid" "$d" || return 0
	kill -KILL "$pid" 2>/dev/null || return 0
	# Gone, or a zombie its parent (init) has yet to reap: no longer ours.
	for i in $(seq 1 50); do
		_stepup_owned "$pid" "$d" || return 0
		sleep 0.1
	done
	return 0
}

# _stepup_stop_run root: stops every process of the run whose directory is
# root (one subdirectory per process), then removes root.
_stepup_stop_run() {
	local root=$1 d
	[ -n "$root" ] && [ -d "$root" ] || return 0
	for d in "$root"/*/; do
		[ -f "$d/redis.conf" ] && _stepup_stop_one "${d%/}"
	done
	rm -rf "$root"
}

# _stepup_run_dir var: the run's directory: the value of the variable named
# var when set (and then created if missing), else a new directory under
# ${TMPDIR:-/tmp}, named so that _stepup_ports_claimed finds its ports.
_stepup_run_dir() {
	local v=${!1:-}
	if [ -n "$v" ]; then
		mkdir -p "$v" && (cd "$v" && pwd -P)
	else
		mktemp -d "${TMPDIR:-/tmp}/stepup-redis.XXXXXXXX"
	fi
}
