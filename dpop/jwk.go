package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"math/big"
	"sync/atomic"

	"github.com/stepupgrpc/stepup/internal/base64url"
	"github.com/stepupgrpc/stepup/internal/p256"
	"github.com/stepupgrpc/stepup/internal/strictjson"
)

// maxRSABits is the absolute ceiling on RSA moduli: larger keys only make
// verification slower (a denial-of-service lever) and bring no security.
const maxRSABits = 8192

// keyType identifies a supported public key family.
type keyType uint8

const (
	keyP256 keyType = iota + 1
	keyP384
	keyEd25519
	keyRSA
)

// publicKey is a parsed, validated public JWK together with its RFC 7638
// thumbprint. It is immutable once built but for the use count and table
// state of a cached P-256 key (tables.go), and may be shared between
// goroutines.
type publicKey struct {
	typ        keyType
	ec         *ecdsa.PublicKey
	p256       atomic.Pointer[p256.PublicKey] // ec with its table, once it has one (tables.go)
	uses       atomic.Uint32                  // accepted proofs, counted until the key has a table
	table      atomic.Uint32                  // tableNone, tableHeld, tableReleased
	ed         ed25519.PublicKey
	rsa        *rsa.PublicKey
	rsaBits    int
	thumbprint string
	jwk        []byte // canonical public JWK (RFC 7638 member order)
}

func (k *publicKey) public() crypto.PublicKey {
	switch k.typ {
	case keyP256, keyP384:
		return k.ec
	case keyEd25519:
		return k.ed
	default:
		return k.rsa
	}
}

// privateMembers are the JWK members that carry secret key material
// (RFC 7518 §6.2.2, §6.3.2, §6.4). A proof key must be public
// (RFC 9449 §4.3 step 7).
func isPrivateMember(name string) bool {
	switch name {
	case "d", "p", "q", "dp", "dq", "qi", "oth", "k":
		return true
	}
	return false
}

// parseJWK parses and validates a JSON JWK object. With allowPrivate false a
// JWK holding private members is refused with ReasonPrivateKey; with true
// those members are ignored (for thumbprints of private JWKs).
func parseJWK(obj string, allowPrivate bool) (*publicKey, *ProofError) {
	var kty, crv, x, y, n, e string
	var private, illTyped bool
	err := parseJSONObject(obj, func(name string, v strictjson.Value) error {
		var dst *string
		switch name {
		case "kty":
			dst = &kty
		case "crv":
			dst = &crv
		case "x":
			dst = &x
		case "y":
			dst = &y
		case "n":
			dst = &n
		case "e":
			dst = &e
		default:
			if isPrivateMember(name) {
				private = true
			}
			return nil
		}
		s, ok := v.Str()
		*dst, illTyped = s, illTyped || !ok
		return nil
	})
	if err != nil {
		return nil, err
	}
	// RFC 9449 §4.3 step 7: the jwk must not contain a private key.
	if private && !allowPrivate {
		return nil, newError(ReasonPrivateKey, "jwk contains private key members")
	}
	if illTyped {
		return nil, newError(ReasonBadKey, "jwk member is not a string")
	}
	switch kty {
	case "EC":
		return parseECJWK(crv, x, y)
	case "OKP":
		if crv != "Ed25519" {
			return nil, newError(ReasonBadKey, "unsupported OKP curve")
		}
		pub, err := base64url.DecodeString(x)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, newError(ReasonBadKey, "invalid Ed25519 public key")
		}
		return newPublicKey(keyEd25519, nil, ed25519.PublicKey(pub), nil), nil
	case "RSA":
		return parseRSAJWK(n, e)
	case "":
		return nil, newError(ReasonBadKey, "jwk has no kty")
	default:
		return nil, newError(ReasonBadKey, "unsupported kty")
	}
}

func parseECJWK(crv, x, y string) (*publicKey, *ProofError) {
	var curve elliptic.Curve
	var typ keyType
	var size int
	switch crv {
	case "P-256":
		curve, typ, size = elliptic.P256(), keyP256, 32
	case "P-384":
		curve, typ, size = elliptic.P384(), keyP384, 48
	default:
		return nil, newError(ReasonBadKey, "unsupported EC curve")
	}
	// RFC 7518 §6.2.1.2-3: x and y are the full size of a field element,
	// which also makes their encoding (and so the thumbprint) unique.
	if base64url.DecodedLen(len(x)) != size || base64url.DecodedLen(len(y)) != size {
		return nil, newError(ReasonBadKey, "invalid EC coordinate length")
	}
	var buf [1 + 2*48]byte
	buf[0] = 4 // uncompressed point (SEC 1 §2.3.3)
	if _, err := base64url.Decode(buf[1:1+size], []byte(x)); err != nil {
		return nil, newError(ReasonBadKey, "invalid EC coordinate encoding")
	}
	if _, err := base64url.Decode(buf[1+size:1+2*size], []byte(y)); err != nil {
		return nil, newError(ReasonBadKey, "invalid EC coordinate encoding")
	}
	// ParseUncompressedPublicKey refuses points not on the curve, which
	// rules out invalid-curve attacks.
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, buf[:1+2*size])
	if err != nil {
		return nil, newError(ReasonBadKey, "EC point is not on the curve")
	}
	return newPublicKey(typ, pub, nil, nil), nil
}

