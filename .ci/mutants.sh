#!/usr/bin/env bash
# make mutants: the classic bugs of an ECDSA verifier, applied to
# internal/p256/p256.go one at a time, each of which the package's tests
# must catch (docs/DPOP.md, "Why trust the ES256 verifier").
#
#   bash .ci/mutants.sh [-v]
#
# Each mutant is a copy of p256.go with one piece of code replaced, built
# through `go test -overlay`, so p256.go itself is never written: there is
# nothing to restore, whatever happens (its hash is checked at the end all
# the same). A mutant is "killed" when `go test ./internal/p256/` fails
# (a test fails or panics), "SURVIVED" when every test passes. The script
# first runs the tests on the unchanged file, which must pass, and stops if
# a mutation no longer matches the code exactly once or the mutant does
# not build. It prints mutation -> result and the tests that failed, and
# exits non-zero if any mutant survived. -v prints each mutant's failures.
#
# Left out because no test can tell them from the original: r >= n not
# refused (v = x(R) mod n < n never equals such an r) and r = 0 not refused
# (v = 0 would need x([u1]G) in {0, n}, a discrete logarithm away).
set -euo pipefail
cd "$(dirname "$0")/.."

verbose=false
[ "${1:-}" = -v ] && verbose=true
src=internal/p256/p256.go
pkg=./internal/p256/
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
hash_before=$(sha256sum "$src")
original=$(cat "$src")

names=() froms=() tos=()
# mutation NAME FROM TO: replace the one occurrence of FROM by TO.
mutation() { names+=("$1"); froms+=("$2"); tos+=("$3"); }

mutation "x(R) >= n not reduced (step 7)" '
	v := sc.u.SetBytes(x)
	if v.Cmp(order) >= 0 {
		v.Sub(v, order)
	}' '
	v := sc.u.SetBytes(x)'
mutation "R at infinity accepted (step 6)" \
	'return false // R is the point at infinity' \
	'return true // R is the point at infinity'
mutation "final addition fails on equal points" \
	'	x, err := p1.Add(&p1, &p2).BytesX()' \
	'	if p1.Equal(&p2) == 1 { // an incomplete formula: P + P comes out as infinity
		p1.Set(infinity)
	} else {
		p1.Add(&p1, &p2)
	}
	x, err := p1.BytesX()'
mutation "accepted when [u1]G = [u2]Q" \
	'	x, err := p1.Add(&p1, &p2).BytesX()' \
	'	if p1.Equal(&p2) == 1 {
		return true
	}
	x, err := p1.Add(&p1, &p2).BytesX()'
mutation "s not checked against n (step 1)" \
	'r.Cmp(order) >= 0 || s.Cmp(order) >= 0 {' \
	'r.Cmp(order) >= 0 {'
mutation "s = n accepted (off by one, step 1)" \
	's.Cmp(order) >= 0 {' \
	's.Cmp(order) > 0 {'
mutation "top table window skipped" \
	'	for i := range 64 {' \
	'	for i := range 63 {'
mutation "bottom table window skipped" \
	'	for i := range 64 {' \
	'	for i := 1; i < 64; i++ {'
mutation "one middle table window skipped (i = 40)" \
	'		if d != 0 {' \
	'		if d != 0 && i != 40 {'
mutation "hexadecimal digits read in the wrong order" \
	'd := u[31-i/2] >> (4 * (i % 2)) & 0xf' \
	'd := u[31-i/2] >> (4 * (1 - i%2)) & 0xf'
mutation "table rows 15^i apart, not 16^i (Precompute)" \
	'		base.Add(&t[i][14], base)' \
	'		base.Set(&t[i][14])'
mutation "u1 and u2 swapped (step 5)" \
	'	u.Mod(u, order).FillBytes(u1[:])
	u.Mul(r, w)
	u.Mod(u, order).FillBytes(u2[:])' \
	'	u.Mod(u, order).FillBytes(u2[:])
	u.Mul(r, w)
	u.Mod(u, order).FillBytes(u1[:])'
mutation "digest ignored (u1 = w, step 5)" \
	'u := sc.u.Mul(e, w)' \
	'_ = e
	u := sc.u.Set(w)'
mutation "Precompute builds a table in FIPS 140-3 mode" \
	'if fips140.Enabled() || k.tab.Load() != nil {' \
	'if false && fips140.Enabled() || k.tab.Load() != nil {'
mutation "NewPublicKey keeps the caller's key" \
	'return &PublicKey{pub: own, q: q}, nil' \
	'_ = own
	return &PublicKey{pub: pub, q: q}, nil'

# failures lists the top-level tests that failed in a go test output, or
# "panic" when the test binary died.
failures() {
	local list
	list=$(grep -oE '^--- FAIL: [A-Za-z0-9_]+' "$1" | awk '{print $3}' | sort -u | tr '\n' ' ' || true)
	grep -q '^panic: ' "$1" && list="${list}(panic) "
	echo "${list% }"
}

echo "make mutants: $src, ${#names[@]} mutations, the tests of $pkg against each"
if ! go test -count=1 -timeout 10m "$pkg" >"$work/base.out" 2>&1; then
	cat "$work/base.out"
	echo "the tests fail on the unchanged $src: fix that first" >&2
	exit 2
fi

survived=0
results=()
for i in "${!names[@]}"; do
	from=${froms[$i]} to=${tos[$i]}
	# Bash pattern quoting: "$from" matches literally.
	rest=${original#*"$from"}
	if [ "$rest" = "$original" ] || [[ $rest == *"$from"* ]]; then
		echo "mutation \"${names[$i]}\" does not match $src exactly once: update it" >&2
		exit 2
	fi
	mutant="$work/mutant-$i"
	mkdir -p "$mutant"
	printf '%s\n' "${original%%"$from"*}${to}${rest}" >"$mutant/p256.go"
	printf '{"Replace":{"%s":"%s"}}\n' "$PWD/$src" "$mutant/p256.go" >"$mutant/overlay.json"
	out="$mutant/test.out"
	if go test -count=1 -timeout 10m -overlay "$mutant/overlay.json" "$pkg" >"$out" 2>&1; then
		result=SURVIVED
		survived=$((survived + 1))
		failed=""
	elif grep -qE '\[build failed\]|\[setup failed\]' "$out"; then
		cat "$out" >&2
		echo "mutation \"${names[$i]}\" does not build: fix it" >&2
		exit 2
	else
		result=killed
		failed=$(failures "$out")
	fi
	results+=("$(printf '%-48s %-9s %s' "${names[$i]}" "$result" "$failed")")
	echo "  ${results[-1]}" >&2
	if $verbose && [ "$result" = killed ]; then
		grep -E '^\s+[a-z_0-9]+_test\.go:[0-9]+: ' "$out" | head -5 >&2 || true
	fi
done

[ "$(sha256sum "$src")" = "$hash_before" ] || { echo "$src changed during the run" >&2; exit 2; }
echo
printf '%-48s %-9s %s\n' "mutation" "result" "failing tests"
printf '%-48s %-9s %s\n' "--------" "------" "-------------"
printf '%s\n' "${results[@]}"
echo
echo "$(( ${#names[@]} - survived )) of ${#names[@]} mutants killed"
[ "$survived" -eq 0 ]
