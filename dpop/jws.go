package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"strings"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/stepupgrpc/stepup/internal/base64url"
	"github.com/stepupgrpc/stepup/internal/strictjson"
)

// DefaultMaxSize is the default limit, in bytes, on a compact JWS. An RSA
// 4096 proof with a token hash and a nonce is about 2 KiB; 8 KiB leaves room
// for larger keys while bounding the work an unauthenticated caller can ask
// for.
const DefaultMaxSize = 8 << 10

// DefaultMinRSABits is the default minimum RSA modulus size
// (RFC 8725 §3.5, NIST SP 800-131A).
const DefaultMinRSABits = 2048

// algorithm is a bit in an allowlist.
type algorithm uint8

const (
	algES256 algorithm = 1 << iota
	algES384
	algEdDSA
	algEd25519
	algPS256
	algRS256

	algAll = algES256 | algES384 | algEdDSA | algEd25519 | algPS256 | algRS256
)

// DefaultAlgorithms is the allowlist used when none is configured: ECDSA
// P-256 and P-384, Ed25519 under both its polymorphic name "EdDSA" and its
// fully-specified name "Ed25519" (RFC 9864), RSASSA-PSS and RSASSA-PKCS1-v1_5
// with SHA-256. "none" and HMAC algorithms are never accepted: a proof must be
// verifiable with the public key it carries (RFC 9449 §4.3 step 5).
func DefaultAlgorithms() []string {
	return []string{"ES256", "ES384", "EdDSA", "Ed25519", "PS256", "RS256"}
}

func algorithmByName(name string) algorithm {
	switch name {
	case "ES256":
		return algES256
	case "ES384":
		return algES384
	case "EdDSA":
		return algEdDSA
	case "Ed25519":
		return algEd25519
	case "PS256":
		return algPS256
	case "RS256":
		return algRS256
	}
	return 0
}

func (a algorithm) String() string {
	switch a {
	case algES256:
		return "ES256"
	case algES384:
		return "ES384"
	case algEdDSA:
		return "EdDSA"
	case algEd25519:
		return "Ed25519"
	case algPS256:
		return "PS256"
	case algRS256:
		return "RS256"
	}
	return ""
}

// keyType returns the only key type the algorithm may be used with, which
// rules out algorithm/key confusion (RFC 8725 §3.1).
func (a algorithm) keyType() keyType {
	switch a {
	case algES256:
		return keyP256
	case algES384:
		return keyP384
	case algEdDSA, algEd25519:
		return keyEd25519
	default:
		return keyRSA
	}
}

// algorithmSet converts names to a set; unknown names are reported.
func algorithmSet(names []string) (algorithm, string) {
	var set algorithm
	for _, n := range names {
		a := algorithmByName(n)
		if a == 0 {
			return 0, n
		}
		set |= a
	}
	return set, ""
}

// header is the option-independent result of parsing a protected header: it
// depends only on the header bytes, so it can be cached by those bytes.
type header struct {
	typ string
	alg algorithm
	key *publicKey
}

// jwsConfig holds the checks that depend on the caller's options.
type jwsConfig struct {
	typ        string
	algs       algorithm
	maxSize    int
	minRSABits int
}

// headerCache maps a raw protected-header segment to its parsed form, so a
// client that keeps its key (the common case) costs one map lookup instead of
// base64, JSON, point validation and a thumbprint hash.
type headerCache = lru.Cache[string, *header]

// compactJWS is a JWS split and decoded, before the signature is checked.
// Its three slices share one allocation.
type compactJWS struct {
	hdr          *header
	signingInput []byte // ASCII(BASE64URL(header) || '.' || BASE64URL(payload))
	payload      []byte // decoded payload
	sig          []byte // decoded signature
}

