# Prints the Redis / in-process table of BenchmarkScaleCallers from
# `go test -bench` output (docs/PERFORMANCE.md, "The Redis store against
# the store in process"): for each concurrency, the server CPU per call of
# each store and the Redis server's own, as min–max over the counts, and
# the ratios Redis / in process of server CPU and of p99 latency, paired
# within each count (the two stores run back to back), as min–max and
# median.
/^BenchmarkScaleCallers\/callers=[0-9]+\/(memory|redis).*server-ns\/call/ {
	split($1, part, "/")
	n = substr(part[2], 9) + 0
	store = part[3]
	sub(/-[0-9]+$/, "", store)
	if (!(n in seen)) { seen[n] = 1; order[++rows] = n }
	for (i = 3; i < NF; i++) {
		if ($(i + 1) == "server-ns/call") cpu = $i / 1000
		if ($(i + 1) == "redis-ns/call") rcpu = $i / 1000
		if ($(i + 1) == "p99-µs") p99 = $i / 1000
	}
	if (store == "memory") {
		mcpu[n] = cpu; mp99[n] = p99
		add("mem", n, cpu)
	} else if (n in mcpu) {
		add("redis", n, cpu)
		add("rcpu", n, rcpu)
		add("ratio", n, cpu / mcpu[n])
		add("p99", n, p99 / mp99[n])
		delete mcpu[n]
	}
}
function add(what, n, v,    k) {
	k = what SUBSEP n
	vals[k, ++cnt[k]] = v
}
# sorted sorts the values of key k in place.
function sorted(k,    i, j, m, v) {
	m = cnt[k]
	for (i = 2; i <= m; i++) {
		v = vals[k, i]
		for (j = i - 1; j >= 1 && vals[k, j] > v; j--) vals[k, j + 1] = vals[k, j]
		vals[k, j + 1] = v
	}
	return m
}
function span(what, n, f,    k, m) {
	k = what SUBSEP n
	m = sorted(k)
	if (m == 0) return "–"
	return sprintf(f "–" f, vals[k, 1], vals[k, m])
}
function med(what, n,    k, m) {
	k = what SUBSEP n
	m = sorted(k)
	if (m == 0) return 0
	if (m % 2) return vals[k, (m + 1) / 2]
	return (vals[k, m / 2] + vals[k, m / 2 + 1]) / 2
}
END {
	print "| callers | in process: server CPU | Redis: server CPU | Redis server's CPU | server CPU Redis / in process (median) | p99 Redis / in process (median) | pairs |"
	print "| --- | --- | --- | --- | --- | --- | --- |"
	for (r = 1; r <= rows; r++) {
		n = order[r]
		printf "| %d | %s µs | %s µs | %s µs | %s (%.2f) | %s (%.2f) | %d |\n", n,
			span("mem", n, "%.0f"), span("redis", n, "%.0f"), span("rcpu", n, "%.0f"),
			span("ratio", n, "%.2f"), med("ratio", n), span("p99", n, "%.2f"), med("p99", n), cnt["ratio" SUBSEP n]
	}
}
