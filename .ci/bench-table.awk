# Prints the x-limit table of BenchmarkCalls from `go test -bench` output:
# for each call kind, every ratio it reports, as min–max over the counts,
# with the median when there are three counts or more.
# Used by `make bench`.
/^BenchmarkCalls\// {
	name = $1
	sub(/^BenchmarkCalls\//, "", name)
	sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
	for (i = 3; i < NF; i++) {
		unit = $(i + 1)
		if (unit ~ /^x-/ || unit == "server-ns/call" || unit == "allocs/op") {
			k = name SUBSEP unit
			vals[k, ++cnt[k]] = $i + 0
		}
	}
}
# median sorts the values of key k in place and returns the middle one.
function median(k,    i, j, m, v) {
	m = cnt[k]
	for (i = 2; i <= m; i++) {
		v = vals[k, i]
		for (j = i - 1; j >= 1 && vals[k, j] > v; j--) vals[k, j + 1] = vals[k, j]
		vals[k, j + 1] = v
	}
	if (m % 2) return vals[k, (m + 1) / 2]
	return (vals[k, m / 2] + vals[k, m / 2 + 1]) / 2
}
END {
	if (n == 0) exit
	cols[1] = "x-limit"; cols[2] = "x-limit-bare"; cols[3] = "x-e"; cols[4] = "x-verifier"; cols[5] = "x-dpop"; cols[6] = "x-dpop-floor"; cols[7] = "server-ns/call"; cols[8] = "allocs/op"
	printf "\n%-28s", "BenchmarkCalls"
	for (c = 1; c <= 8; c++) printf " %-23s", cols[c]
	printf "\n"
	for (r = 1; r <= n; r++) {
		printf "%-28s", order[r]
		for (c = 1; c <= 8; c++) {
			k = order[r] SUBSEP cols[c]
			if (!(k in cnt)) { printf " %-23s", "-"; continue }
			f = (cols[c] ~ /^x-/) ? "%.3f" : "%.0f"
			mid = median(k)
			lo = vals[k, 1]; hi = vals[k, cnt[k]]
			cell = sprintf(f, lo)
			if (hi != lo) cell = cell "-" sprintf(f, hi)
			if (cnt[k] >= 3 && hi != lo) cell = cell " (" sprintf(f, mid) ")"
			printf " %-23s", cell
		}
		printf "\n"
	}
	printf "(min-max over the counts, median in brackets; x-limit: server CPU per call / its physical limit, docs/PERFORMANCE.md)\n"
}
