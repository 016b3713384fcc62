package interceptor_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/stepupgrpc/stepup/interceptor"
)

func TestJWTVerifierFromJWKSFile(t *testing.T) {
	is := newIssuer(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, is.PublicJWKS(), 0o600); err != nil {
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
	serving := old.PublicJWKS()
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
	serving = next.PublicJWKS()
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
	jwks := is.PublicJWKS()
	bad := map[string]interceptor.JWTConfig{
		"no issuer":        {Audience: testAudience, JWKS: jwks},
		"no audience":      {Issuer: testIssuer, JWKS: jwks},
		"no keys":          {Issuer: testIssuer, Audience: testAudience},
		"HMAC algorithm":   {Issuer: testIssuer, Audience: testAudience, JWKS: jwks, Algorithms: []string{"HS256"}},
		"none algorithm":   {Issuer: testIssuer, Audience: testAudience, JWKS: jwks, Algorithms: []string{"none"}},
		"leeway too large": {Issuer: testIssuer, Audience: testAudience, JWKS: jwks, Leeway: time.Hour},
		"unreachable URL":  {Issuer: testIssuer, Audience: testAudience, JWKSURL: "http://127.0.0.1:1/jwks.json", HTTPClient: &http.Client{Timeout: time.Second}},
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

// JWKS is the issuer's JWK Set document, taken as it is served.
func TestJWTVerifierFromJWKS(t *testing.T) {
	is := newIssuer(t)
	v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKS: is.PublicJWKS()})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := v.VerifyToken(context.Background(), is.mint(t, time.Now(), tokenOpts{JKT: "abc"}))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Subject != "alice" || tok.JKT != "abc" {
		t.Fatalf("token = %+v", tok)
	}
	_, err = v.VerifyToken(context.Background(), newIssuer(t).mint(t, time.Now(), tokenOpts{}))
	var te *interceptor.TokenError
	if !errors.As(err, &te) || te.Reason != interceptor.ReasonTokenBadSignature {
		t.Fatalf("other key: %v", err)
	}
}

// VerifyToken accepts one spelling of a token (RFC 7515 §2): the token as
// minted, and no other encoding of the same header, claims and signature.
func TestJWTVerifierOneSpelling(t *testing.T) {
	is := newIssuer(t)
	v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKS: is.PublicJWKS()})
	if err != nil {
		t.Fatal(err)
	}
	tok := is.mint(t, time.Now(), tokenOpts{JKT: "abc"})
	if _, err := v.VerifyToken(context.Background(), tok); err != nil {
		t.Fatalf("the token as minted: %v", err)
	}
	parts := strings.Split(tok, ".")
	h, p, sig := parts[0], parts[1], parts[2]
	// The signature's last character carries 4 unused bits (a 64-byte
	// signature is 86 characters): set the lowest of them.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	trailing := alphabet[strings.IndexByte(alphabet, sig[len(sig)-1])^1]
	for name, other := range map[string]string{
		"padding":               tok + "==",
		"CR in the claims":      h + "." + p[:10] + "\r" + p[10:] + "." + sig,
		"LF in the header":      h[:5] + "\n" + h[5:] + "." + p + "." + sig,
		"CRLF at the end":       tok + "\r\n",
		"standard alphabet":     strings.NewReplacer("-", "+", "_", "/").Replace(tok),
		"trailing bits changed": tok[:len(tok)-1] + string(trailing),
		"space":                 h + ". " + p + "." + sig,
		// The same header, spelled so that jwx reads the same object.
		"space before the header":    respell(h, func(j string) string { return " " + j }) + "." + p + "." + sig,
		"bytes after the header":     respell(h, func(j string) string { return j + "4" }) + "." + p + "." + sig,
		"line feed after the header": respell(h, func(j string) string { return j + "\n" }) + "." + p + "." + sig,
		"duplicate member in header": respell(h, func(j string) string { return strings.Replace(j, "{", `{"typ":"x",`, 1) }) + "." + p + "." + sig,
		"duplicate member in claims": h + "." + respell(p, func(j string) string { return strings.Replace(j, "{", `{"sub":"mallory",`, 1) }) + "." + sig,
		"bytes after the claims":     h + "." + respell(p, func(j string) string { return j + "}" }) + "." + sig,
	} {
		if other == tok {
			continue // the alphabet swap changes nothing when neither - nor _ occurs
		}
		_, err := v.VerifyToken(context.Background(), other)
		var te *interceptor.TokenError
		if !errors.As(err, &te) || te.Reason != interceptor.ReasonTokenMalformed {
			t.Errorf("%s: %v, want %s", name, err, interceptor.ReasonTokenMalformed)
		}
	}
}

