# TEMPORARY (flush-window measurement, docs/PERFORMANCE.md "The floor of a
# store across the network"): from the output files of one run, one file
# per round (each a count of BenchmarkScaleCallers with STEPUP_BENCH_STORES
# listing redis and redisw<µs> stores, each after an in-process run),
# prints per concurrency and store the server CPU against the Redis store
# without a window (redis) of the same round, median (min–max), the p50
# against the in-process run just before, median, and the time actually
# slept per sleep of the window, median.
FNR == 1 { file++ }
/^BenchmarkScaleCallers\/callers=[0-9]+\/[a-z0-9]+.*server-ns\/call/ {
	split($1, part, "/"); n = substr(part[2], 9) + 0; store = part[3]
	sub(/-[0-9]+$/, "", store); sub(/#[0-9]+$/, "", store)
	slept = 0
	for (i = 3; i < NF; i++) {
		if ($(i + 1) == "server-ns/call") cpu = $i
		if ($(i + 1) == "p50-µs") p50 = $i
		if ($(i + 1) == "slept-µs/sleep") slept = $i
	}
	if (store == "memory") { mp50 = p50; next }
	if (!((n, store) in seen)) { seen[n, store] = 1; order[++rows] = n SUBSEP store }
	c[file, n, store] = cpu; p[file, n, store] = p50 / mp50; s[file, n, store] = slept
}
function med(arr, m,    i, j, v) {
	for (i = 2; i <= m; i++) { v = arr[i]; for (j = i - 1; j >= 1 && arr[j] > v; j--) arr[j + 1] = arr[j]; arr[j + 1] = v }
	return (m % 2) ? arr[(m + 1) / 2] : (arr[m / 2] + arr[m / 2 + 1]) / 2
}
END {
	print "| callers | store | server CPU / redis, same round | p50 / in process (median) | slept per sleep (median) | rounds |"
	print "| --- | --- | --- | --- | --- | --- |"
	for (r = 1; r <= rows; r++) {
		split(order[r], k, SUBSEP); n = k[1]; st = k[2]
		m = 0; delete a; delete b; delete d
		for (f = 1; f <= file; f++) if ((f, n, st) in c && (f, n, "redis") in c) {
			m++; a[m] = c[f, n, st] / c[f, n, "redis"]; b[m] = p[f, n, st]; d[m] = s[f, n, st]
		}
		if (!m) continue
		mm = med(a, m)
		printf "| %d | %s | %.2f–%.2f (%.2f) | %.2f | %.0f µs | %d |\n", n, st, a[1], a[m], mm, med(b, m), med(d, m), m
	}
}
