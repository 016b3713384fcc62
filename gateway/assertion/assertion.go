// Package assertion is the identity assertion that stepup-gateway sends to
// the backend it protects, and the helper a Go backend uses to verify it.
//
// The gateway verifies the caller (access token, DPoP proof, step-up) and
// forwards the call with one request metadata entry, "stepup-identity": a
// compact JWS (ES256, typ "stepup-id+jwt") whose claims say who called and
// how they proved it:
//
//	{
//	  "iss": "https://gateway.example", "aud": "bank-backend",
//	  "iat": 1767225600, "exp": 1767225660, "jti": "…",
//	  "sub": "alice", "scope": "bank bank:transfer", "client_id": "bank-app",
//	  "cnf": {"jkt": "<RFC 7638 thumbprint of the caller's DPoP key>"},
//	  "method": "/bank.v1.BankService/Transfer",
//	  "token_jti": "<the access token's jti>",
//	  "stepup": {"via": "answer", "factor": "totp", "auth_time": 1767225598, "grant_id": "…"}
//	}
//
// The gateway removes any "stepup-identity" a client sends, so a backend
// that accepts only assertions signed by the gateway's key (its JWKS) and
// addressed to it (aud) learns the caller from nothing a client controls.
// docs/GATEWAY.md shows the verification in other languages.
package assertion

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/stepupgrpc/stepup/interceptor"
)

// Metadata is the request metadata key that carries the assertion.
const Metadata = "stepup-identity"

// Type is the assertion's JWS "typ" header.
const Type = "stepup-id+jwt"

// MaxTTL bounds an assertion's lifetime.
const MaxTTL = 10 * time.Minute

// DefaultTTL is an assertion's lifetime when none is configured.
const DefaultTTL = 60 * time.Second

// Identity is what an assertion says about a call.
type Identity struct {
	// Subject is the caller ("sub" of the access token).
	Subject string
	// Scopes are the access token's scopes.
	Scopes []string
	// ClientID is the access token's client_id, when it has one.
	ClientID string
	// Thumbprint is the RFC 7638 thumbprint of the caller's DPoP key
	// ("cnf"."jkt"); empty for a bearer token on a method that allows one.
	Thumbprint string
	// Method is the full method the assertion was made for
	// ("/pkg.Service/Method").
	Method string
	// TokenID is the access token's jti, for correlating audit logs.
	TokenID string
	// StepUp says how the method's step-up was satisfied; nil when it
	// needs none.
	StepUp *StepUp
	// Digest ("dig") is the request digest (docs/PROTOCOL.md §13.3) of the
	// request the backend receives, when the gateway read the request (a
	// unary step-up method): base64url of SHA-256 over the method, a zero
	// byte and the message body, which is the canonical encoding the
	// gateway forwards. A bound challenge carried the same digest, so a
	// backend that checks it knows it runs what the user approved.
	Digest string
	// ID, IssuedAt and Expiry are the assertion's own jti, iat and exp
	// (set by Verify; Sign sets them itself).
	ID               string
	IssuedAt, Expiry time.Time
}

// StepUp is the "stepup" claim.
type StepUp struct {
	// Via is "token", "grant" or "answer".
	Via string `json:"via"`
	// Factor is the factor's short name ("totp", "device_key",
	// "webauthn"); empty when the token's acr satisfied the policy.
	Factor string `json:"factor,omitempty"`
	// AuthTime is when the second factor was verified.
	AuthTime time.Time `json:"-"`
	// GrantID is the id of the grant used or earned, when there is one.
	GrantID string `json:"grant_id,omitempty"`
}

// claims is the JSON form of an assertion.
type claims struct {
	Issuer   string      `json:"iss"`
	Audience string      `json:"aud"`
	IssuedAt int64       `json:"iat"`
	Expiry   int64       `json:"exp"`
	ID       string      `json:"jti"`
	Subject  string      `json:"sub"`
	Scope    string      `json:"scope,omitempty"`
	ClientID string      `json:"client_id,omitempty"`
	Cnf      *cnf        `json:"cnf,omitempty"`
	Method   string      `json:"method"`
	TokenID  string      `json:"token_jti,omitempty"`
	StepUp   *stepUpJSON `json:"stepup,omitempty"`
	Digest   string      `json:"dig,omitempty"`
}

type cnf struct {
	JKT string `json:"jkt"`
}

type stepUpJSON struct {
	StepUp
	AuthTime int64 `json:"auth_time"`
}

// Signer signs assertions with the gateway's key.
type Signer struct {
	key      jwk.Key
	jwks     []byte
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
}

// SignerConfig configures NewSigner.
type SignerConfig struct {
	// Key is the private ES256 signing key, on P-256. Required.
	Key *ecdsa.PrivateKey
	// KeyID is the key's "kid", in every assertion's header and in the
	// JWKS. Required.
	KeyID string
	// Issuer and Audience are the assertion's "iss" and "aud". Required.
	Issuer, Audience string
	// TTL is an assertion's lifetime: DefaultTTL when zero, at most MaxTTL.
	TTL time.Duration
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
}