// respell decodes a base64url segment, edits its JSON text and encodes it
// again.
func respell(seg string, edit func(string) string) string {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(edit(string(raw))))
}

// A JWK Set document that does not parse, or has no key a verifier may
// use, is refused at construction, whichever way it arrives.
func TestJWTVerifierRefusesJWKS(t *testing.T) {
	is := newIssuer(t)
	priv := jwk.NewSet()
	_ = priv.AddKey(is.PrivateJWK())
	privJSON, err := json.Marshal(priv)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]struct {
		jwks []byte
		want string
	}{
		"invalid JSON":  {[]byte(`{"keys": [`), "not a JWK Set"},
		"not a key":     {[]byte(`{"kty": "nope"}`), "not a JWK Set"},
		"empty":         {[]byte{}, "not a JWK Set"},
		"no keys":       {[]byte(`{"keys": []}`), "holds no key"},
		"private key":   {privJSON, "private key"},
		"symmetric key": {[]byte(`{"keys": [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}`), "symmetric"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKS: tc.jwks})
			if err == nil {
				v.Close()
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), "interceptor: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want the package prefix and %q", err, tc.want)
			}
		})
		t.Run(name+" in a file", func(t *testing.T) {
			if len(tc.jwks) == 0 {
				t.Skip("an empty file fails as unreadable JSON; covered above")
			}
			path := filepath.Join(t.TempDir(), "jwks.json")
			if err := os.WriteFile(path, tc.jwks, 0o600); err != nil {
				t.Fatal(err)
			}
			if v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKSFile: path}); err == nil {
				v.Close()
				t.Fatal("accepted")
			}
		})
	}
	// The deprecated Keys is checked as before.
	if v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience, Keys: priv}); err == nil {
		v.Close()
		t.Fatal("Keys with a private key accepted")
	}
}

// Exactly one key source: every pair of the four is refused.
func TestJWTVerifierOneKeySource(t *testing.T) {
	is := newIssuer(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, is.PublicJWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(is.PublicJWKS()) }))
	defer srv.Close()
	sources := map[string]func(*interceptor.JWTConfig){
		"JWKS":     func(c *interceptor.JWTConfig) { c.JWKS = is.PublicJWKS() },
		"JWKSFile": func(c *interceptor.JWTConfig) { c.JWKSFile = path },
		"JWKSURL":  func(c *interceptor.JWTConfig) { c.JWKSURL = srv.URL },
		"Keys":     func(c *interceptor.JWTConfig) { c.Keys = is.PublicSet() },
	}
	names := slices.Sorted(maps.Keys(sources))
	for i, a := range names {
		// Each source alone is accepted, so a refused pair is refused
		// for being a pair.
		t.Run(a, func(t *testing.T) {
			cfg := interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience}
			sources[a](&cfg)
			v, err := interceptor.NewJWTVerifier(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			if _, err := v.VerifyToken(context.Background(), is.mint(t, time.Now(), tokenOpts{})); err != nil {
				t.Fatal(err)
			}
		})
		for _, b := range names[i+1:] {
			t.Run(a+"+"+b, func(t *testing.T) {
				cfg := interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience}
				sources[a](&cfg)
				sources[b](&cfg)
				v, err := interceptor.NewJWTVerifier(cfg)
				if err == nil {
					v.Close()
					t.Fatal("accepted")
				}
				if want := "exactly one of JWKS, JWKSFile, JWKSURL and Keys"; !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q, want %q", err, want)
				}
			})
		}
	}
}
