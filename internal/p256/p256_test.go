package p256

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/hex"
	"hash"
	"math/big"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/internal/p256/p256test"
)

// vector is one SigVer case of testdata/SigVer-P256.rsp.
type vector struct {
	section           string
	msg, qx, qy, r, s []byte
	pass              bool
	result            string
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	f, err := os.Open("testdata/SigVer-P256.rsp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out     []vector
		cur     vector
		section string
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<16)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			continue
		}
		name, value, ok := strings.Cut(line, " = ")
		if !ok {
			continue
		}
		if name == "Result" {
			cur.section, cur.result, cur.pass = section, value, strings.HasPrefix(value, "P")
			out = append(out, cur)
			cur = vector{}
			continue
		}
		b, err := hex.DecodeString(value)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch name {
		case "Msg":
			cur.msg = b
		case "Qx":
			cur.qx = b
		case "Qy":
			cur.qy = b
		case "R":
			cur.r = b
		case "S":
			cur.s = b
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// digest32 is the integer e of FIPS 186-5 §6.4.2 step 3 for a 256-bit n,
// as 32 bytes: the hash's leftmost 256 bits, or the shorter hash
// left-padded.
func digest32(section string, msg []byte) *[32]byte {
	var h hash.Hash
	switch {
	case strings.HasSuffix(section, "SHA-1"):
		h = sha1.New()
	case strings.HasSuffix(section, "SHA-224"):
		h = sha256.New224()
	case strings.HasSuffix(section, "SHA-256"):
		h = sha256.New()
	case strings.HasSuffix(section, "SHA-384"):
		h = sha512.New384()
	case strings.HasSuffix(section, "SHA-512"):
		h = sha512.New()
	default:
		panic("unknown hash in " + section)
	}
	h.Write(msg)
	sum := h.Sum(nil)
	var d [32]byte
	if len(sum) >= 32 {
		copy(d[:], sum)
	} else {
		copy(d[32-len(sum):], sum)
	}
	return &d
}

func fixed32(b []byte) []byte {
	out := make([]byte, 32)
	copy(out[32-len(b):], b)
	return out
}

// TestNISTVectors runs the 75 P-256 cases of NIST's SigVer file: 15
// valid signatures and 60 with the message, R, S or Q changed.
func TestNISTVectors(t *testing.T) {
	vs := loadVectors(t)
	if len(vs) != 75 {
		t.Fatalf("read %d vectors, want 75", len(vs))
	}
	passed := 0
	for i, v := range vs {
		d := digest32(v.section, v.msg)
		sig := append(fixed32(v.r), fixed32(v.s)...)
		raw := append(append([]byte{4}, fixed32(v.qx)...), fixed32(v.qy)...)
		got := false
		if pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw); err == nil {
			k, err := NewPublicKey(pub)
			if err != nil {
				t.Fatalf("vector %d: %v", i, err)
			}
			got = k.Verify(d, sig)
			wantTable(t, k)
			if tab := k.Verify(d, sig); tab != got {
				t.Errorf("vector %d (%s, %s): Verify %v without the table, %v with it", i, v.section, v.result, got, tab)
			}
			if std := ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(v.r), new(big.Int).SetBytes(v.s)); std != got {
				t.Errorf("vector %d (%s, %s): Verify %v, crypto/ecdsa %v", i, v.section, v.result, got, std)
			}
		}
		if got != v.pass {
			t.Errorf("vector %d (%s): Verify %v, want %s", i, v.section, got, v.result)
		}
		if got {
			passed++
		}
	}
	if passed != 15 {
		t.Errorf("%d vectors verified, want 15", passed)
	}
	t.Logf("%d vectors, %d valid (%s)", len(vs), passed, mode())
}

// TestFIPSMode runs NIST's and Wycheproof's vectors again in a process
// with the Go cryptographic module in FIPS 140-3 mode, where Precompute
// builds no table and so every verification is crypto/ecdsa's
// (wantTable checks that no key gets a table).
func TestFIPSMode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	if fips140.Enabled() {
		t.Skip("already in FIPS 140-3 mode")
	}
	if puregoBuild {
		t.Skip("the Go cryptographic module refuses FIPS 140-3 mode in a purego build")
	}
	out := p256test.RunInFIPSMode(t, "^(TestNISTVectors|TestWycheproof)$",
		"(FIPS 140-3 mode on", "--- PASS: TestNISTVectors", "--- PASS: TestWycheproof")
	t.Logf("in FIPS 140-3 mode:\n%s", out)
}

type testKey struct {
	priv *ecdsa.PrivateKey
	k    *PublicKey // without a table
	tab  *PublicKey // the same key, precomputed
}

// verify is k's answer, which must be the same with and without the table.
func (tk testKey) verify(t testing.TB, d *[32]byte, sig []byte) bool {
	t.Helper()
	got := tk.k.Verify(d, sig)
	if tab := tk.tab.Verify(d, sig); tab != got {
		t.Fatalf("digest %x, signature %x: Verify %v without the table, %v with it", d, sig, got, tab)
	}
	return got
}