// parseCompact runs every check of a compact JWS that does not need the
// claims or the signature: size, shape, header (RFC 9449 §4.3 steps 1-7).
//
// The decoded parts live in scratch when it is large enough (the caller then
// must not keep them after releasing scratch), else in a new buffer.
func parseCompact(compact string, cfg *jwsConfig, cache *headerCache, scratch []byte) (compactJWS, *ProofError) {
	var out compactJWS
	if len(compact) > cfg.maxSize {
		return out, newError(ReasonTooLarge, "proof over the size limit")
	}
	// RFC 9449 §4.3 step 2: a well-formed JWS in compact serialisation
	// (RFC 7515 §7.1): three base64url segments. Empty payload and
	// signature segments are well-formed (an unsecured JWS has an empty
	// signature); the header, claims and signature checks refuse them.
	d1 := strings.IndexByte(compact, '.')
	if d1 <= 0 {
		return out, newError(ReasonMalformed, "not a compact JWS")
	}
	d2 := strings.IndexByte(compact[d1+1:], '.')
	if d2 < 0 {
		return out, newError(ReasonMalformed, "not a compact JWS")
	}
	d2 += d1 + 1
	if strings.IndexByte(compact[d2+1:], '.') >= 0 {
		return out, newError(ReasonMalformed, "not a compact JWS")
	}
	hdr, err := parseHeader(compact[:d1], cfg, cache)
	if err != nil {
		return out, err
	}
	// One buffer holds the signing input (hashed as is) and the decoded
	// payload and signature, so the hot path copies the proof once.
	need := len(compact) + base64url.DecodedLen(d2-d1-1) + base64url.DecodedLen(len(compact)-d2-1)
	buf := scratch[:0]
	if cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	buf = append(buf, compact...)[:need]
	raw, tail := buf[:len(compact)], buf[len(compact):]
	// base64url refuses every other spelling of a segment (line breaks,
	// padding, trailing bits).
	n, perr := base64url.Decode(tail, raw[d1+1:d2])
	if perr != nil {
		return out, newError(ReasonMalformed, "payload is not base64url")
	}
	payload := tail[:n:n]
	tail = tail[n:]
	n, serr := base64url.Decode(tail, raw[d2+1:])
	if serr != nil {
		return out, newError(ReasonMalformed, "signature is not base64url")
	}
	out.hdr, out.signingInput, out.payload, out.sig = hdr, raw[:d2:d2], payload, tail[:n:n]
	return out, nil
}

// parseHeader decodes and checks the protected header, using the cache when
// one is given. Option-dependent checks run on every call, so a cache may be
// shared only by callers with the same options.
func parseHeader(seg string, cfg *jwsConfig, cache *headerCache) (*header, *ProofError) {
	if cache != nil {
		if h, ok := cache.Get(seg); ok {
			if err := h.check(cfg); err != nil {
				return nil, err
			}
			return h, nil
		}
	}
	raw, err := base64url.DecodeString(seg)
	if err != nil {
		return nil, newError(ReasonMalformed, "header is not base64url")
	}
	var typ, alg, jwk string
	var hasTyp, hasAlg, hasJWK, hasCrit, illTyped bool
	perr := parseJSONObject(string(raw), func(name string, v strictjson.Value) error {
		switch name {
		case "typ":
			var ok bool
			typ, ok = v.Str()
			hasTyp, illTyped = true, illTyped || !ok
		case "alg":
			var ok bool
			alg, ok = v.Str()
			hasAlg, illTyped = true, illTyped || !ok
		case "jwk":
			hasJWK = true
			if v.Kind() != strictjson.Object {
				illTyped = true
			}
			jwk = v.Raw()
		case "crit":
			hasCrit = true
		}
		return nil
	})
	if perr != nil {
		return nil, perr
	}
	if illTyped {
		return nil, newError(ReasonMalformed, "header member has the wrong JSON type")
	}
	// RFC 9449 §4.3 step 4: typ is dpop+jwt (explicit typing, RFC 8725 §3.11).
	if !hasTyp || typ != cfg.typ || cfg.typ == "" {
		return nil, newError(ReasonBadType, "unexpected typ")
	}
	// RFC 9449 §4.3 step 5: alg is an asymmetric algorithm we allow.
	a := algorithmByName(alg)
	if !hasAlg || a == 0 || cfg.algs&a == 0 {
		return nil, newError(ReasonBadAlgorithm, "algorithm not allowed")
	}
	// RFC 7515 §4.1.11: we understand no extension, so any crit is fatal.
	if hasCrit {
		return nil, newError(ReasonBadKey, "crit header not supported")
	}
	// RFC 9449 §4.3 step 7: a public jwk is required.
	if !hasJWK {
		return nil, newError(ReasonBadKey, "header has no jwk")
	}
	key, kerr := parseJWK(jwk, false)
	if kerr != nil {
		return nil, kerr
	}
	h := &header{typ: typ, alg: a, key: key}
	if err := h.check(cfg); err != nil {
		return nil, err
	}
	if cache != nil {
		// Clone: seg is a substring of the whole proof, which the cache
		// must not keep alive. The first of concurrent misses wins, so
		// that every proof of a key counts towards one cached key (and
		// its table).
		if prev, ok, _ := cache.PeekOrAdd(strings.Clone(seg), h); ok {
			return prev, nil
		}
	}
	return h, nil
}

