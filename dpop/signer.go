package dpop

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/stepupgrpc/stepup/internal/base64url"
	"github.com/stepupgrpc/stepup/internal/option"
	"github.com/stepupgrpc/stepup/internal/strictjson"
)

// ProofType is the typ header of a DPoP proof (RFC 9449 §4.2).
const ProofType = "dpop+jwt"

// maxRememberedNonces bounds the per-authority nonce memory of a Signer.
const maxRememberedNonces = 256

// maxNonceLength bounds a remembered server nonce; RFC 9449 §8 sets no limit
// but a proof must stay under the server's size limit.
const maxNonceLength = 1024

// Signer makes DPoP proofs (RFC 9449 §4.2) with one private key and
// remembers the latest server nonce per authority (RFC 9449 §8). The key is
// a crypto.Signer so hardware and KMS keys fit. Safe for concurrent use.
type Signer struct {
	key       crypto.Signer
	alg       algorithm
	pub       *publicKey
	headerB64 string // base64url of the fixed proof header
	now       func() time.Time
	nonces    *lru.Cache[string, string]
}

// NewSigner returns a Signer for key. The algorithm is inferred from the
// key: ECDSA P-256 gives ES256, P-384 gives ES384, Ed25519 gives EdDSA (or
// Ed25519 with WithEd25519Name), RSA gives PS256 (WithAlgorithm("RS256")
// selects RS256). RSA keys under 2048 bits and other key types are refused.
func NewSigner(key crypto.Signer, opts ...SignerOption) (*Signer, error) {
	cfg := signerConfig{now: time.Now}
	err := option.Apply("dpop", "NewSigner", opts, func(o SignerOption) error { return o.applySigner(&cfg) })
	if key == nil {
		err = errors.Join(errors.New("dpop: nil signing key"), err)
	}
	if err != nil {
		return nil, err
	}
	pub, err := publicKeyFrom(key.Public())
	if err != nil {
		return nil, errors.New("dpop: unsupported signing key: " + err.Error())
	}
	if pub.typ == keyRSA && pub.rsaBits < DefaultMinRSABits {
		return nil, errors.New("dpop: RSA key under 2048 bits")
	}
	var alg algorithm
	switch pub.typ {
	case keyP256:
		alg = algES256
	case keyP384:
		alg = algES384
	case keyEd25519:
		alg = algEdDSA
		if cfg.ed25519Name {
			alg = algEd25519
		}
	case keyRSA:
		alg = algPS256
	}
	if cfg.alg != 0 {
		if cfg.alg.keyType() != pub.typ {
			return nil, errors.New("dpop: algorithm " + cfg.algName + " does not suit the key")
		}
		alg = cfg.alg
	}
	nonces, err := lru.New[string, string](maxRememberedNonces)
	if err != nil {
		return nil, err
	}
	s := &Signer{key: key, alg: alg, pub: pub, now: cfg.now, nonces: nonces}
	s.headerB64 = base64url.EncodeToString(s.header(ProofType))
	return s, nil
}

// header returns the JOSE header {"typ":..,"alg":..,"jwk":..}.
func (s *Signer) header(typ string) []byte {
	b := make([]byte, 0, 64+len(s.pub.jwk)+len(typ))
	b = append(b, `{"typ":`...)
	b = strictjson.AppendString(b, typ)
	b = append(b, `,"alg":"`...)
	b = append(b, s.alg.String()...)
	b = append(b, `","jwk":`...)
	b = append(b, s.pub.jwk...)
	return append(b, '}')
}

// Thumbprint returns the RFC 7638 thumbprint of the public key: the value a
// server binds tokens to (cnf.jkt, RFC 9449 §6).
func (s *Signer) Thumbprint() string { return s.pub.thumbprint }

// Algorithm returns the alg header value of the proofs.
func (s *Signer) Algorithm() string { return s.alg.String() }

// PublicJWK returns the public key as a JSON JWK with the RFC 7638 members
// in lexicographic order.
func (s *Signer) PublicJWK() []byte { return append([]byte(nil), s.pub.jwk...) }

// SetNonce remembers the latest nonce a server sent (DPoP-Nonce header or
// dpop-nonce metadata) for an authority such as "api.example.com:8443". The
// authority is normalised (lower-case host; ports 80 and 443 dropped). An
// empty nonce forgets the authority. Nonces that are not valid RFC 9449 §8
// syntax, or over 1 KiB, are ignored: they come from the network.
func (s *Signer) SetNonce(authority, nonce string) {
	key := normaliseAuthority(authority)
	if nonce == "" {
		s.nonces.Remove(key)
		return
	}
	if !validNonce(nonce) {
		return
	}
	s.nonces.Add(key, nonce)
}

// Nonce returns the nonce remembered for an authority, or "".
func (s *Signer) Nonce(authority string) string {
	n, _ := s.nonces.Get(normaliseAuthority(authority))
	return n
}

