// Package p256 verifies ECDSA P-256 signatures (FIPS 186-5 §6.4.2) with a
// public key decoded and validated once, for a verifier that sees the same
// keys again and again, as a DPoP server does.
//
// The group arithmetic is filippo.io/nistec, the exported copy of the
// standard library's crypto/internal/fips140/nistec that crypto/ecdsa
// itself runs on (assembly on amd64 and arm64). What differs from
// ecdsa.VerifyASN1 is only around it:
//
//   - the key is decoded and checked to be on the curve when it is built,
//     not twice per signature;
//   - the signature is the fixed-size R || S of JWS (RFC 7518 §3.4), read
//     directly rather than re-encoded as ASN.1 and parsed again;
//   - the inverse of s is computed with math/big's variable-time extended
//     Euclid instead of a constant-time exponentiation. Every input of a
//     verification (key, digest, signature) is public, so nothing secret
//     can leak through its timing. The group operations stay the
//     constant-time ones of nistec.
//
// For a key that verifies many signatures, Precompute builds a table of
// multiples of it (TableSize bytes) with which [u2]Q, three quarters of
// a verification's work, becomes at most 64 point additions instead of a
// full scalar multiplication: a verification then costs a little more
// than half as much. The table is read at offsets given by u2, a public
// value.
//
// With the Go module in FIPS 140-3 mode (GODEBUG=fips140=on) Verify uses
// crypto/ecdsa, so that every verification stays inside the validated
// module.
package p256

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/fips140"
	"errors"
	"math/big"
	"sync"
	"sync/atomic"
	"unsafe"

	"filippo.io/nistec"
)

// order is n, the order of the P-256 base point.
var order = elliptic.P256().Params().N

// infinity is the point at infinity (read only).
var infinity = nistec.NewP256Point()

// PublicKey is a P-256 public key, validated, ready to verify signatures.
// It is safe for concurrent use; Precompute adds its table once.
type PublicKey struct {
	q   *nistec.P256Point
	pub *ecdsa.PublicKey // for FIPS 140-3 mode
	tab atomic.Pointer[table]
}

// table holds [j·16^i]Q at [i][j-1], for i < 64 and 1 ≤ j ≤ 15.
type table [64][15]nistec.P256Point

// TableSize is the memory Precompute adds to a key, in bytes (92 KiB).
const TableSize = int(unsafe.Sizeof(table{}))

// Precompute builds k's table, once; Verify uses it from then on. It
// costs about as much as six verifications without it (BenchmarkPrecompute)
// and is safe to call concurrently with Verify.
func (k *PublicKey) Precompute() {
	if k.tab.Load() != nil {
		return
	}
	t := new(table)
	base := nistec.NewP256Point().Set(k.q) // 16^i·Q
	for i := range t {
		t[i][0].Set(base)
		for j := 1; j < 15; j++ {
			t[i][j].Add(&t[i][j-1], base)
		}
		base.Add(&t[i][14], base)
	}
	k.tab.CompareAndSwap(nil, t)
}

// Precomputed reports whether k has its table.
func (k *PublicKey) Precomputed() bool { return k.tab.Load() != nil }

// mult sets p = [u]Q from the table, u big-endian: one addition per
// non-zero hexadecimal digit of u, which is public.
func (t *table) mult(p *nistec.P256Point, u *[32]byte) {
	p.Set(infinity)
	for i := range 64 {
		d := u[31-i/2] >> (4 * (i % 2)) & 0xf
		if d != 0 {
			p.Add(p, &t[i][d-1])
		}
	}
}

// NewPublicKey validates pub, a P-256 key, and prepares it for Verify.
func NewPublicKey(pub *ecdsa.PublicKey) (*PublicKey, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, errors.New("p256: not a P-256 public key")
	}
	raw, err := pub.Bytes() // 0x04 || X || Y; refuses invalid coordinates
	if err != nil {
		return nil, errors.New("p256: invalid public key")
	}
	q, err := nistec.NewP256Point().SetBytes(raw) // refuses points off the curve
	if err != nil {
		return nil, errors.New("p256: invalid public key")
	}
	return &PublicKey{q: q, pub: pub}, nil
}

// SignatureSize is the length of a JWS ES256 signature: R || S, 32 bytes
// each, big-endian (RFC 7518 §3.4).
const SignatureSize = 64

// scalars are the big.Int temporaries of one verification, pooled so
// that their storage is reused.
type scalars struct{ r, s, e, w, u big.Int }

var scalarPool = sync.Pool{New: func() any { return new(scalars) }}

// Verify reports whether sig, R || S as in JWS (RFC 7518 §3.4), is a valid
// ECDSA signature of digest, a SHA-256 digest, under k (FIPS 186-5
// §6.4.2).
func (k *PublicKey) Verify(digest *[32]byte, sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	if fips140.Enabled() {
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.pub, digest[:], r, s)
	}
	sc := scalarPool.Get().(*scalars)
	defer scalarPool.Put(sc)
	// Step 1: r and s in [1, n-1].
	r := sc.r.SetBytes(sig[:32])
	s := sc.s.SetBytes(sig[32:])
	if r.Sign() == 0 || s.Sign() == 0 || r.Cmp(order) >= 0 || s.Cmp(order) >= 0 {
		return false
	}
	// Steps 2-3: e is the digest as an integer (a SHA-256 digest is
	// exactly the 256 bits of n).
	e := sc.e.SetBytes(digest[:])
	// Step 4: w = s⁻¹ mod n; n is prime and 0 < s < n, so it exists.
	w := sc.w.ModInverse(s, order)
	// Step 5: u1 = e·w mod n, u2 = r·w mod n.
	var u1, u2 [32]byte
	u := sc.u.Mul(e, w)
	u.Mod(u, order).FillBytes(u1[:])
	u.Mul(r, w)
	u.Mod(u, order).FillBytes(u2[:])
	// Step 6: R = [u1]G + [u2]Q; the point at infinity is refused.
	var p1, p2 nistec.P256Point
	if _, err := p1.ScalarBaseMult(u1[:]); err != nil {
		return false
	}
	if t := k.tab.Load(); t != nil {
		t.mult(&p2, &u2)
	} else if _, err := p2.ScalarMult(k.q, u2[:]); err != nil {
		return false
	}
	x, err := p1.Add(&p1, &p2).BytesX()
	if err != nil {
		return false
	}
	// Steps 7-8: v = x(R) mod n (x < p < 2n, so at most one subtraction);
	// valid when v = r.
	v := sc.u.SetBytes(x)
	if v.Cmp(order) >= 0 {
		v.Sub(v, order)
	}
	return v.Cmp(r) == 0
}