func newTestKey(t testing.TB) testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, tab := twoKeys(t, &priv.PublicKey)
	if k.Precomputed() {
		t.Fatal("a new key has a table")
	}
	wantTable(t, tab)
	return testKey{priv, k, tab}
}

// twoKeys makes two PublicKeys of pub, neither with a table yet.
func twoKeys(t testing.TB, pub *ecdsa.PublicKey) (*PublicKey, *PublicKey) {
	t.Helper()
	a, err := NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// sign returns R || S of a signature of d.
func (tk testKey) sign(t testing.TB, d []byte) []byte {
	t.Helper()
	r, s, err := ecdsa.Sign(rand.Reader, tk.priv, d)
	if err != nil {
		t.Fatal(err)
	}
	return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
}

// stdVerify is crypto/ecdsa's answer for the same input.
func stdVerify(pub *ecdsa.PublicKey, d *[32]byte, sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	return ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

// TestEdges checks the boundaries of FIPS 186-5 §6.4.2 step 1 and the
// digests that reduce to zero, each against crypto/ecdsa.
func TestEdges(t *testing.T) {
	tk, other := newTestKey(t), newTestKey(t)
	n := fixed32(order.Bytes())
	nMinus1 := fixed32(new(big.Int).Sub(order, big.NewInt(1)).Bytes())
	ones := make([]byte, 32)
	for i := range ones {
		ones[i] = 0xff
	}
	zero := make([]byte, 32)
	msg := sha256.Sum256([]byte("edges"))
	good := tk.sign(t, msg[:])
	with := func(r, s []byte) []byte { return append(append([]byte{}, r...), s...) }
	highS := with(good[:32], fixed32(new(big.Int).Sub(order, new(big.Int).SetBytes(good[32:])).Bytes()))
	var zeroDigest, nDigest [32]byte
	copy(nDigest[:], n)
	cases := []struct {
		name   string
		k      testKey
		digest *[32]byte
		sig    []byte
		want   bool
	}{
		{"valid", tk, &msg, good, true},
		{"high s (n - s), valid in ECDSA", tk, &msg, highS, true},
		{"other key", other, &msg, good, false},
		{"digest changed", tk, &[32]byte{1}, good, false},
		{"r = 0", tk, &msg, with(zero, good[32:]), false},
		{"s = 0", tk, &msg, with(good[:32], zero), false},
		{"r = n", tk, &msg, with(n, good[32:]), false},
		{"s = n", tk, &msg, with(good[:32], n), false},
		{"r = n - 1", tk, &msg, with(nMinus1, good[32:]), false},
		{"s = n - 1", tk, &msg, with(good[:32], nMinus1), false},
		{"r = 2^256 - 1", tk, &msg, with(ones, good[32:]), false},
		{"s = 2^256 - 1", tk, &msg, with(good[:32], ones), false},
		{"short", tk, &msg, good[:63], false},
		{"long", tk, &msg, append(with(good[:32], good[32:]), 0), false},
		{"empty", tk, &msg, nil, false},
		{"zero digest", tk, &zeroDigest, tk.sign(t, zeroDigest[:]), true},
		{"digest n (e = 0 mod n)", tk, &nDigest, tk.sign(t, nDigest[:]), true},
		{"zero digest, signature of n", tk, &zeroDigest, tk.sign(t, nDigest[:]), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.k.verify(t, c.digest, c.sig)
			if got != c.want {
				t.Errorf("Verify %v, want %v", got, c.want)
			}
			if std := stdVerify(&c.k.priv.PublicKey, c.digest, c.sig); std != got {
				t.Errorf("Verify %v, crypto/ecdsa %v", got, std)
			}
		})
	}
}

// TestRandom compares Verify with crypto/ecdsa on fresh keys, digests and
// signatures, valid and with one bit flipped.
func TestRandom(t *testing.T) {
	for i := range 64 {
		tk := newTestKey(t)
		var d [32]byte
		rand.Read(d[:])
		sig := tk.sign(t, d[:])
		if !tk.verify(t, &d, sig) {
			t.Fatalf("run %d: a valid signature did not verify", i)
		}
		bit := i * 37 % (8 * (32 + SignatureSize))
		if bit < 256 {
			d[bit/8] ^= 1 << (bit % 8)
		} else {
			bit -= 256
			sig[bit/8] ^= 1 << (bit % 8)
		}
		if got, std := tk.verify(t, &d, sig), stdVerify(&tk.priv.PublicKey, &d, sig); got || std {
			t.Fatalf("run %d: one bit flipped: Verify %v, crypto/ecdsa %v", i, got, std)
		}
	}
}

func TestNewPublicKeyRefuses(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	g := elliptic.P256().Params()
	offCurve := &ecdsa.PublicKey{Curve: elliptic.P256(), X: g.Gx, Y: new(big.Int).Add(g.Gy, big.NewInt(1))}
	tooBig := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).Add(g.Gx, g.P), Y: g.Gy}
	for name, pub := range map[string]*ecdsa.PublicKey{
		"nil": nil, "P-384": &p384.PublicKey, "off the curve": offCurve, "x above p": tooBig,
	} {
		if _, err := NewPublicKey(pub); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// maxVerifyAllocs bounds a verification's allocations with the key's
// table, all in math/big (the inverse and two products; crypto/ecdsa's
// VerifyASN1 makes 10).
const maxVerifyAllocs = 12

func TestVerifyAllocations(t *testing.T) {
	tk := newTestKey(t)
	d := sha256.Sum256([]byte("allocations"))
	sig := tk.sign(t, d[:])
	for _, k := range []*PublicKey{tk.k, tk.tab} {
		allocs := testing.AllocsPerRun(100, func() {
			if !k.Verify(&d, sig) {
				t.Fatal("did not verify")
			}
		})
		t.Logf("%.0f allocations per verification (table: %v)", allocs, k.Precomputed())
		if k.Precomputed() && allocs > maxVerifyAllocs && !raceEnabled {
			t.Errorf("%.0f allocations per verification with the table, budget %d", allocs, maxVerifyAllocs)
		}
	}
}

// TestTableSize measures what Precompute allocates: TableSize, the
// table's 92 160 bytes rounded up to whole 8 KiB pages (96 KiB), and a
// point.
func TestTableSize(t *testing.T) {
	if tableBytes != 960*96 || TableSize != 96<<10 {
		t.Fatalf("a table is %d bytes, TableSize %d", tableBytes, TableSize)
	}
	tk := newTestKey(t)
	keys := make([]*PublicKey, 32)
	for i := range keys {
		var err error
		if keys[i], err = NewPublicKey(&tk.priv.PublicKey); err != nil {
			t.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, k := range keys {
		k.Precompute()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(keys))
	runtime.KeepAlive(keys)
	t.Logf("a table adds %.0f bytes to the heap (%d bytes of points); TableSize %d", per, tableBytes, TableSize)
	if per < 0.99*float64(TableSize) || per > 1.01*float64(TableSize) {
		t.Errorf("a table adds %.0f bytes to the heap, TableSize says %d", per, TableSize)
	}
}

// TestNewPublicKeyCopies changes the caller's key after NewPublicKey:
// the PublicKey must still be the key it was made from, with and
// without its table.
func TestNewPublicKeyCopies(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := priv.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		t.Fatal(err)
	}
	plain, tab := twoKeys(t, pub)
	pub.X.Set(other.X) // the caller changes its key after the fact
	pub.Y.Set(other.Y)
	wantTable(t, tab) // built after the change: from the copy
	d := sha256.Sum256([]byte("copies"))
	tk := testKey{priv: priv}
	sig := tk.sign(t, d[:])
	forged := testKey{priv: other}.sign(t, d[:])
	for _, k := range []*PublicKey{plain, tab} {
		if !k.Verify(&d, sig) {
			t.Errorf("table %v: the key's own signature refused after the caller changed its copy", k.Precomputed())
		}
		if k.Verify(&d, forged) {
			t.Errorf("table %v: the caller's changed key took over", k.Precomputed())
		}
	}
}

// BenchmarkVerify compares crypto/ecdsa's VerifyASN1 with Verify without
// and with the key's table, in interleaved rounds of 16 (one sub-benchmark
// after another would compare two different moments of a shared
// machine); it reports each one's ns/op and the ratios to VerifyASN1.
func BenchmarkVerify(b *testing.B) {
	tk := newTestKey(b)
	d := sha256.Sum256([]byte("benchmark"))
	sig := tk.sign(b, d[:])
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
	if err != nil {
		b.Fatal(err)
	}
	series := []func() bool{
		func() bool { return ecdsa.VerifyASN1(&tk.priv.PublicKey, d[:], der) },
		func() bool { return tk.k.Verify(&d, sig) },
		func() bool { return tk.tab.Verify(&d, sig) },
	}
	var spent [3]time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 16 {
		for s, f := range series {
			t0 := time.Now()
			for range 16 {
				if !f() {
					b.Fatal("did not verify")
				}
			}
			spent[s] += time.Since(t0)
		}
	}
	rounds := float64((b.N + 15) / 16 * 16)
	b.ReportMetric(float64(spent[0].Nanoseconds())/rounds, "ecdsa-ns/op")
	b.ReportMetric(float64(spent[1].Nanoseconds())/rounds, "p256-ns/op")
	b.ReportMetric(float64(spent[2].Nanoseconds())/rounds, "table-ns/op")
	b.ReportMetric(float64(spent[1])/float64(spent[0]), "x-ecdsa")
	b.ReportMetric(float64(spent[2])/float64(spent[0]), "table-x-ecdsa")
}

// BenchmarkPrecompute is the cost of a key's table.
func BenchmarkPrecompute(b *testing.B) {
	tk := newTestKey(b)
	raw, _ := tk.priv.PublicKey.Bytes()
	pub, _ := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	b.ReportAllocs()
	for b.Loop() {
		k, _ := NewPublicKey(pub)
		k.Precompute()
	}
}