// NewSigner checks the configuration and returns a signer.
func NewSigner(cfg SignerConfig) (*Signer, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("assertion: the signer needs an issuer and an audience")
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < time.Second || cfg.TTL > MaxTTL {
		return nil, fmt.Errorf("assertion: ttl %s is outside 1s..%s", cfg.TTL, MaxTTL)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	priv, err := privateJWK(cfg.Key, cfg.KeyID)
	if err != nil {
		return nil, err
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	for _, f := range []func() error{
		func() error { return pub.Set(jwk.AlgorithmKey, jwa.ES256()) },
		func() error { return pub.Set(jwk.KeyUsageKey, "sig") },
	} {
		if err := f(); err != nil {
			return nil, fmt.Errorf("assertion: %w", err)
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	doc, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	return &Signer{key: priv, jwks: doc, issuer: cfg.Issuer, audience: cfg.Audience, ttl: cfg.TTL, now: cfg.Clock}, nil
}

// privateJWK checks that key is a P-256 key with a kid and returns it as a
// JWK carrying the kid.
func privateJWK(key *ecdsa.PrivateKey, kid string) (jwk.Key, error) {
	if key == nil {
		return nil, errors.New("assertion: the signer needs a key")
	}
	if key.Curve != elliptic.P256() {
		return nil, errors.New("assertion: the signing key must be a P-256 (ES256) key")
	}
	if kid == "" {
		return nil, errors.New(`assertion: the signing key needs a "kid"`)
	}
	k, err := jwk.Import(key)
	if err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	return k, nil
}

// MarshalPrivateJWK returns key as a private JWK (RFC 7517) with the given
// kid: the file the gateway's assertion.key_file names. It refuses a key
// that is not on P-256 and an empty kid, as NewSigner does.
func MarshalPrivateJWK(key *ecdsa.PrivateKey, kid string) ([]byte, error) {
	k, err := privateJWK(key, kid)
	if err != nil {
		return nil, err
	}
	return json.Marshal(k)
}

// ParsePrivateJWK reads the gateway's signing key from a private JWK, or a
// JWK Set holding exactly one key: the format of assertion.key_file. It
// returns the key and its kid, and refuses a public key, a key not on
// P-256 and a key without a kid.
func ParsePrivateJWK(data []byte) (*ecdsa.PrivateKey, string, error) {
	set, err := jwk.Parse(data)
	if err != nil {
		return nil, "", fmt.Errorf("assertion: not a JWK: %w", err)
	}
	if set.Len() != 1 {
		return nil, "", fmt.Errorf("assertion: %d keys, want exactly one", set.Len())
	}
	k, _ := set.Key(0)
	var key ecdsa.PrivateKey
	if err := jwk.Export(k, &key); err != nil {
		return nil, "", errors.New("assertion: the signing key must be a private P-256 (ES256) JWK")
	}
	kid, _ := k.KeyID()
	if _, err := privateJWK(&key, kid); err != nil {
		return nil, "", err
	}
	return &key, kid, nil
}

// TTL is the lifetime of the assertions the signer makes.
func (s *Signer) TTL() time.Duration { return s.ttl }

// JWKS returns the JWK Set document (RFC 7517 §5) of the public key
// backends verify assertions with: what the gateway serves at
// /.well-known/jwks.json, and what VerifierConfig.JWKS takes.
func (s *Signer) JWKS() []byte { return slices.Clone(s.jwks) }

// Sign returns the assertion for id, valid from now for the signer's TTL.
// It ignores id's ID, IssuedAt and Expiry.
func (s *Signer) Sign(id *Identity) (string, error) {
	if id == nil || id.Subject == "" || id.Method == "" {
		return "", errors.New("assertion: Sign needs a subject and a method")
	}
	// "scope" joins the scopes with spaces: each must be one RFC 6749
	// §3.3 scope token, so that a backend splitting it on any white space
	// reads the scopes the gateway checked, no more.
	if err := interceptor.CheckScopes(id.Scopes); err != nil {
		return "", fmt.Errorf("assertion: %w", err)
	}
	now := s.now()
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	c := claims{
		Issuer: s.issuer, Audience: s.audience,
		IssuedAt: now.Unix(), Expiry: now.Add(s.ttl).Unix(),
		ID:      base64.RawURLEncoding.EncodeToString(jti),
		Subject: id.Subject, Scope: strings.Join(id.Scopes, " "), ClientID: id.ClientID,
		Method: id.Method, TokenID: id.TokenID, Digest: id.Digest,
	}
	if id.Thumbprint != "" {
		c.Cnf = &cnf{JKT: id.Thumbprint}
	}
	if su := id.StepUp; su != nil {
		c.StepUp = &stepUpJSON{StepUp: *su, AuthTime: su.AuthTime.Unix()}
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, Type); err != nil {
		return "", err
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), s.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("assertion: %w", err)
	}
	return string(out), nil
}

type identityKey struct{}

// NewContext returns ctx carrying id (what the backend interceptors do).
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the verified identity of the call, and false when
// the backend interceptors did not verify one.
func FromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}
