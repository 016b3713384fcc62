package p256

import (
	"flag"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Constructed signatures. A verification computes u1 = e/s and u2 = r/s
// and adds [u1]G and [u2]Q; a random signature almost never makes that
// sum an edge case, and neither does a fuzzer mutating valid signatures.
// Here u1 and u2 come first and (e, r, s) are solved for them (for a
// chosen R, Q too), so that the edge points really occur:
//
//   - [u1]G = [u2]Q: R is a doubling, which an incomplete addition gets
//     wrong;
//   - [u1]G = −[u2]Q: R is the point at infinity, to be refused whatever
//     r says;
//   - Q = G and Q = −G, and small private keys;
//   - x(R) in [n, p): r is x(R) − n, which only the reduction of step 7
//     finds;
//   - u1 = 0 (e ≡ 0: the digest 0 or n);
//   - u2 (and u1) with a single non-zero hexadecimal digit, in every
//     position, and with only the top one: each window of the key's
//     table alone;
//   - s < 2^256 − n, so that s + n still fits in 32 bytes: the same
//     signature with s + n must be refused.
//
// Each case is checked against what it was built to be, the math/big
// reference (reference_test.go), crypto/ecdsa, and Verify with and
// without the key's table.

// construction is one constructed case.
type construction struct {
	name   string
	q      refPoint // the public key
	digest [32]byte
	sig    []byte // R || S
	valid  bool   // what it was built to be
}

// solve builds the signature of key q for which verification computes u1
// and u2 (u2 ≠ 0 mod n): R = [u1]G + [u2]Q, r = x(R) mod n, s = r/u2,
// e = u1·s. If R is the point at infinity no signature is valid, and r
// is x([u1]G) mod n instead (1 if that is 0 too): a verifier still
// computes u1 and u2 from it, meets the point at infinity, and must
// refuse. The digest is e + n when highDigest is set and that fits in
// 256 bits (step 3 does not reduce it), e otherwise.
func solve(q refPoint, u1, u2 *big.Int, highDigest bool) (digest [32]byte, sig []byte, valid bool) {
	R := refAdd(refMul(u1, refG), refMul(u2, q))
	var r *big.Int
	if !R.inf() {
		r = new(big.Int).Mod(R.x, refN)
		valid = r.Sign() != 0
	}
	if !valid {
		r = big.NewInt(1)
		if p := refMul(u1, refG); !p.inf() && new(big.Int).Mod(p.x, refN).Sign() != 0 {
			r.Mod(p.x, refN)
		}
	}
	s := new(big.Int).Mul(r, inverseN(u2))
	s.Mod(s, refN)
	e := new(big.Int).Mul(u1, s)
	e.Mod(e, refN)
	if highDigest {
		if hi := new(big.Int).Add(e, refN); hi.BitLen() <= 256 {
			e = hi
		}
	}
	e.FillBytes(digest[:])
	return digest, append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...), valid
}

// solveKey returns the key Q for which [u1]G + [u2]Q = R: Q = (R − [u1]G)/u2.
func solveKey(R refPoint, u1, u2 *big.Int) refPoint {
	return refMul(inverseN(u2), refAdd(R, refNeg(refMul(u1, refG))))
}

// modN is v mod n, non-negative.
func modN(v *big.Int) *big.Int { return new(big.Int).Mod(v, refN) }

// nibble is j·16^i.
func nibble(j, i int) *big.Int { return new(big.Int).Lsh(big.NewInt(int64(j)), uint(4*i)) }

// randScalar is a scalar in [1, n).
func randScalar(rng *rand.Rand) *big.Int {
	var b [32]byte
	for {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		v := new(big.Int).SetBytes(b[:])
		if v.Sign() > 0 && v.Cmp(refN) < 0 {
			return v
		}
	}
}

