package interceptor_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

func TestIssuersPicksByIssuerAndVerifiesAll(t *testing.T) {
	a, b := testkit.NewIssuer(t), testkit.NewIssuer(t)
	const issA, issB = "https://a.example", "https://b.example"
	va, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: issA, Audience: testAudience, JWKS: a.PublicJWKS()})
	if err != nil {
		t.Fatal(err)
	}
	vb, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: issB, Audience: testAudience, JWKS: b.PublicJWKS()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := interceptor.NewIssuers(va, vb)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tc := range []struct {
		name   string
		token  string
		reason interceptor.Reason // "" accepted
	}{
		{"issuer a", a.Mint(t, now, testkit.TokenOptions{Issuer: issA, Audience: testAudience}), ""},
		{"issuer b", b.Mint(t, now, testkit.TokenOptions{Issuer: issB, Audience: testAudience}), ""},
		{"says a, signed by b", b.Mint(t, now, testkit.TokenOptions{Issuer: issA, Audience: testAudience}), interceptor.ReasonTokenBadSignature},
		{"another issuer", a.Mint(t, now, testkit.TokenOptions{Issuer: "https://c.example", Audience: testAudience}), interceptor.ReasonTokenWrongIssuer},
		{"not a JWS", "a.b", interceptor.ReasonTokenMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.VerifyToken(context.Background(), tc.token)
			var te *interceptor.TokenError
			switch {
			case tc.reason == "" && err != nil:
				t.Fatal(err)
			case tc.reason != "" && (!errors.As(err, &te) || te.Reason != tc.reason):
				t.Errorf("err %v, want %s", err, tc.reason)
			}
		})
	}
	if _, err := interceptor.NewIssuers(va, va); err == nil {
		t.Error("one issuer twice accepted")
	}
}

func TestDiscoverJWKS(t *testing.T) {
	is := testkit.NewIssuer(t)
	var issuer, named string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": named, "jwks_uri": issuer + "/keys"})
		case "/keys":
			_, _ = w.Write(is.PublicJWKS())
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	issuer = srv.URL
	named = issuer
	jwksURL, err := interceptor.DiscoverJWKS(context.Background(), issuer, nil)
	if err != nil || jwksURL != issuer+"/keys" {
		t.Fatalf("discovered %q, %v", jwksURL, err)
	}
	v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: issuer, Audience: testAudience, JWKSURL: jwksURL})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.VerifyToken(context.Background(), is.Mint(t, time.Now(), testkit.TokenOptions{Issuer: issuer, Audience: testAudience})); err != nil {
		t.Fatalf("a token with the discovered keys: %v", err)
	}
	named = "https://impostor.example" // a document that names another issuer
	if _, err := interceptor.DiscoverJWKS(context.Background(), issuer, nil); err == nil || !strings.Contains(err.Error(), "impostor") {
		t.Errorf("a document of another issuer: %v", err)
	}
	if _, err := interceptor.DiscoverJWKS(context.Background(), "http://issuer.example", nil); err == nil {
		t.Error("plain http off loopback accepted")
	}
}

// TestDiscoverJWKSLoopbackJWKSURI pins what docs/PROVIDERS.md says of the
// loopback exception: it covers the jwks_uri on its own terms. A jwks_uri in
// plain http is accepted on a loopback host (localhost, 127.0.0.1), whether
// the issuer is itself on loopback http or on https, and refused on any
// other host, even when the issuer is on loopback.
func TestDiscoverJWKSLoopbackJWKSURI(t *testing.T) {
	var jwksURI string
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		issuer := "http://" + r.Host
		if r.TLS != nil {
			issuer = "https://" + r.Host
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": jwksURI})
	})
	plain := httptest.NewServer(handler)
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(handler)
	defer tlsSrv.Close()
	_, port, _ := net.SplitHostPort(plain.Listener.Addr().String())
	for _, tc := range []struct {
		name, issuer, jwksURI string
		client                *http.Client
		ok                    bool
	}{
		{"loopback issuer, 127.0.0.1 jwks_uri", plain.URL, "http://127.0.0.1:" + port + "/keys", nil, true},
		{"loopback issuer, localhost jwks_uri", plain.URL, "http://localhost:" + port + "/keys", nil, true},
		{"loopback issuer, http jwks_uri elsewhere", plain.URL, "http://keys.example/keys", nil, false},
		{"loopback issuer, container-name jwks_uri", plain.URL, "http://keycloak:8080/keys", nil, false},
		{"https issuer, loopback http jwks_uri", tlsSrv.URL, "http://127.0.0.1:" + port + "/keys", tlsSrv.Client(), true},
		{"https issuer, http jwks_uri elsewhere", tlsSrv.URL, "http://keys.example/keys", tlsSrv.Client(), false},
	} {
		jwksURI = tc.jwksURI
		got, err := interceptor.DiscoverJWKS(context.Background(), tc.issuer, tc.client)
		switch {
		case tc.ok && (err != nil || got != tc.jwksURI):
			t.Errorf("%s: %q, %v; want it accepted", tc.name, got, err)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), "jwks_uri")):
			t.Errorf("%s: %q, %v; want it refused, naming jwks_uri", tc.name, got, err)
		}
	}
}

// FuzzIssuers: whatever the token, the issuer pick never panics and
// accepts only a token its issuer signed.
func FuzzIssuers(f *testing.F) {
	a := testkit.NewIssuer(f)
	va, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: "https://a.example", Audience: testAudience, JWKS: a.PublicJWKS()})
	if err != nil {
		f.Fatal(err)
	}
	m, err := interceptor.NewIssuers(va)
	if err != nil {
		f.Fatal(err)
	}
	good := a.Mint(f, time.Now(), testkit.TokenOptions{Issuer: "https://a.example", Audience: testAudience})
	f.Add(good)
	f.Add("e30.eyJpc3MiOiJodHRwczovL2EuZXhhbXBsZSJ9.")
	f.Fuzz(func(t *testing.T, tok string) {
		if _, err := m.VerifyToken(context.Background(), tok); err == nil && tok != good {
			t.Fatalf("accepted %q", tok)
		}
	})
}
