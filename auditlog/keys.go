package auditlog

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/stepupgrpc/stepup/internal/limited"
)

// The signature algorithms of checkpoints, in "alg".
const (
	AlgEd25519 = "Ed25519" // RFC 8032 Ed25519 over SigningInput (RFC 9864's name)
	AlgES256   = "ES256"   // ECDSA P-256 over SHA-256 of SigningInput, R||S as in JWS (RFC 7518 §3.4)
)

// maxKeyFile bounds a key or key set file.
const maxKeyFile = 64 << 10

// SigningKey is the key that signs a trail's checkpoints.
type SigningKey struct {
	// ID is the key id ("kid") every checkpoint names, so that a verifier
	// picks the public key from a JWK Set. Required.
	ID string
	// Signer is an Ed25519 private key (ed25519.PrivateKey) or an ECDSA
	// P-256 one (*ecdsa.PrivateKey), or any crypto.Signer whose public key
	// is one of those (a KMS or HSM key).
	Signer crypto.Signer
}

// alg returns the checkpoint algorithm of k, or an error for a key this
// format cannot use.
func (k SigningKey) alg() (string, error) {
	if k.ID == "" {
		return "", errors.New("auditlog: the signing key needs a key id")
	}
	if k.Signer == nil {
		return "", errors.New("auditlog: no signing key")
	}
	return algOf(k.Signer.Public())
}

func algOf(pub crypto.PublicKey) (string, error) {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		return AlgEd25519, nil
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P256() {
			return AlgES256, nil
		}
	}
	return "", fmt.Errorf("auditlog: a %T cannot sign checkpoints: Ed25519 or ECDSA P-256 only", pub)
}

// sign returns the signature of input by k, in the encoding of alg.
func (k SigningKey) sign(alg string, input []byte) ([]byte, error) {
	switch alg {
	case AlgEd25519:
		return k.Signer.Sign(rand.Reader, input, crypto.Hash(0))
	case AlgES256:
		digest := sha256.Sum256(input)
		der, err := k.Signer.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return nil, err
		}
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) > 0 {
			return nil, errors.New("auditlog: the signer returned a malformed ECDSA signature")
		}
		sig := make([]byte, 64)
		rs.R.FillBytes(sig[:32])
		rs.S.FillBytes(sig[32:])
		return sig, nil
	}
	return nil, fmt.Errorf("auditlog: unknown algorithm %q", alg)
}

// GenerateKey returns a new Ed25519 signing key with key id kid.
func GenerateKey(kid string) (SigningKey, error) {
	if kid == "" {
		return SigningKey{}, errors.New("auditlog: the signing key needs a key id")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SigningKey{}, err
	}
	return SigningKey{ID: kid, Signer: priv}, nil
}

// MarshalPrivateJWK returns k as a private JWK with its kid: the file
// ReadSigningKey reads. k.Signer must be an ed25519.PrivateKey or an
// *ecdsa.PrivateKey (a KMS or HSM signer has no private key to write).
func MarshalPrivateJWK(k SigningKey) ([]byte, error) {
	if _, err := k.alg(); err != nil {
		return nil, err
	}
	switch k.Signer.(type) {
	case ed25519.PrivateKey, *ecdsa.PrivateKey:
	default:
		return nil, fmt.Errorf("auditlog: a %T holds no private key to write", k.Signer)
	}
	key, err := jwk.Import(k.Signer)
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	if err := key.Set(jwk.KeyIDKey, k.ID); err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	return json.Marshal(key)
}

// PublicKeySet returns the key set that verifies k's checkpoints.
func (k SigningKey) PublicKeySet() (*KeySet, error) {
	if _, err := k.alg(); err != nil {
		return nil, err
	}
	return NewKeySet(map[string]crypto.PublicKey{k.ID: k.Signer.Public()})
}

// ReadSigningKey reads a private JWK file (RFC 7517), or a JWK Set holding
// exactly one key: an Ed25519 ("kty":"OKP","crv":"Ed25519") or P-256
// ("kty":"EC","crv":"P-256") private key with a "kid". `stepup keygen
// --alg Ed25519 --kid audit-1 --out audit.jwk --pub audit.pub.jwk` makes
// one, and its public half for verifiers.
func ReadSigningKey(path string) (SigningKey, error) {
	data, err := limited.ReadFile(path, maxKeyFile)
	if err != nil {
		return SigningKey{}, fmt.Errorf("auditlog: %w", err)
	}
	set, err := jwk.Parse(data)
	if err != nil {
		return SigningKey{}, fmt.Errorf("auditlog: %s: not a JWK: %w", path, err)
	}
	if set.Len() != 1 {
		return SigningKey{}, fmt.Errorf("auditlog: %s: %d keys, want exactly one", path, set.Len())
	}
	k, _ := set.Key(0)
	if private, err := jwk.IsPrivateKey(k); err != nil || !private {
		return SigningKey{}, fmt.Errorf("auditlog: %s: not a private key", path)
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return SigningKey{}, fmt.Errorf("auditlog: %s: %w", path, err)
	}
	kid, _ := k.KeyID()
	var key SigningKey
	switch p := raw.(type) {
	case ed25519.PrivateKey:
		key = SigningKey{ID: kid, Signer: p}
	case *ecdsa.PrivateKey:
		key = SigningKey{ID: kid, Signer: p}
	default:
		return SigningKey{}, fmt.Errorf("auditlog: %s: a %T cannot sign checkpoints: Ed25519 or P-256 only", path, raw)
	}
	if _, err := key.alg(); err != nil {
		return SigningKey{}, fmt.Errorf("%w (%s)", err, path)
	}
	return key, nil
}