// edgeKeys are keys with a known private key d: Q = G, Q = −G, small
// keys, keys near n, and three random ones.
var edgeKeys = sync.OnceValue(func() []struct {
	d *big.Int
	q refPoint
} {
	rng := rand.New(rand.NewPCG(1, 2))
	ds := []*big.Int{big.NewInt(1), new(big.Int).Sub(refN, big.NewInt(1))}
	for _, d := range []int64{2, 3, 4, 5, 7, 15, 16, 17, 255} {
		ds = append(ds, big.NewInt(d))
	}
	ds = append(ds, new(big.Int).Lsh(big.NewInt(1), 128), new(big.Int).Sub(refN, big.NewInt(2)), randScalar(rng), randScalar(rng), randScalar(rng))
	out := make([]struct {
		d *big.Int
		q refPoint
	}, len(ds))
	for i, d := range ds {
		out[i].d, out[i].q = d, refMul(d, refG)
	}
	return out
})

// highXPoints are points whose x-coordinate is in [n, p): x = n + k for
// the smallest k that give one, with both y.
var highXPoints = sync.OnceValue(func() []refPoint {
	var out []refPoint
	for k := int64(0); len(out) < 8; k++ {
		x := new(big.Int).Add(refN, big.NewInt(k))
		rhs := fadd(fsub(fmul(fmul(x, x), x), fsmall(3, x)), refB)
		if y, ok := refSqrt(rhs); ok {
			out = append(out, refPoint{x: x, y: y}, refNeg(refPoint{x: x, y: y}))
		}
	}
	return out
})

