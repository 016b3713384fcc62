package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// IssuerKeyID is the kid of every Issuer's key.
const IssuerKeyID = "issuer-key-1"

// Issuer mints RFC 9068 access tokens with a real ES256 key.
type Issuer struct {
	key    *ecdsa.PrivateKey
	priv   jwk.Key
	public jwk.Set
	jwks   []byte
}

// NewIssuer returns an Issuer with a fresh P-256 key, kid IssuerKeyID.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := jwk.Import(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := priv.Set(jwk.KeyIDKey, IssuerKeyID); err != nil {
		t.Fatal(err)
	}
	if err := priv.Set(jwk.AlgorithmKey, jwa.ES256()); err != nil {
		t.Fatal(err)
	}
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{key: key, priv: priv, public: set, jwks: doc}
}

// PrivateKey returns the issuer's signing key.
func (is *Issuer) PrivateKey() *ecdsa.PrivateKey { return is.key }

// PrivateJWK returns the issuer's signing key as a JWK, with kid and alg.
func (is *Issuer) PrivateJWK() jwk.Key { return is.priv }

// PublicSet returns the JWKS of the issuer's public key.
func (is *Issuer) PublicSet() jwk.Set { return is.public }

// PublicJWKS returns the JWK Set document of the issuer's public key: the
// JSON an issuer serves at its jwks_uri (for JWTConfig.JWKS).
func (is *Issuer) PublicJWKS() []byte { return is.jwks }

// TokenOptions describe a token to mint. Issuer, Audience, ClientID, Scope,
// JKT, ACR and AuthTime are left out of the token when zero; the other
// fields have the defaults given.
type TokenOptions struct {
	Subject  string    // sub; "alice" if empty
	JKT      string    // cnf.jkt; "" for a bearer token
	Scope    string    // scope
	IssuedAt time.Time // iat; now if zero
	Expiry   time.Time // exp; an hour after now if zero
	Issuer   string    // iss
	Audience string    // aud, a single value
	ClientID string    // client_id
	JTI      string    // jti; "tok-<sub>-<iat as hhmmss>" if empty
	ACR      string    // acr
	AuthTime time.Time // auth_time
	Type     string    // the typ header; "at+jwt" if empty
	// Claims are further claims, set last: they replace those above.
	Claims map[string]any
}

// Mint returns a signed token described by o, with defaults taken from now.
func (is *Issuer) Mint(t testing.TB, now time.Time, o TokenOptions) string {
	t.Helper()
	if o.Subject == "" {
		o.Subject = "alice"
	}
	if o.IssuedAt.IsZero() {
		o.IssuedAt = now
	}
	if o.Expiry.IsZero() {
		o.Expiry = now.Add(time.Hour)
	}
	if o.JTI == "" {
		o.JTI = "tok-" + o.Subject + "-" + o.IssuedAt.Format("150405")
	}
	if o.Type == "" {
		o.Type = "at+jwt"
	}
	b := jwt.NewBuilder().Subject(o.Subject).IssuedAt(o.IssuedAt).Expiration(o.Expiry).JwtID(o.JTI)
	if o.Issuer != "" {
		b = b.Issuer(o.Issuer)
	}
	if o.Audience != "" {
		b = b.Audience([]string{o.Audience})
	}
	if o.ClientID != "" {
		b = b.Claim("client_id", o.ClientID)
	}
	if o.Scope != "" {
		b = b.Claim("scope", o.Scope)
	}
	if o.JKT != "" {
		b = b.Claim("cnf", map[string]any{"jkt": o.JKT})
	}
	if o.ACR != "" {
		b = b.Claim("acr", o.ACR)
	}
	if !o.AuthTime.IsZero() {
		b = b.Claim("auth_time", o.AuthTime.Unix())
	}
	for name, v := range o.Claims {
		b = b.Claim(name, v)
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.TypeKey, o.Type); err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), is.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}
