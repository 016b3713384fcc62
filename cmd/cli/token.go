package cli

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// DevToken describes an RFC 9068 access token minted by a development
// issuer (the bank example's issuer, `stepup token`).
type DevToken struct {
	Issuer, Subject, Audience, ClientID, Scope string
	// JKT binds the token to a DPoP key (cnf.jkt).
	JKT string
	// Now and TTL give iat and exp.
	Now time.Time
	TTL time.Duration
}

// Mint signs t with key (its algorithm from SigningAlgorithm): header typ
// at+jwt and the key's kid; claims iss, sub, aud, iat, exp, a random jti,
// client_id, scope (when set) and cnf.jkt.
func (t DevToken) Mint(key jwk.Key) (string, error) {
	alg, err := SigningAlgorithm(key)
	if err != nil {
		return "", err
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	now := t.Now.Truncate(time.Second)
	b := jwt.NewBuilder().Issuer(t.Issuer).Subject(t.Subject).Audience([]string{t.Audience}).
		IssuedAt(now).Expiration(now.Add(t.TTL)).JwtID(base64.RawURLEncoding.EncodeToString(jti)).
		Claim("client_id", t.ClientID).Claim("cnf", map[string]any{"jkt": t.JKT})
	if t.Scope != "" {
		b = b.Claim("scope", t.Scope)
	}
	tok, err := b.Build()
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "at+jwt"); err != nil {
		return "", err
	}
	if kid, ok := key.KeyID(); ok {
		if err := hdr.Set(jws.KeyIDKey, kid); err != nil {
			return "", err
		}
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", err
	}
	return string(signed), nil
}

// SigningAlgorithm is a private key's JWS algorithm: its "alg" member, or
// the usual one for its type (ES256, ES384, EdDSA, RS256).
func SigningAlgorithm(key jwk.Key) (jwa.SignatureAlgorithm, error) {
	var none jwa.SignatureAlgorithm
	if a, ok := key.Algorithm(); ok {
		if sa, ok := jwa.LookupSignatureAlgorithm(a.String()); ok {
			return sa, nil
		}
		return none, fmt.Errorf("unsupported alg %q", a.String())
	}
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return none, err
	}
	switch k := raw.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jwa.ES256(), nil
		case elliptic.P384():
			return jwa.ES384(), nil
		}
	case ed25519.PrivateKey:
		return jwa.EdDSA(), nil
	case *rsa.PrivateKey:
		return jwa.RS256(), nil
	}
	return none, fmt.Errorf("unsupported key type %T", raw)
}
