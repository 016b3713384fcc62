package interceptor_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// TestIdentityProviderShapes verifies tokens shaped as Keycloak, Auth0,
// Okta and Entra ID issue them (their typ, client and scope claims), signed
// by a real key, and refuses the malformed variants.
func TestIdentityProviderShapes(t *testing.T) {
	is := testkit.NewIssuer(t)
	now := time.Now()
	mint := func(typ string, claims map[string]any) string {
		b := jwt.NewBuilder().Issuer(testIssuer).Audience([]string{testAudience}).Subject("user-1").
			IssuedAt(now).Expiration(now.Add(time.Hour))
		for k, v := range claims {
			b = b.Claim(k, v)
		}
		tok, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		h := jws.NewHeaders()
		if typ != "" {
			if err := h.Set(jws.TypeKey, typ); err != nil {
				t.Fatal(err)
			}
		}
		s, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), is.PrivateJWK(), jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		return string(s)
	}
	untyped, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKS: is.PublicJWKS(), AllowUntypedJWT: true})
	if err != nil {
		t.Fatal(err)
	}
	strict, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKS: is.PublicJWKS()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, typ  string
		claims     map[string]any
		client     string
		scopes     []string
		strictOnly bool // accepted without AllowUntypedJWT
	}{
		{"RFC 9068 (at+jwt, client_id, scope)", "at+jwt", map[string]any{"client_id": "app", "scope": "read write"}, "app", []string{"read", "write"}, true},
		{"Keycloak (JWT, azp, scope)", "JWT", map[string]any{"azp": "kc-app", "scope": "openid bank"}, "kc-app", []string{"openid", "bank"}, false},
		{"Auth0 (at+jwt, azp, scope)", "at+jwt", map[string]any{"azp": "auth0-app", "scope": "bank"}, "auth0-app", []string{"bank"}, true},
		{"Okta (no typ, cid, scp array)", "", map[string]any{"cid": "okta-app", "scp": []string{"bank", "bank:transfer"}}, "", []string{"bank", "bank:transfer"}, false},
		{"Entra ID v2 (JWT, azp, scp string)", "JWT", map[string]any{"azp": "entra-app", "scp": "Bank.Read Bank.Transfer"}, "entra-app", []string{"Bank.Read", "Bank.Transfer"}, false},
		{"Entra ID v1 (JWT, appid, scp)", "JWT", map[string]any{"appid": "entra-v1", "scp": "user_impersonation"}, "entra-v1", []string{"user_impersonation"}, false},
		{"scope wins over scp", "at+jwt", map[string]any{"scope": "a", "scp": []string{"admin"}}, "", []string{"a"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := mint(tc.typ, tc.claims)
			tok, err := untyped.VerifyToken(context.Background(), raw)
			if err != nil {
				t.Fatal(err)
			}
			if tok.ClientID != tc.client || !slices.Equal(tok.Scopes, tc.scopes) {
				t.Errorf("client %q scopes %v, want %q %v", tok.ClientID, tok.Scopes, tc.client, tc.scopes)
			}
			_, err = strict.VerifyToken(context.Background(), raw)
			var te *interceptor.TokenError
			switch {
			case tc.strictOnly && err != nil:
				t.Errorf("refused without AllowUntypedJWT: %v", err)
			case !tc.strictOnly && (!errors.As(err, &te) || te.Reason != interceptor.ReasonTokenBadType):
				t.Errorf("typ %q accepted by a strict verifier: %v", tc.typ, err)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
	}{
		{"scp of numbers", map[string]any{"scp": []int{1, 2}}},
		{"scp with a space inside an entry", map[string]any{"scp": []string{"a b"}}},
		{"scp an object", map[string]any{"scp": map[string]any{"a": true}}},
		{"azp not a string", map[string]any{"azp": 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := untyped.VerifyToken(context.Background(), mint("JWT", tc.claims))
			var te *interceptor.TokenError
			if !errors.As(err, &te) || te.Reason != interceptor.ReasonTokenInvalidClaims {
				t.Errorf("accepted, or another reason: %v", err)
			}
		})
	}
}

// TestTokenErrorNamesExpectedAndReceived: a refused issuer or audience is
// named, with what the server expects, for the audit event's detail.
func TestTokenErrorNamesExpectedAndReceived(t *testing.T) {
	is := testkit.NewIssuer(t)
	v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKS: is.PublicJWKS()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tc := range []struct {
		o    testkit.TokenOptions
		want string
	}{
		{testkit.TokenOptions{Issuer: "https://other.example", Audience: testAudience}, `iss "https://other.example", this server expects "` + testIssuer + `"`},
		{testkit.TokenOptions{Issuer: testIssuer, Audience: "https://elsewhere.example"}, `aud "https://elsewhere.example", this server expects "` + testAudience + `"`},
	} {
		_, err := v.VerifyToken(context.Background(), is.Mint(t, now, tc.o))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want it to contain %s", err, tc.want)
		}
	}
}

// TestOpaqueTokenRefusalSaysSo: a provider asked for no audience (an RFC
// 8707 server without resource, Auth0 without audience) issues an opaque
// reference token even when it is DPoP-bound; the refusal's audit detail
// says so and how to ask for a JWT, through one issuer and through
// NewIssuers.
func TestOpaqueTokenRefusalSaysSo(t *testing.T) {
	e := newEnv(t, envOpts{})
	const opaque = "2YotnFZFEjr1zCsicMWpAA" // RFC 6749 §4.1.4's example
	ctx := withCreds(context.Background(), "authorization", "DPoP "+opaque, "dpop", e.proof(mPlain, opaque))
	err := atkDo(ctx, e, mPlain)
	assertRefused(t, e, err, atkToken(interceptor.ReasonTokenMalformed))
	detail := e.audit.last(t).Detail
	for _, want := range []string{"opaque (non-JWT) access token", "RFC 8707", "audience", "docs/PROVIDERS.md"} {
		if !strings.Contains(detail, want) {
			t.Errorf("audit detail %q lacks %q", detail, want)
		}
	}
	is := newIssuer(t)
	v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKS: is.PublicJWKS()})
	if err != nil {
		t.Fatal(err)
	}
	many, err := interceptor.NewIssuers(v)
	if err != nil {
		t.Fatal(err)
	}
	for name, tv := range map[string]interceptor.TokenVerifier{"JWTVerifier": v, "Issuers": many} {
		_, err := tv.VerifyToken(context.Background(), opaque)
		var te *interceptor.TokenError
		if !errors.As(err, &te) || te.Reason != interceptor.ReasonTokenMalformed || !strings.Contains(err.Error(), "opaque") {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := tv.VerifyToken(context.Background(), "a.b.c.d.e"); err == nil || !strings.Contains(err.Error(), "JWE") {
			t.Errorf("%s, 5 segments: %v", name, err)
		}
	}
}
