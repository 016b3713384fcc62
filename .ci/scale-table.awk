# Prints the store / in-process table of BenchmarkScaleCallers from
# `go test -bench` output (docs/PERFORMANCE.md, "The Redis store against
# the store in process"): for each concurrency and each store other than
# the one in process (redis, floor), the server CPU per call of the store
# in process and of the store, the Redis server's own, and the inserts per
# round trip, as min–max over the counts, and the ratios store / in process
# of server CPU and of p99 latency, as min–max and median. Each ratio pairs
# a store's run with the in-process run just before it (the stores run back
# to back at each concurrency; STEPUP_BENCH_STORES=memory,redis,memory,floor
# gives each store an in-process run of its own).
/^BenchmarkScaleCallers\/callers=[0-9]+\/[a-z]+.*server-ns\/call/ {
	split($1, part, "/")
	n = substr(part[2], 9) + 0
	store = part[3]
	sub(/-[0-9]+$/, "", store)
	sub(/#[0-9]+$/, "", store) # a store run twice at one concurrency
	batch = 0; rcpu = -1
	for (i = 3; i < NF; i++) {
		if ($(i + 1) == "inserts/batch") batch = $i
		if ($(i + 1) == "server-ns/call") cpu = $i / 1000
		if ($(i + 1) == "redis-ns/call") rcpu = $i / 1000
		if ($(i + 1) == "p99-µs") p99 = $i / 1000
	}
	if (store == "memory") {
		mcpu[n] = cpu; mp99[n] = p99
		add("mem", n, cpu)
	} else if (n in mcpu) {
		# Paired with the in-process run just before it, at the same
		# concurrency.
		row = n SUBSEP store
		if (!(row in seen)) { seen[row] = 1; order[++rows] = row }
		add("other", row, cpu)
		if (rcpu >= 0) add("rcpu", row, rcpu)
		if (batch) add("batch", row, batch)
		add("ratio", row, cpu / mcpu[n])
		add("p99", row, p99 / mp99[n])
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
	print "| callers | store | in process: server CPU | store: server CPU | Redis server's CPU | inserts per round trip | server CPU store / in process (median) | p99 store / in process (median) | pairs |"
	print "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for (r = 1; r <= rows; r++) {
		split(order[r], rk, SUBSEP)
		n = rk[1]
		rc = span("rcpu", order[r], "%.0f")
		if (rc != "–") rc = rc " µs"
		printf "| %d | %s | %s µs | %s µs | %s | %s | %s (%.2f) | %s (%.2f) | %d |\n", n, rk[2],
			span("mem", n, "%.0f"), span("other", order[r], "%.0f"), rc, span("batch", order[r], "%.1f"),
			span("ratio", order[r], "%.2f"), med("ratio", order[r]), span("p99", order[r], "%.2f"), med("p99", order[r]), cnt["ratio" SUBSEP order[r]]
	}
}