func parseRSAJWK(n, e string) (*publicKey, *ProofError) {
	// Refuse before decoding anything larger than the ceiling.
	if base64url.DecodedLen(len(n)) > maxRSABits/8 {
		return nil, newError(ReasonWeakKey, "RSA modulus over 8192 bits")
	}
	nb, err := base64url.DecodeString(n)
	if err != nil || len(nb) == 0 {
		return nil, newError(ReasonBadKey, "invalid RSA modulus")
	}
	eb, err := base64url.DecodeString(e)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return nil, newError(ReasonBadKey, "invalid RSA exponent")
	}
	// RFC 7518 §6.3.1: values are minimal big-endian (no leading zero),
	// which keeps the thumbprint unique for a key.
	if nb[0] == 0 || eb[0] == 0 {
		return nil, newError(ReasonBadKey, "RSA value has a leading zero octet")
	}
	var ev int64
	for _, c := range eb {
		ev = ev<<8 | int64(c)
	}
	if ev < 3 || ev%2 == 0 || ev > 1<<31-1 {
		return nil, newError(ReasonBadKey, "invalid RSA exponent")
	}
	if nb[len(nb)-1]&1 == 0 {
		return nil, newError(ReasonBadKey, "RSA modulus is even")
	}
	mod := new(big.Int).SetBytes(nb)
	pub := &rsa.PublicKey{N: mod, E: int(ev)}
	return newPublicKey(keyRSA, nil, nil, pub), nil
}

// newPublicKey computes the canonical JWK and thumbprint of a validated key.
func newPublicKey(typ keyType, ec *ecdsa.PublicKey, ed ed25519.PublicKey, rk *rsa.PublicKey) *publicKey {
	k := &publicKey{typ: typ, ec: ec, ed: ed, rsa: rk}
	if rk != nil {
		k.rsaBits = rk.N.BitLen()
	}
	k.jwk = canonicalJWK(k)
	sum := sha256.Sum256(k.jwk)
	k.thumbprint = base64url.EncodeToString(sum[:])
	return k
}

// canonicalJWK returns the RFC 7638 §3.2 form: only the required members,
// in lexicographic order, no whitespace.
func canonicalJWK(k *publicKey) []byte {
	b := make([]byte, 0, 128)
	switch k.typ {
	case keyP256, keyP384:
		raw, _ := k.ec.Bytes() // 0x04 || x || y, validated on input
		size := (len(raw) - 1) / 2
		crv := "P-256"
		if k.typ == keyP384 {
			crv = "P-384"
		}
		b = append(b, `{"crv":"`...)
		b = append(b, crv...)
		b = append(b, `","kty":"EC","x":"`...)
		b = base64url.AppendEncode(b, raw[1:1+size])
		b = append(b, `","y":"`...)
		b = base64url.AppendEncode(b, raw[1+size:])
		b = append(b, `"}`...)
	case keyEd25519:
		b = append(b, `{"crv":"Ed25519","kty":"OKP","x":"`...)
		b = base64url.AppendEncode(b, k.ed)
		b = append(b, `"}`...)
	case keyRSA:
		e := big.NewInt(int64(k.rsa.E)).Bytes()
		b = append(b, `{"e":"`...)
		b = base64url.AppendEncode(b, e)
		b = append(b, `","kty":"RSA","n":"`...)
		b = base64url.AppendEncode(b, k.rsa.N.Bytes())
		b = append(b, `"}`...)
	}
	return b
}

// publicKeyFrom validates a Go public key and wraps it.
func publicKeyFrom(pub crypto.PublicKey) (*publicKey, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p == nil || p.Curve == nil {
			return nil, newError(ReasonBadKey, "nil EC key")
		}
		var typ keyType
		switch p.Curve {
		case elliptic.P256():
			typ = keyP256
		case elliptic.P384():
			typ = keyP384
		default:
			return nil, newError(ReasonBadKey, "unsupported EC curve")
		}
		if _, err := p.Bytes(); err != nil {
			return nil, &ProofError{Reason: ReasonBadKey, Detail: "invalid EC key", Err: err}
		}
		return newPublicKey(typ, p, nil, nil), nil
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return nil, newError(ReasonBadKey, "invalid Ed25519 key")
		}
		return newPublicKey(keyEd25519, nil, append(ed25519.PublicKey(nil), p...), nil), nil
	case *rsa.PublicKey:
		if p == nil || p.N == nil || p.N.Sign() <= 0 || p.E < 3 || p.E%2 == 0 || p.E > 1<<31-1 {
			return nil, newError(ReasonBadKey, "invalid RSA key")
		}
		if p.N.BitLen() > maxRSABits {
			return nil, newError(ReasonWeakKey, "RSA modulus over 8192 bits")
		}
		return newPublicKey(keyRSA, nil, nil, p), nil
	default:
		return nil, newError(ReasonBadKey, "unsupported public key type")
	}
}

// Thumbprint returns the RFC 7638 JWK SHA-256 thumbprint, base64url without
// padding, of a JSON JWK: the jkt of RFC 9449 §6.1. Supported key types are
// EC (P-256, P-384), OKP (Ed25519) and RSA (up to 8192 bits). Members other
// than the required ones (kid, alg, use, and private members) do not change
// the result. Errors are *ProofError (ReasonMalformed, ReasonBadKey,
// ReasonWeakKey).
func Thumbprint(jwk []byte) (string, error) {
	k, err := parseJWK(string(jwk), true)
	if err != nil {
		return "", err
	}
	return k.thumbprint, nil
}

// ThumbprintOf returns the RFC 7638 thumbprint of a public key:
// *ecdsa.PublicKey (P-256, P-384), ed25519.PublicKey or *rsa.PublicKey.
func ThumbprintOf(pub crypto.PublicKey) (string, error) {
	k, err := publicKeyFrom(pub)
	if err != nil {
		return "", err
	}
	return k.thumbprint, nil
}

// ATH returns the ath claim for an access token (RFC 9449 §4.2): the
// base64url encoding, without padding, of the SHA-256 hash of the ASCII
// token.
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64url.EncodeToString(sum[:])
}