// validNonce checks the RFC 9449 §8.1 syntax: 1*NQCHAR.
func validNonce(n string) bool {
	if n == "" || len(n) > maxNonceLength {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7E || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Proof returns a proof for a request with method htm to URI htu, bound to
// accessToken through ath when accessToken is not empty (RFC 9449 §4.2,
// §7). It includes the nonce remembered for htu's authority, if any. Any
// query or fragment of htu is dropped, as RFC 9449 §4.2 requires.
func (s *Signer) Proof(htm, htu, accessToken string) (string, error) {
	cut := cutQueryFragment(htu)
	u, err := parseHTU(cut)
	if err != nil {
		return "", errors.New("dpop: invalid htu: " + err.Detail)
	}
	auth := u.host
	if u.port != defaultPort(u.https) {
		auth += ":" + strconv.Itoa(u.port)
	}
	return s.ProofWithNonce(htm, htu, accessToken, s.Nonce(auth))
}

// ProofWithNonce is Proof with an explicit nonce ("" for none).
func (s *Signer) ProofWithNonce(htm, htu, accessToken, nonce string) (string, error) {
	if !validMethod(htm) {
		return "", errors.New("dpop: invalid htm")
	}
	htu = cutQueryFragment(htu)
	if _, err := parseHTU(htu); err != nil {
		return "", errors.New("dpop: invalid htu: " + err.Detail)
	}
	if nonce != "" && !validNonce(nonce) {
		return "", errors.New("dpop: invalid nonce")
	}
	// RFC 9449 §4.2, §11.1: a unique jti; 128 random bits.
	var rnd [16]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails (Go 1.24+)
	claims := make([]byte, 0, 160+len(htu)+len(nonce))
	claims = append(claims, `{"jti":"`...)
	claims = base64url.AppendEncode(claims, rnd[:])
	claims = append(claims, `","htm":`...)
	claims = strictjson.AppendString(claims, htm)
	claims = append(claims, `,"htu":`...)
	claims = strictjson.AppendString(claims, htu)
	claims = append(claims, `,"iat":`...)
	claims = strconv.AppendInt(claims, s.now().Unix(), 10)
	if accessToken != "" {
		claims = append(claims, `,"ath":"`...)
		claims = append(claims, ATH(accessToken)...)
		claims = append(claims, '"')
	}
	if nonce != "" {
		claims = append(claims, `,"nonce":`...)
		claims = strictjson.AppendString(claims, nonce)
	}
	claims = append(claims, '}')
	return s.sign(s.headerB64, claims)
}

// SignJWS signs a JSON object payload with the header {typ, alg, jwk}, the
// same shape as a proof. Other packages use it for statements signed by the
// DPoP key (for example step-up answers); VerifyJWS verifies the result.
func (s *Signer) SignJWS(typ string, payload []byte) (string, error) {
	if typ == "" {
		return "", errors.New("dpop: empty typ")
	}
	if err := parseJSONObject(string(payload), nil); err != nil {
		return "", errors.New("dpop: payload is not a valid JSON object: " + err.Detail)
	}
	return s.sign(base64url.EncodeToString(s.header(typ)), payload)
}

// sign returns headerB64.payload.signature (RFC 7515 §7.1).
func (s *Signer) sign(headerB64 string, payload []byte) (string, error) {
	b := make([]byte, 0, len(headerB64)+1+base64url.EncodedLen(len(payload))+1+base64url.EncodedLen(512))
	b = append(b, headerB64...)
	b = append(b, '.')
	b = base64url.AppendEncode(b, payload)
	input := b
	var sig []byte
	var err error
	switch s.alg {
	case algES256, algES384:
		var digest []byte
		var h crypto.Hash
		if s.alg == algES256 {
			d := sha256.Sum256(input)
			digest, h = d[:], crypto.SHA256
		} else {
			d := sha512.Sum384(input)
			digest, h = d[:], crypto.SHA384
		}
		var der []byte
		if der, err = s.key.Sign(rand.Reader, digest, h); err == nil {
			sig, err = ecdsaRaw(der, (s.pub.ec.Curve.Params().BitSize+7)/8)
		}
	case algEdDSA, algEd25519:
		sig, err = s.key.Sign(rand.Reader, input, crypto.Hash(0))
	case algPS256:
		d := sha256.Sum256(input)
		sig, err = s.key.Sign(rand.Reader, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	case algRS256:
		d := sha256.Sum256(input)
		sig, err = s.key.Sign(rand.Reader, d[:], crypto.SHA256)
	}
	if err != nil {
		return "", errors.Join(errors.New("dpop: signing failed"), err)
	}
	b = append(b, '.')
	b = base64url.AppendEncode(b, sig)
	return string(b), nil
}

// ecdsaRaw converts an ASN.1 ECDSA signature, as crypto.Signer returns it,
// to the fixed-size R || S of RFC 7518 §3.4.
func ecdsaRaw(der []byte, size int) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 ||
		sig.R.BitLen() > 8*size || sig.S.BitLen() > 8*size {
		return nil, errors.New("dpop: signer returned an invalid ECDSA signature")
	}
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out, nil
}

// cutQueryFragment drops any query and fragment from a URI.
func cutQueryFragment(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}

// validMethod checks that m is an RFC 9110 §9.1 method token.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