// constructions are the cases of TestConstructed, the same on every
// run, as builders: the scalars are drawn here, the curve arithmetic that
// solves for the signature runs when a builder is called.
func constructions() []func() []construction {
	rng := rand.New(rand.NewPCG(31, 2026))
	var bs []func() []construction
	add := func(name string, q refPoint, u1, u2 *big.Int, high bool, want bool) {
		bs = append(bs, func() []construction {
			d, sig, valid := solve(q, modN(u1), modN(u2), high)
			if valid != want {
				panic(fmt.Sprintf("%s: built valid=%v, meant %v", name, valid, want))
			}
			return []construction{{name, q, d, sig, valid}}
		})
	}
	one, nm1 := big.NewInt(1), new(big.Int).Sub(refN, big.NewInt(1))
	keys := edgeKeys()
	for ki, k := range keys {
		u2s := []*big.Int{one, nm1, randScalar(rng), randScalar(rng), nibble(1+rng.IntN(15), rng.IntN(64)), nibble(1+rng.IntN(15), 63)}
		for ui, u2 := range u2s {
			u2d := new(big.Int).Mul(u2, k.d)
			name := fmt.Sprintf("[u1]G = [u2]Q, key %d, u2 %d", ki, ui)
			add(name, k.q, u2d, u2, false, true)
			bs = append(bs, func() []construction { return []construction{sameOperands(name, k.q, modN(u2d), u2)} })
			add(fmt.Sprintf("[u1]G = -[u2]Q, key %d, u2 %d", ki, ui), k.q, new(big.Int).Neg(u2d), u2, false, false)
		}
		for j := range 4 {
			add(fmt.Sprintf("key %d, random u1 and u2 %d", ki, j), k.q, randScalar(rng), randScalar(rng), false, true)
		}
		// u1 = 0: e ≡ 0, the digest 0 or n.
		add(fmt.Sprintf("u1 = 0, digest 0, key %d", ki), k.q, new(big.Int), randScalar(rng), false, true)
		add(fmt.Sprintf("u1 = 0, digest n, key %d", ki), k.q, new(big.Int), nibble(1+rng.IntN(15), rng.IntN(64)), true, true)
	}
	// Q = G and Q = −G: u1 = ±u2 besides the cases above.
	for _, ki := range []int{0, 1} {
		for j := range 4 {
			u := randScalar(rng)
			add(fmt.Sprintf("key %d, u1 = u2, %d", ki, j), keys[ki].q, u, u, false, ki == 0)
			add(fmt.Sprintf("key %d, u1 = -u2, %d", ki, j), keys[ki].q, new(big.Int).Neg(u), u, false, ki == 1)
		}
	}
	// Single hexadecimal digits of u2, then of u1, in every position.
	random := keys[len(keys)-1].q
	for i := range 64 {
		for _, j := range []int{1, 1 + i%15, 15} {
			add(fmt.Sprintf("u2 = %d·16^%d", j, i), random, randScalar(rng), nibble(j, i), false, true)
		}
		add(fmt.Sprintf("u1 = %d·16^%d", 1+i%15, i), random, nibble(1+i%15, i), randScalar(rng), false, true)
		add(fmt.Sprintf("u1 and u2 = %d·16^%d", 15-i%15, i), random, nibble(15-i%15, i), nibble(15-i%15, i), false, true)
	}
	// The top window only, with and without u1.
	for j := 1; j <= 15; j++ {
		add(fmt.Sprintf("u2 = %d·16^63", j), random, randScalar(rng), nibble(j, 63), false, true)
		add(fmt.Sprintf("u1 = 0, u2 = %d·16^63", j), keys[len(keys)-2].q, new(big.Int), nibble(j, 63), false, true)
	}
	add("u1 = u2 = n-1", random, nm1, nm1, false, true)
	add("u1 = 1, u2 = n-1", random, one, nm1, false, true)
	add("u1 = n-1, u2 = 1", random, nm1, one, false, true)
	// x(R) in [n, p): Q solved for R, r = x(R) − n; and the same with r
	// = x(R) unreduced, out of range.
	for pi, R := range highXPoints() {
		for j, u := range [][2]*big.Int{
			{randScalar(rng), randScalar(rng)},
			{new(big.Int), randScalar(rng)},
			{randScalar(rng), nibble(1+rng.IntN(15), 63)},
			{randScalar(rng), nibble(1+rng.IntN(15), rng.IntN(63))},
		} {
			name := fmt.Sprintf("x(R) = n + %s, point %d, %d", new(big.Int).Sub(R.x, refN), pi, j)
			bs = append(bs, func() []construction {
				q := solveKey(R, u[0], u[1])
				d, sig, valid := solve(q, u[0], u[1], false)
				if !valid || new(big.Int).SetBytes(sig[:32]).Cmp(new(big.Int).Sub(R.x, refN)) != 0 {
					panic(name + ": not what was meant")
				}
				return []construction{{name, q, d, sig, true}, unreducedR(name, q, R, u[0], u[1])}
			})
		}
	}
	// s small enough that s + n fits in 32 bytes: (r, s) valid, (r,
	// s + n) not.
	for j, s := range []*big.Int{one, big.NewInt(2), big.NewInt(3), nibble(1, 40), new(big.Int).Rsh(randScalar(rng), 40), new(big.Int).Rsh(randScalar(rng), 33)} {
		k, u1 := randScalar(rng), randScalar(rng)
		name := fmt.Sprintf("s = %s... (%d bits)", s.Text(16)[:min(8, len(s.Text(16)))], s.BitLen())
		bs = append(bs, func() []construction {
			R := refMul(k, refG)
			u2 := modN(new(big.Int).Mul(modN(R.x), inverseN(s)))
			q := solveKey(R, u1, u2)
			d, sig, valid := solve(q, u1, u2, false)
			if !valid || new(big.Int).SetBytes(sig[32:]).Cmp(s) != 0 {
				panic(name + ": not what was meant")
			}
			forged := append(append([]byte{}, sig[:32]...), new(big.Int).Add(s, refN).FillBytes(make([]byte, 32))...)
			return []construction{{name, q, d, sig, true}, {fmt.Sprintf("%s, s + n, %d", name, j), q, d, forged, false}}
		})
	}
	return bs
}