// check applies the option-dependent header checks.
func (h *header) check(cfg *jwsConfig) *ProofError {
	if h.typ != cfg.typ || cfg.typ == "" {
		return newError(ReasonBadType, "unexpected typ")
	}
	if cfg.algs&h.alg == 0 {
		return newError(ReasonBadAlgorithm, "algorithm not allowed")
	}
	// RFC 8725 §3.1: the key must be of the type the algorithm names.
	if h.alg.keyType() != h.key.typ {
		return newError(ReasonBadAlgorithm, "algorithm does not match the key type")
	}
	if h.key.typ == keyRSA && h.key.rsaBits < cfg.minRSABits {
		return newError(ReasonWeakKey, "RSA modulus under the minimum size")
	}
	return nil
}

// verifySignature checks sig over signingInput with the header's key and
// algorithm (RFC 9449 §4.3 step 6, RFC 7518 §3).
func verifySignature(h *header, signingInput, sig []byte) bool {
	k := h.key
	switch h.alg {
	case algES256:
		if len(sig) != 64 {
			return false
		}
		digest := sha256.Sum256(signingInput)
		// internal/p256's own arithmetic only for a proof key that has
		// its table (tables.go); every other ES256 signature, and every
		// one in FIPS 140-3 mode, where no table is built, is
		// crypto/ecdsa's.
		if t := k.p256.Load(); t != nil {
			return t.Verify(&digest, sig)
		}
		return verifyECDSA(k.ec, digest[:], sig)
	case algES384:
		if len(sig) != 96 {
			return false
		}
		digest := sha512.Sum384(signingInput)
		return verifyECDSA(k.ec, digest[:], sig)
	case algEdDSA, algEd25519:
		// Pure Ed25519 (RFC 8037 §3.1); ed25519.Verify refuses
		// non-canonical signatures.
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.ed, signingInput, sig)
	case algPS256:
		digest := sha256.Sum256(signingInput)
		// RFC 7518 §3.5: the salt is as long as the hash.
		return rsa.VerifyPSS(k.rsa, crypto.SHA256, digest[:], sig,
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	case algRS256:
		digest := sha256.Sum256(signingInput)
		return rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, digest[:], sig) == nil
	}
	return false
}

// verifyECDSA checks a JWS ECDSA signature, the fixed-size R || S of
// RFC 7518 §3.4, by re-encoding it as the ASN.1 form the standard library
// takes (ES384, and ES256 with a key that has no table).
func verifyECDSA(pub *ecdsa.PublicKey, digest, sig []byte) bool {
	// The buffer is pooled: ecdsa.VerifyASN1 lets its argument escape, so
	// a local array would be allocated on every call.
	buf := derPool.Get().(*[derMax]byte)
	defer derPool.Put(buf)
	half := len(sig) / 2
	der := buf[:2]
	der = appendASN1Int(der, sig[:half])
	der = appendASN1Int(der, sig[half:])
	buf[0], buf[1] = 0x30, byte(len(der)-2) // SEQUENCE, short-form length (< 128)
	return ecdsa.VerifyASN1(pub, digest, der)
}

