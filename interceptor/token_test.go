package interceptor_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/stepupgrpc/stepup/interceptor"
)

func writeJWKS(t *testing.T, set jwk.Set) []byte {
	t.Helper()
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJWTVerifierFromJWKSFile(t *testing.T) {
	is := newIssuer(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, writeJWKS(t, is.PublicSet()), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKSFile: path})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := v.VerifyToken(context.Background(), is.mint(t, time.Now(), tokenOpts{JKT: "abc", Scope: "a b"}))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Subject != "alice" || tok.JKT != "abc" || !tok.HasScope("b") || tok.ClientID != "client-1" {
		t.Fatalf("token = %+v", tok)
	}
	// A token from another issuer key is refused.
	_, err = v.VerifyToken(context.Background(), newIssuer(t).mint(t, time.Now(), tokenOpts{}))
	var te *interceptor.TokenError
	if !errors.As(err, &te) || te.Reason != interceptor.ReasonTokenBadSignature {
		t.Fatalf("other key: %v", err)
	}
}

// The JWKS URL is fetched at construction and refreshed in the background:
// after the issuer rotates to a new key, tokens signed with it verify.
func TestJWTVerifierFromJWKSURLRefreshes(t *testing.T) {
	old, next := newIssuer(t), newIssuer(t)
	var mu sync.Mutex
	serving := writeJWKS(t, old.PublicSet())
	fetches := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetches++
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(serving)
	}))
	defer srv.Close()
	v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
		Issuer: testIssuer, Audience: testAudience, JWKSURL: srv.URL,
		JWKSMinRefresh: time.Second, JWKSMaxRefresh: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.VerifyToken(context.Background(), old.mint(t, time.Now(), tokenOpts{})); err != nil {
		t.Fatalf("token of the served key: %v", err)
	}
	if _, err := v.VerifyToken(context.Background(), next.mint(t, time.Now(), tokenOpts{})); err == nil {
		t.Fatal("a token of a key not yet published verified")
	}
	// Rotate: publish the new key and wait for the background refresh
	// (bounded; this waits on the refresh, it asserts no timing).
	mu.Lock()
	serving = writeJWKS(t, next.PublicSet())
	mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := v.VerifyToken(context.Background(), next.mint(t, time.Now(), tokenOpts{}))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated key never verified: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if fetches < 2 {
		t.Fatalf("%d fetches", fetches)
	}
}

func TestJWTVerifierConfiguration(t *testing.T) {
	is := newIssuer(t)
	priv := jwk.NewSet()
	_ = priv.AddKey(is.PrivateJWK())
	bad := map[string]interceptor.JWTConfig{
		"no issuer":          {Audience: testAudience, Keys: is.PublicSet()},
		"no audience":        {Issuer: testIssuer, Keys: is.PublicSet()},
		"no keys":            {Issuer: testIssuer, Audience: testAudience},
		"two key sources":    {Issuer: testIssuer, Audience: testAudience, Keys: is.PublicSet(), JWKSFile: "x"},
		"HMAC algorithm":     {Issuer: testIssuer, Audience: testAudience, Keys: is.PublicSet(), Algorithms: []string{"HS256"}},
		"none algorithm":     {Issuer: testIssuer, Audience: testAudience, Keys: is.PublicSet(), Algorithms: []string{"none"}},
		"leeway too large":   {Issuer: testIssuer, Audience: testAudience, Keys: is.PublicSet(), Leeway: time.Hour},
		"private key in set": {Issuer: testIssuer, Audience: testAudience, Keys: priv},
		"unreachable URL":    {Issuer: testIssuer, Audience: testAudience, JWKSURL: "http://127.0.0.1:1/jwks.json", HTTPClient: &http.Client{Timeout: time.Second}},
	}
	for name, cfg := range bad {
		t.Run(name, func(t *testing.T) {
			if v, err := interceptor.NewJWTVerifier(cfg); err == nil {
				v.Close()
				t.Fatal("accepted")
			} else if !strings.HasPrefix(err.Error(), "interceptor: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}
