# Prints the x-limit table of BenchmarkCalls from `go test -bench` output:
# for each call kind, every ratio it reports, as min–max over the counts.
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
			v = $i + 0
			if (!(k in lo) || v < lo[k]) lo[k] = v
			if (!(k in hi) || v > hi[k]) hi[k] = v
			units[unit] = 1
		}
	}
}
END {
	if (n == 0) exit
	cols[1] = "x-limit"; cols[2] = "x-limit-bare"; cols[3] = "x-dpop"; cols[4] = "x-dpop-floor"; cols[5] = "server-ns/call"; cols[6] = "allocs/op"
	printf "\n%-22s", "BenchmarkCalls"
	for (c = 1; c <= 6; c++) printf " %-17s", cols[c]
	printf "\n"
	for (r = 1; r <= n; r++) {
		printf "%-22s", order[r]
		for (c = 1; c <= 6; c++) {
			k = order[r] SUBSEP cols[c]
			if (!(k in lo)) { printf " %-17s", "-"; continue }
			f = (cols[c] ~ /^x-/) ? "%.3f" : "%.0f"
			cell = sprintf(f, lo[k])
			if (hi[k] != lo[k]) cell = cell "-" sprintf(f, hi[k])
			printf " %-17s", cell
		}
		printf "\n"
	}
	printf "(min-max over the counts; x-limit: server CPU per call / its physical limit, docs/PERFORMANCE.md)\n"
}