// forgeR is the signature with r chosen for which verification still
// computes u1 and u2: s = r/u2, e = u1·s. With r ≠ x(R) mod n it is
// invalid, and shows a verifier that reaches R but decides on something
// else than x(R).
func forgeR(name string, q refPoint, u1, u2, r *big.Int) construction {
	s := modN(new(big.Int).Mul(r, inverseN(u2)))
	e := modN(new(big.Int).Mul(u1, s))
	var d [32]byte
	e.FillBytes(d[:])
	return construction{name, q, d, append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...), false}
}

// unreducedR is the signature for R = [u1]G + [u2]Q with r = x(R), not
// reduced (x(R) ≥ n): out of range, refused by step 1; a verifier
// without the range check and without the reduction would accept it.
func unreducedR(name string, q, R refPoint, u1, u2 *big.Int) construction {
	return forgeR(name+", r = x(R) unreduced", q, u1, u2, R.x)
}

// sameOperands is the forgery for [u1]G = [u2]Q with r = x([u1]G): a
// verifier that accepts, or returns an operand, when the two points are
// equal accepts it.
func sameOperands(name string, q refPoint, u1, u2 *big.Int) construction {
	return forgeR(name+", r = x([u1]G)", q, u1, u2, modN(refMul(u1, refG).x))
}

// keyCache holds each key's PublicKey with its table, built once.
type keyCache struct {
	mu   sync.Mutex
	keys map[string][2]*PublicKey
}

// get returns q without and with its table.
func (c *keyCache) get(t testing.TB, q refPoint) (*PublicKey, *PublicKey) {
	t.Helper()
	id := q.x.Text(16) + "," + q.y.Text(16)
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.keys[id]; ok {
		return k[0], k[1]
	}
	plain, tab := twoKeys(t, refPublicKey(t, q))
	tab.Precompute()
	if c.keys == nil {
		c.keys = map[string][2]*PublicKey{}
	}
	c.keys[id] = [2]*PublicKey{plain, tab}
	return plain, tab
}

// check compares every verifier's answer on c with what c was built to be.
func (c construction) check(t testing.TB, keys *keyCache) {
	t.Helper()
	plain, tab := keys.get(t, c.q)
	ref := refVerify(c.q, &c.digest, c.sig)
	std := stdVerify(plain.pub, &c.digest, c.sig)
	got, gotTab := plain.Verify(&c.digest, c.sig), tab.Verify(&c.digest, c.sig)
	if ref != c.valid || std != c.valid || got != c.valid || gotTab != c.valid {
		t.Errorf("%s: built valid=%v; reference %v, crypto/ecdsa %v, Verify %v without the table, %v with it (digest %x, signature %x)",
			c.name, c.valid, ref, std, got, gotTab, c.digest, c.sig)
	}
}

// TestConstructed runs the constructed cases; under the race detector,
// which makes the math/big reference several times slower and has
// nothing to find in this single goroutine, those of every third
// builder.
func TestConstructed(t *testing.T) {
	bs := constructions()
	step := 1
	if raceEnabled {
		step = 3
	}
	var keys keyCache
	n, valid := 0, 0
	for i := 0; i < len(bs); i += step {
		for _, c := range bs[i]() {
			c.check(t, &keys)
			n++
			if c.valid {
				valid++
			}
		}
	}
	t.Logf("%d constructed cases (%d valid, %d to refuse) from %d of %d builders, %d keys", n, valid, n-valid, (len(bs)+step-1)/step, len(bs), len(keys.keys))
}

