// Package p256 verifies ECDSA P-256 signatures (FIPS 186-5 §6.4.2) for a
// key that verifies many of them, as a DPoP server's returning clients
// do, with a table of the key's multiples that makes a verification cost
// a little more than half of crypto/ecdsa's.
//
// Only a key with its table is verified by this package's own code.
// Without one Verify is crypto/ecdsa's: the code below saved about a tenth
// of a verification there, against almost half with the table. In FIPS
// 140-3 mode (GODEBUG=fips140=on) Precompute builds nothing, so every
// verification stays inside the validated module.
//
// With the table, the group arithmetic is still filippo.io/nistec, the
// exported copy of the standard library's crypto/internal/fips140/nistec
// that crypto/ecdsa itself runs on (assembly on amd64 and arm64); [u1]G is
// its ScalarBaseMult, and the final addition its complete formula. What
// differs from ecdsa.VerifyASN1:
//
//   - [u2]Q is read from the key's table, [j·16^i]Q for every hexadecimal
//     digit j of u2 at position i: at most 64 point additions instead of
//     a full scalar multiplication. The additions run only for the
//     non-zero digits and the table is read at offsets given by them, so
//     the time depends on u2 = r/s mod n;
//   - the signature is the fixed-size R || S of JWS (RFC 7518 §3.4), read
//     directly rather than re-encoded as ASN.1 and parsed again;
//   - s is inverted with math/big's variable-time extended Euclid, and
//     u1 = e/s, u2 = r/s are computed with math/big, instead of
//     crypto/ecdsa's constant-time arithmetic.
//
// So the timing of a verification with a table depends on the signature
// and, through u1, slightly on the digest. That is harmless where the
// signed bytes hold no secret, as in a DPoP proof, whose claims are the
// request's method and URI, a time, a random jti, the server's nonce and
// ath, a hash of the access token from which the token cannot be
// recovered (RFC 9449 §4.2). It is why tables are for proof keys only:
// a signed statement that may carry a secret, such as a step-up answer
// with a TOTP code (dpop.VerifyJWS), is verified with a key that has no
// table, by crypto/ecdsa. (What the inversion could reveal is about s,
// which the signer's secret nonce k masks: s = k⁻¹(e + r·d).)
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
	pub *ecdsa.PublicKey // this package's own copy, for crypto/ecdsa
	q   *nistec.P256Point
	tab atomic.Pointer[table]
}

// table holds [j·16^i]Q at [i][j-1], for i < 64 and 1 ≤ j ≤ 15.
type table [64][15]nistec.P256Point

// tableBytes is the size of a table: 960 points of 96 bytes, 92 160 bytes.
const tableBytes = int(unsafe.Sizeof(table{}))

// TableSize is the memory Precompute adds to a key, in bytes: the table,
// 90 KiB, which the Go heap holds in 96 KiB (an object this large is
// rounded up to whole 8 KiB pages; TestTableSize measures it).
const TableSize = (tableBytes + 8<<10 - 1) &^ (8<<10 - 1)

// NewPublicKey validates pub, a P-256 key, and prepares it for Verify. It
// keeps no reference to pub: a caller that changes pub afterwards does not
// change k.
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
	own, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil, errors.New("p256: invalid public key")
	}
	return &PublicKey{pub: own, q: q}, nil
}

// Precompute builds k's table, once; Verify uses it from then on. It
// costs about as much as six verifications (BenchmarkPrecompute) and is
// safe to call concurrently with Verify. In FIPS 140-3 mode it does
// nothing.
func (k *PublicKey) Precompute() {
	if fips140.Enabled() || k.tab.Load() != nil {
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

// Precomputed reports whether k has its table, and so whether Verify runs
// this package's code rather than crypto/ecdsa.
func (k *PublicKey) Precomputed() bool { return k.tab.Load() != nil }

// SignatureSize is the length of a JWS ES256 signature: R || S, 32 bytes
// each, big-endian (RFC 7518 §3.4).
const SignatureSize = 64

// Verify reports whether sig, R || S as in JWS (RFC 7518 §3.4), is a valid
// ECDSA signature of digest, a SHA-256 digest, under k (FIPS 186-5
// §6.4.2): with k's table if it has one, with crypto/ecdsa otherwise.
func (k *PublicKey) Verify(digest *[32]byte, sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	if t := k.tab.Load(); t != nil {
		return t.verify(digest, sig)
	}
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(k.pub, digest[:], r, s)
}

// scalars are the big.Int temporaries of one verification, pooled so
// that their storage is reused.
type scalars struct{ r, s, e, w, u big.Int }

var scalarPool = sync.Pool{New: func() any { return new(scalars) }}

// verify is FIPS 186-5 §6.4.2 with [u2]Q read from t; sig is 64 bytes.
func (t *table) verify(digest *[32]byte, sig []byte) bool {
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
	// Step 6: R = [u1]G + [u2]Q, with the complete addition formula (R
	// may be a doubling: [u1]G = [u2]Q), and the point at infinity
	// refused.
	var p1, p2 nistec.P256Point
	if _, err := p1.ScalarBaseMult(u1[:]); err != nil {
		return false // not reached: u1 is 32 bytes
	}
	t.mult(&p2, &u2)
	x, err := p1.Add(&p1, &p2).BytesX()
	if err != nil {
		return false // R is the point at infinity
	}
	// Steps 7-8: v = x(R) mod n (x < p < 2n, so at most one subtraction);
	// valid when v = r.
	v := sc.u.SetBytes(x)
	if v.Cmp(order) >= 0 {
		v.Sub(v, order)
	}
	return v.Cmp(r) == 0
}

// mult sets p = [u]Q from the table, u big-endian: one addition per
// non-zero hexadecimal digit of u.
func (t *table) mult(p *nistec.P256Point, u *[32]byte) {
	p.Set(infinity)
	for i := range 64 {
		d := u[31-i/2] >> (4 * (i % 2)) & 0xf
		if d != 0 {
			p.Add(p, &t[i][d-1])
		}
	}
}
