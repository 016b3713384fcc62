package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// requestVectors are the vectors of docs/PROTOCOL.md §13.
const requestVectors = "../docs/examples/request-vectors.json"

// runNodeScript runs node with args in the Node backend's directory and
// returns its standard output; it fails the test when node fails.
func runNodeScript(t *testing.T, node string, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command(node, args...)
	cmd.Dir = nodeBackendDir
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// TestCanonicalJSVectors runs the request vectors against canonical.js, a
// JavaScript implementation of docs/PROTOCOL.md §13 written from the text
// alone: every vector and every refusal must pass.
func TestCanonicalJSVectors(t *testing.T) {
	node := requireNodeBinary(t)
	raw, err := os.ReadFile(requestVectors)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors  []json.RawMessage `json:"vectors"`
		Refusals []json.RawMessage `json:"refusals"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) < 32 || len(file.Refusals) < 11 {
		t.Fatalf("%d vectors and %d refusals, want at least 32 and 11", len(file.Vectors), len(file.Refusals))
	}
	path, err := filepath.Abs(requestVectors)
	if err != nil {
		t.Fatal(err)
	}
	out := strings.TrimRight(runNodeScript(t, node, nil, "canonical-vectors.js", path), "\n")
	lines := strings.Split(out, "\n")
	want := fmt.Sprintf("vectors: %d passed, 0 failed", len(file.Vectors)+len(file.Refusals))
	if lines[len(lines)-1] != want || len(lines) != 1 {
		t.Fatalf("canonical-vectors.js said\n%s\nwant only %q", out, want)
	}
}

// TestCanonicalJSSelfChecks runs canonical.test.js (node:test): the float
// text against String(x), exact decimal to binary32 rounding, UTF-8
// against TextDecoder, timestamps against Date, mutated inputs read to a
// canonical fixed point, refusals the vectors do not have.
func TestCanonicalJSSelfChecks(t *testing.T) {
	node := requireNodeBinary(t)
	out := runNodeScript(t, node, nil, "--test", "canonical.test.js")
	if !strings.Contains(out, "\n# fail 0\n") || strings.Contains(out, "\n# pass 0\n") {
		t.Fatalf("node --test canonical.test.js:\n%s", out)
	}
}

// TestCanonicalJSFloatText compares the digits of canonical.js's float and
// double text (§13.5.1) with strconv's shortest digits, on the edges of
// both formats and on random bit patterns (20,000 of each;
// CANONICALJS_FLOAT_SAMPLES sets another number). The layout of the
// digits is ECMAScript's, which canonical.test.js checks against
// JavaScript's String(x) with the same code for both formats.
func TestCanonicalJSFloatText(t *testing.T) {
	node := requireNodeBinary(t)
	var in bytes.Buffer
	var values []float64
	var sizes []int
	add := func(x float64, bitSize int, bits uint64) {
		fmt.Fprintf(&in, "%d %0*x\n", bitSize, bitSize/4, bits)
		values, sizes = append(values, x), append(sizes, bitSize)
	}
	add32 := func(bits uint32) { add(float64(math.Float32frombits(bits)), 32, uint64(bits)) }
	add64 := func(bits uint64) { add(math.Float64frombits(bits), 64, bits) }
	for _, sign := range []uint32{0, 1 << 31} {
		for _, b := range []uint32{0, 1, 2, 0x7fffff, 0x800000, 0x7f7fffff, 0x7f800000, 0x7fc00000} {
			add32(sign | b)
		}
		for e := uint32(1); e < 255; e++ { // powers of two: the interval below is half the one above
			add32(sign | e<<23)
			add32(sign | (e<<23 + 1))
			add32(sign | (e<<23 - 1))
		}
	}
	for p := -45; p <= 38; p++ { // around powers of ten
		b := math.Float32bits(float32(math.Pow10(p)))
		add32(b - 1)
		add32(b)
		add32(b + 1)
	}
	for _, b := range []uint64{0, 1, 2, 0xfffffffffffff, 0x10000000000000, 0x7fefffffffffffff, 0x7ff0000000000000, 0x8000000000000000} {
		add64(b)
	}
	for e := uint64(1); e < 2047; e++ {
		add64(e << 52)
		add64(e<<52 + 1)
	}
	samples := 20000
	if n, err := strconv.Atoi(os.Getenv("CANONICALJS_FLOAT_SAMPLES")); err == nil {
		samples = n // a longer run: CANONICALJS_FLOAT_SAMPLES=1000000
	}
	rng := rand.New(rand.NewPCG(13, 5))
	for range samples {
		add32(rng.Uint32())
		add64(rng.Uint64())
	}
	// the tie strconv breaks upward (see shortestDigits): ±2^-12 as a float
	add32(0x39800000)
	add32(0xb9800000)
	if d, e := shortestDigits(math.Ldexp(1, -12), 32); d != "24414062" || e != -4 {
		t.Fatalf("the oracle's digits of 2^-12 as a float: %s, %d", d, e)
	}

	got := strings.Split(strings.TrimSuffix(runNodeScript(t, node, in.Bytes(), "canonical-floats.js"), "\n"), "\n")
	if len(got) != len(values) {
		t.Fatalf("%d lines for %d values", len(got), len(values))
	}
	inputs := strings.Split(in.String(), "\n")
	failures := 0
	for i, x := range values {
		if ok, want := sameFloatText(got[i], x, sizes[i]); !ok {
			if failures++; failures <= 20 {
				t.Errorf("%s: canonical.js %q, want %s", inputs[i], got[i], want)
			}
		}
	}
	if failures > 0 {
		t.Errorf("%d of %d values differ", failures, len(values))
	}
}

// sameFloatText says whether text has the sign, the digits and the
// exponent of §13.5.1's text of x, and describes what it wants.
func sameFloatText(text string, x float64, bitSize int) (bool, string) {
	switch {
	case math.IsNaN(x), math.IsInf(x, 0):
		want := fmt.Sprint(x)
		want = strings.NewReplacer("+Inf", "Infinity", "-Inf", "-Infinity").Replace(want)
		return text == want, strconv.Quote(want)
	case x == 0 && math.Signbit(x):
		return text == "-0", `"-0"`
	case x == 0:
		return text == "0", `"0"`
	}
	neg := strings.HasPrefix(text, "-")
	digits, e := shortestDigits(math.Abs(x), bitSize)
	want := fmt.Sprintf("digits %s exponent %d negative %v", digits, e, x < 0)
	gotDigits, gotE, ok := decimalDigits(strings.TrimPrefix(text, "-"))
	return ok && neg == (x < 0) && gotDigits == digits && gotE == e, want
}

// decimalDigits returns the significant digits of a decimal text
// ("0.0015", "1.5e-7", "100") and the exponent of the first one.
func decimalDigits(text string) (string, int, bool) {
	mant, exp, hasExp := strings.Cut(text, "e")
	e := 0
	if hasExp {
		var err error
		if e, err = strconv.Atoi(exp); err != nil {
			return "", 0, false
		}
	}
	whole, frac, _ := strings.Cut(mant, ".")
	all := whole + frac
	trimmed := strings.TrimLeft(all, "0")
	if trimmed == "" {
		return "", 0, false
	}
	e += len(whole) - 1 - (len(all) - len(trimmed))
	return strings.TrimRight(trimmed, "0"), e, true
}

// shortestDigits returns the digits of §13.5.1's s for x > 0 and the
// exponent of its first digit: strconv's shortest digits, except on an
// exact tie between two candidates of that length that both read back as
// x, where §13.5.1 (like ECMAScript) takes the even s. strconv breaks at
// least one such tie the other way: the float 2^-12 = 0.000244140625 is as
// close to 2.4414062e-4 as to 2.4414063e-4, both read back as 2^-12, and
// strconv gives the odd one.
func shortestDigits(x float64, bitSize int) (string, int) {
	mant, exp, _ := strings.Cut(strconv.FormatFloat(x, 'e', -1, bitSize), "e")
	digits := strings.Replace(mant, ".", "", 1)
	e, err := strconv.Atoi(exp)
	if err != nil {
		panic(err)
	}
	if (digits[len(digits)-1]-'0')%2 == 0 {
		return digits, e
	}
	q := e - (len(digits) - 1) // x ≈ s × 10^q
	pow := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(q, -q))), nil))
	value := func(s *big.Int) *big.Rat {
		v := new(big.Rat).SetInt(s)
		if q < 0 {
			return v.Quo(v, pow)
		}
		return v.Mul(v, pow)
	}
	xr := new(big.Rat).SetFloat64(x)
	dist := func(s *big.Int) *big.Rat {
		d := new(big.Rat).Sub(value(s), xr)
		return d.Abs(d)
	}
	s, _ := new(big.Int).SetString(digits, 10)
	for _, delta := range []int64{-1, 1} {
		t := new(big.Int).Add(s, big.NewInt(delta))
		if dist(t).Cmp(dist(s)) != 0 {
			continue
		}
		if back, err := strconv.ParseFloat(t.String()+"e"+strconv.Itoa(q), bitSize); err == nil && back == x {
			return strings.TrimRight(t.String(), "0"), e
		}
	}
	return digits, e
}