// FuzzConstructed lets the fuzzer choose u1 and u2 and how they relate
// to the key, solves for the signature, and compares the verifiers on it
// and on forgeries: s + n when it fits, x(R) unreduced when x(R) ≥ n,
// r = x([u1]G) when [u1]G = [u2]Q. rel chooses:
//
//	0: u1, u2 as given, key edgeKeys[key]
//	1: u1 = u2·d, so [u1]G = [u2]Q (a doubling)
//	2: u1 = −u2·d, so R is the point at infinity
//	3: u1 = 0
//	4: R = highXPoints[key], Q solved for it
func FuzzConstructed(f *testing.F) {
	for _, s := range constructedSeeds() {
		f.Add(s.key, s.rel, s.u1, s.u2)
	}
	var keys keyCache
	f.Fuzz(func(t *testing.T, key, rel uint8, a, b []byte) {
		u1, u2 := modN(new(big.Int).SetBytes(a)), modN(new(big.Int).SetBytes(b))
		if u2.Sign() == 0 {
			u2.SetInt64(1)
		}
		ek := edgeKeys()[int(key)%len(edgeKeys())]
		q := ek.q
		switch rel % 5 {
		case 1:
			u1 = modN(new(big.Int).Mul(u2, ek.d))
			sameOperands("fuzz", q, u1, u2).check(t, &keys)
		case 2:
			u1 = modN(new(big.Int).Neg(new(big.Int).Mul(u2, ek.d)))
		case 3:
			u1.SetInt64(0)
		case 4:
			R := highXPoints()[int(key)%len(highXPoints())]
			q = solveKey(R, u1, u2)
			unreducedR("fuzz", q, R, u1, u2).check(t, &keys)
		}
		d, sig, valid := solve(q, u1, u2, rel&8 != 0)
		c := construction{fmt.Sprintf("fuzz rel %d, u1 %x, u2 %x", rel%5, u1, u2), q, d, sig, valid}
		c.check(t, &keys)
		if s := new(big.Int).SetBytes(sig[32:]); s.Add(s, refN).BitLen() <= 256 {
			forged := append(append([]byte{}, sig[:32]...), s.FillBytes(make([]byte, 32))...)
			construction{c.name + ", s + n", q, d, forged, false}.check(t, &keys)
		}
	})
}

// constructedSeed is one input of FuzzConstructed.
type constructedSeed struct {
	key, rel uint8
	u1, u2   []byte
}

var writeCorpus = flag.Bool("p256.writecorpus", false, "rewrite testdata/fuzz/FuzzConstructed (TestWriteConstructedCorpus)")

const constructedCorpus = "testdata/fuzz/FuzzConstructed"

// constructedSeeds reads the committed seed corpus, or, with
// -p256.writecorpus, makes it: each relation with edge scalars.
func constructedSeeds() []constructedSeed {
	if !*writeCorpus {
		return nil // go test reads testdata/fuzz/FuzzConstructed itself
	}
	b := func(v *big.Int) []byte { return v.FillBytes(make([]byte, 32)) }
	nm1 := new(big.Int).Sub(refN, big.NewInt(1))
	rng := rand.New(rand.NewPCG(7, 7))
	var out []constructedSeed
	for rel := range uint8(5) {
		for key := range uint8(len(edgeKeys())) {
			u2s := []*big.Int{big.NewInt(1), nm1, nibble(1+int(key)%15, 63), nibble(15, int(key)*4%64), randScalar(rng)}
			u2 := u2s[int(key)%len(u2s)]
			u1 := []*big.Int{randScalar(rng), nm1, nibble(1, int(key))}[int(key)%3]
			out = append(out, constructedSeed{key, rel, b(u1), b(u2)})
		}
	}
	out = append(out, constructedSeed{0, 8 | 3, nil, []byte{1}}) // u1 = 0, digest n
	return out
}

// TestWriteConstructedCorpus rewrites FuzzConstructed's seed corpus.
// Run with: go test ./internal/p256/ -run TestWriteConstructedCorpus -p256.writecorpus
func TestWriteConstructedCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -p256.writecorpus")
	}
	if err := os.RemoveAll(constructedCorpus); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(constructedCorpus, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range constructedSeeds() {
		body := fmt.Sprintf("go test fuzz v1\nuint8(%d)\nuint8(%d)\n[]byte(%q)\n[]byte(%q)\n", s.key, s.rel, s.u1, s.u2)
		if err := os.WriteFile(filepath.Join(constructedCorpus, fmt.Sprintf("seed-%03d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