// KeySet holds the public keys that verify checkpoints, by key id.
type KeySet struct {
	keys map[string]crypto.PublicKey
}

// NewKeySet returns a key set of the public keys of keys (each an
// ed25519.PublicKey or a P-256 *ecdsa.PublicKey), by key id.
func NewKeySet(keys map[string]crypto.PublicKey) (*KeySet, error) {
	s := &KeySet{keys: map[string]crypto.PublicKey{}}
	for kid, pub := range keys {
		if kid == "" {
			return nil, errors.New("auditlog: a key without a key id")
		}
		if _, err := algOf(pub); err != nil {
			return nil, err
		}
		s.keys[kid] = pub
	}
	return s, nil
}

// ParseKeySet reads a JWK Set (RFC 7517 §5), or a single JWK, of the
// public keys that verify checkpoints: Ed25519 or P-256 keys, each with a
// "kid". A private key is refused: verifiers need only the public half,
// and a file holding the private key has no business on their machine.
// An "alg" member, when present, must be "EdDSA" or "Ed25519" for an
// Ed25519 key and "ES256" for a P-256 key.
func ParseKeySet(data []byte) (*KeySet, error) {
	set, err := jwk.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("auditlog: not a JWK or JWK Set: %w", err)
	}
	if set.Len() == 0 {
		return nil, errors.New("auditlog: no keys")
	}
	keys := map[string]crypto.PublicKey{}
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, _ := k.KeyID()
		if kid == "" {
			return nil, fmt.Errorf("auditlog: key %d has no kid", i)
		}
		if _, dup := keys[kid]; dup {
			return nil, fmt.Errorf("auditlog: two keys with kid %q", kid)
		}
		if private, err := jwk.IsPrivateKey(k); err != nil || private {
			return nil, fmt.Errorf("auditlog: key %q is a private key: give verifiers the public JWK", kid)
		}
		var raw any
		if err := jwk.Export(k, &raw); err != nil {
			return nil, fmt.Errorf("auditlog: key %q: %w", kid, err)
		}
		alg, err := algOf(raw)
		if err != nil {
			return nil, fmt.Errorf("auditlog: key %q: %w", kid, err)
		}
		if a, ok := k.Algorithm(); ok {
			name := a.String()
			if name != alg && !(alg == AlgEd25519 && name == "EdDSA") {
				return nil, fmt.Errorf("auditlog: key %q: alg %q does not fit its key type (%s)", kid, name, alg)
			}
		}
		keys[kid] = raw
	}
	return &KeySet{keys: keys}, nil
}

// ReadKeySet reads a key set file; see ParseKeySet.
func ReadKeySet(path string) (*KeySet, error) {
	data, err := limited.ReadFile(path, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	s, err := ParseKeySet(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return s, nil
}

// KeyIDs returns the key ids of s, sorted.
func (s *KeySet) KeyIDs() []string {
	ids := make([]string, 0, len(s.keys))
	for id := range s.keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// errUnknownKey: a checkpoint names a key id the key set does not hold.
var errUnknownKey = errors.New("unknown key id")

// verify checks a checkpoint's signature.
func (s *KeySet) verify(e *Entry) error {
	pub, ok := s.keys[e.KeyID]
	if !ok {
		return errUnknownKey
	}
	alg, _ := algOf(pub)
	if e.Alg != alg {
		return fmt.Errorf("alg %q, but key %q is an %s key", e.Alg, e.KeyID, alg)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(e.Sig)
	if err != nil || len(sig) != 64 {
		return errors.New("the signature is not 64 bytes of base64url")
	}
	input := e.SigningInput()
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if ed25519.Verify(p, input, sig) {
			return nil
		}
	case *ecdsa.PublicKey:
		digest := sha256.Sum256(input)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if ecdsa.Verify(p, digest[:], r, s) {
			return nil
		}
	}
	return errors.New("the signature does not verify")
}

// PublicJWKS returns the JWK Set document of the public key of k (with its
// kid, "alg" and "use":"sig"): the file verifiers are given.
func PublicJWKS(k SigningKey) ([]byte, error) {
	alg, err := k.alg()
	if err != nil {
		return nil, err
	}
	pub, err := jwk.Import(k.Signer.Public())
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	jalg := alg
	if alg == AlgEd25519 {
		jalg = "EdDSA" // the JOSE name JWK libraries know
	}
	for _, kv := range [][2]string{{jwk.KeyIDKey, k.ID}, {jwk.AlgorithmKey, jalg}, {jwk.KeyUsageKey, "sig"}} {
		if err := pub.Set(kv[0], kv[1]); err != nil {
			return nil, fmt.Errorf("auditlog: %w", err)
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	return json.Marshal(set)
}