// derMax is the longest DER ECDSA signature verifyECDSA builds (P-384).
const derMax = 2 + 2*(2+1+48)

var derPool = sync.Pool{New: func() any { return new([derMax]byte) }}

// appendASN1Int appends a DER INTEGER holding the unsigned big-endian v.
func appendASN1Int(b, v []byte) []byte {
	for len(v) > 1 && v[0] == 0 {
		v = v[1:]
	}
	pad := len(v) > 0 && v[0]&0x80 != 0
	n := len(v)
	if pad {
		n++
	}
	b = append(b, 0x02, byte(n))
	if pad {
		b = append(b, 0)
	}
	return append(b, v...)
}

// JWSOptions configures VerifyJWS.
type JWSOptions struct {
	// Type is the required typ header, for example "dpop+jwt". It must be
	// set: a JWS is only accepted for the purpose its type names
	// (RFC 8725 §3.11); an empty Type refuses everything.
	Type string
	// Algorithms is the allowlist; nil means DefaultAlgorithms. Names
	// outside DefaultAlgorithms never match.
	Algorithms []string
	// MaxSize limits the compact JWS length; 0 means DefaultMaxSize.
	MaxSize int
	// MinRSABits is the minimum RSA modulus; 0 means DefaultMinRSABits.
	// Values under DefaultMinRSABits are raised to it.
	MinRSABits int
	// Thumbprint, if set, is the RFC 7638 thumbprint the embedded jwk must
	// have (ReasonKeyMismatch otherwise).
	Thumbprint string
}

// JWS is a verified JWS signed by the public key it embeds.
type JWS struct {
	// Algorithm is the alg header.
	Algorithm string
	// Thumbprint is the RFC 7638 thumbprint of the embedded jwk.
	Thumbprint string
	// PublicKey is the embedded key: *ecdsa.PublicKey, ed25519.PublicKey or
	// *rsa.PublicKey.
	PublicKey crypto.PublicKey
	// Payload is the decoded payload, a JSON object checked for duplicate
	// member names and depth.
	Payload []byte
}

// VerifyJWS verifies a compact JWS whose protected header carries typ, alg
// and a public jwk, and whose payload is a JSON object. It applies the same
// header checks as a DPoP proof (algorithm allowlist, key type matching alg,
// public key only, RSA size, valid EC point, no crit) and returns the
// payload for the caller to interpret. It does not check any claim and keeps
// no replay state: that is the caller's job. Errors are *ProofError.
func VerifyJWS(compact string, opts JWSOptions) (*JWS, error) {
	cfg := jwsConfig{typ: opts.Type, algs: algAll, maxSize: opts.MaxSize, minRSABits: opts.MinRSABits}
	if opts.Algorithms != nil {
		cfg.algs = 0
		for _, n := range opts.Algorithms {
			cfg.algs |= algorithmByName(n)
		}
	}
	if cfg.maxSize <= 0 {
		cfg.maxSize = DefaultMaxSize
	}
	if cfg.minRSABits < DefaultMinRSABits {
		cfg.minRSABits = DefaultMinRSABits
	}
	j, err := parseCompact(compact, &cfg, nil, nil)
	if err != nil {
		return nil, err
	}
	if err := parseJSONObject(string(j.payload), nil); err != nil {
		return nil, err
	}
	if opts.Thumbprint != "" && subtle.ConstantTimeCompare([]byte(opts.Thumbprint), []byte(j.hdr.key.thumbprint)) != 1 {
		return nil, newError(ReasonKeyMismatch, "key thumbprint does not match")
	}
	if !verifySignature(j.hdr, j.signingInput, j.sig) {
		return nil, newError(ReasonBadSignature, "signature does not verify")
	}
	return &JWS{
		Algorithm:  j.hdr.alg.String(),
		Thumbprint: j.hdr.key.thumbprint,
		PublicKey:  j.hdr.key.public(),
		Payload:    j.payload,
	}, nil
}
