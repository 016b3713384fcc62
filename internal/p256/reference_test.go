package p256

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"math/big"
	"sync"
	"testing"
)

// A second implementation of P-256 ECDSA verification, written for the
// tests on math/big from the textbook formulas and nothing else: it
// shares no code with filippo.io/nistec, crypto/ecdsa or crypto/elliptic,
// and takes the curve's constants from SEC 2 §2.4.2 (= FIPS 186-5, SP
// 800-186 §3.2.1.3), written out below. It is slow (about 0.5 ms a scalar
// multiplication) and simple: Jacobian coordinates, double-and-add, the
// special cases of the addition (P = Q, P = −Q, the point at infinity)
// handled explicitly.

func hexInt(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic("bad hex " + s)
	}
	return v
}

var (
	refP  = hexInt("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff")
	refN  = hexInt("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
	refB  = hexInt("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b")
	refGx = hexInt("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296")
	refGy = hexInt("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")
	refG  = refPoint{x: refGx, y: refGy}
)

// refPoint is an affine point; x == nil is the point at infinity.
type refPoint struct{ x, y *big.Int }

func (p refPoint) inf() bool { return p.x == nil }

// jac is a point in Jacobian coordinates: x = X/Z², y = Y/Z³; Z = 0 is
// the point at infinity.
type jac struct{ X, Y, Z *big.Int }

func modP(v *big.Int) *big.Int { return v.Mod(v, refP) }

// fmul, fsub, fadd and fsmall are the field operations on elements in
// [0, p).
func fmul(a, b *big.Int) *big.Int { return modP(new(big.Int).Mul(a, b)) }

func fsub(a, b *big.Int) *big.Int {
	v := new(big.Int).Sub(a, b)
	if v.Sign() < 0 {
		v.Add(v, refP)
	}
	return v
}

func fadd(a, b *big.Int) *big.Int {
	v := new(big.Int).Add(a, b)
	if v.Cmp(refP) >= 0 {
		v.Sub(v, refP)
	}
	return v
}

func fsmall(k int64, a *big.Int) *big.Int {
	return modP(new(big.Int).Mul(big.NewInt(k), a))
}

func toJac(p refPoint) jac {
	if p.inf() {
		return jac{big.NewInt(1), big.NewInt(1), new(big.Int)}
	}
	return jac{new(big.Int).Set(p.x), new(big.Int).Set(p.y), big.NewInt(1)}
}

func (p jac) affine() refPoint {
	if p.Z.Sign() == 0 {
		return refPoint{}
	}
	zi := new(big.Int).ModInverse(p.Z, refP)
	zi2 := fmul(zi, zi)
	return refPoint{x: fmul(p.X, zi2), y: fmul(p.Y, fmul(zi2, zi))}
}

// double is 2P for a = −3 ("dbl-2001-b").
func (p jac) double() jac {
	if p.Z.Sign() == 0 || p.Y.Sign() == 0 {
		return jac{big.NewInt(1), big.NewInt(1), new(big.Int)}
	}
	delta := fmul(p.Z, p.Z)
	gamma := fmul(p.Y, p.Y)
	beta := fmul(p.X, gamma)
	alpha := fsmall(3, fmul(fsub(p.X, delta), fadd(p.X, delta)))
	x3 := fsub(fmul(alpha, alpha), fsmall(8, beta))
	yz := fadd(p.Y, p.Z)
	z3 := fsub(fsub(fmul(yz, yz), gamma), delta)
	y3 := fsub(fmul(alpha, fsub(fsmall(4, beta), x3)), fsmall(8, fmul(gamma, gamma)))
	return jac{x3, y3, z3}
}

// add is P + Q ("add-1998-cmo-2"), with P = Q and P = −Q decided first.
func (p jac) add(q jac) jac {
	if p.Z.Sign() == 0 {
		return q
	}
	if q.Z.Sign() == 0 {
		return p
	}
	z1z1, z2z2 := fmul(p.Z, p.Z), fmul(q.Z, q.Z)
	u1, u2 := fmul(p.X, z2z2), fmul(q.X, z1z1)
	s1, s2 := fmul(p.Y, fmul(q.Z, z2z2)), fmul(q.Y, fmul(p.Z, z1z1))
	h, r := fsub(u2, u1), fsub(s2, s1)
	if h.Sign() == 0 {
		if r.Sign() == 0 {
			return p.double() // P = Q
		}
		return jac{big.NewInt(1), big.NewInt(1), new(big.Int)} // P = −Q
	}
	h2 := fmul(h, h)
	h3 := fmul(h2, h)
	u1h2 := fmul(u1, h2)
	x3 := fsub(fsub(fmul(r, r), h3), fsmall(2, u1h2))
	y3 := fsub(fmul(r, fsub(u1h2, x3)), fmul(s1, h3))
	z3 := fmul(fmul(p.Z, q.Z), h)
	return jac{x3, y3, z3}
}

// refAdd is P + Q.
func refAdd(p, q refPoint) refPoint { return toJac(p).add(toJac(q)).affine() }

// refNeg is −P.
func refNeg(p refPoint) refPoint {
	if p.inf() {
		return p
	}
	return refPoint{x: p.x, y: modP(new(big.Int).Neg(p.y))}
}

// refMul is [k]P, k ≥ 0, by double-and-add from the top bit. The
// results are remembered (a construction and the reference's
// verification of it compute the same products).
func refMul(k *big.Int, p refPoint) refPoint {
	if p.inf() {
		return p
	}
	id := k.Text(16) + " " + p.x.Text(16) + " " + p.y.Text(16)
	refMemo.Lock()
	v, ok := refMemo.m[id]
	refMemo.Unlock()
	if ok {
		return v
	}
	v = refMulDirect(k, p)
	refMemo.Lock()
	if len(refMemo.m) >= 1<<14 || refMemo.m == nil {
		refMemo.m = map[string]refPoint{} // bounded, for long fuzzing runs
	}
	refMemo.m[id] = v
	refMemo.Unlock()
	return v
}

var refMemo struct {
	sync.Mutex
	m map[string]refPoint
}

func refMulDirect(k *big.Int, p refPoint) refPoint {
	acc, base := toJac(refPoint{}), toJac(p)
	for i := k.BitLen() - 1; i >= 0; i-- {
		acc = acc.double()
		if k.Bit(i) == 1 {
			acc = acc.add(base)
		}
	}
	return acc.affine()
}

// refOnCurve reports whether p satisfies y² = x³ − 3x + b (mod p) with
// coordinates in [0, p).
func refOnCurve(p refPoint) bool {
	if p.inf() || p.x.Sign() < 0 || p.x.Cmp(refP) >= 0 || p.y.Sign() < 0 || p.y.Cmp(refP) >= 0 {
		return false
	}
	rhs := fadd(fsub(fmul(fmul(p.x, p.x), p.x), fsmall(3, p.x)), refB)
	return fmul(p.y, p.y).Cmp(rhs) == 0
}

// refSqrt is a square root of a mod p, if there is one (p ≡ 3 mod 4:
// a^((p+1)/4)).
func refSqrt(a *big.Int) (*big.Int, bool) {
	e := new(big.Int).Add(refP, big.NewInt(1))
	e.Rsh(e, 2)
	y := new(big.Int).Exp(a, e, refP)
	return y, fmul(y, y).Cmp(modP(new(big.Int).Set(a))) == 0
}

// inverseN is a⁻¹ mod n by Fermat (a^(n−2)), not by the extended Euclid
// that Verify uses.
func inverseN(a *big.Int) *big.Int {
	return new(big.Int).Exp(a, new(big.Int).Sub(refN, big.NewInt(2)), refN)
}

// refVerify is FIPS 186-5 §6.4.2 for a 32-byte digest and R || S.
func refVerify(q refPoint, digest *[32]byte, sig []byte) bool {
	if len(sig) != 64 || !refOnCurve(q) {
		return false
	}
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	// Step 1.
	if r.Sign() <= 0 || r.Cmp(refN) >= 0 || s.Sign() <= 0 || s.Cmp(refN) >= 0 {
		return false
	}
	// Steps 2-3: the digest's 256 bits as an integer (not reduced).
	e := new(big.Int).SetBytes(digest[:])
	// Steps 4-5.
	w := inverseN(s)
	u1 := new(big.Int).Mul(e, w)
	u1.Mod(u1, refN)
	u2 := new(big.Int).Mul(r, w)
	u2.Mod(u2, refN)
	// Step 6.
	R := refAdd(refMul(u1, refG), refMul(u2, q))
	if R.inf() {
		return false
	}
	// Steps 7-8.
	v := new(big.Int).Mod(R.x, refN)
	return v.Cmp(r) == 0
}

// TestReference checks the reference itself: its constants against the
// standard library's, the group order, a doubling and an addition against
// each other, and its verdict on NIST's SigVer vectors.
func TestReference(t *testing.T) {
	params := elliptic.P256().Params()
	for _, c := range []struct {
		name     string
		ref, std *big.Int
	}{{"p", refP, params.P}, {"n", refN, params.N}, {"b", refB, params.B}, {"Gx", refGx, params.Gx}, {"Gy", refGy, params.Gy}} {
		if c.ref.Cmp(c.std) != 0 {
			t.Fatalf("%s differs from crypto/elliptic's", c.name)
		}
	}
	if !refOnCurve(refG) {
		t.Fatal("G is not on the curve")
	}
	if !refMul(refN, refG).inf() {
		t.Fatal("[n]G is not the point at infinity")
	}
	nm1 := new(big.Int).Sub(refN, big.NewInt(1))
	if got := refMul(nm1, refG); got.inf() || got.x.Cmp(refGx) != 0 || got.y.Cmp(refNeg(refG).y) != 0 {
		t.Fatal("[n-1]G is not -G")
	}
	two := refAdd(refG, refG)
	three := refAdd(two, refG)
	if got := refMul(big.NewInt(3), refG); got.x.Cmp(three.x) != 0 || got.y.Cmp(three.y) != 0 || !refOnCurve(three) {
		t.Fatal("[3]G is not G + G + G")
	}
	if !refAdd(three, refNeg(three)).inf() {
		t.Fatal("P + (-P) is not the point at infinity")
	}
	for i, v := range loadVectors(t) {
		q := refPoint{x: new(big.Int).SetBytes(v.qx), y: new(big.Int).SetBytes(v.qy)}
		sig := append(fixed32(v.r), fixed32(v.s)...)
		if got := refVerify(q, digest32(v.section, v.msg), sig); got != v.pass {
			t.Errorf("vector %d (%s): reference %v, want %s", i, v.section, got, v.result)
		}
	}
}

// refPublicKey is p as a crypto/ecdsa key.
func refPublicKey(t testing.TB, p refPoint) *ecdsa.PublicKey {
	t.Helper()
	raw := append([]byte{4}, append(p.x.FillBytes(make([]byte, 32)), p.y.FillBytes(make([]byte, 32))...)...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		t.Fatalf("key %x: %v", raw, err)
	}
	return pub
}
