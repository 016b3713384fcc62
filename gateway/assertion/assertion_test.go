package assertion_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"google.golang.org/grpc/metadata"

	"github.com/stepupgrpc/stepup/gateway/assertion"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

const (
	iss = "https://gateway.example"
	aud = "relay-backend"
)

type kit struct {
	clock  *testkit.Clock
	key    *ecdsa.PrivateKey
	signer *assertion.Signer
	v      *assertion.Verifier
}

func newKit(t testing.TB) *kit {
	t.Helper()
	k := &kit{clock: testkit.NewClock(time.Unix(1_800_000_000, 0))}
	var err error
	k.key = genKey(t)
	if k.signer, err = assertion.NewSigner(assertion.SignerConfig{Key: k.key, KeyID: "gw-1", Issuer: iss, Audience: aud, Clock: k.clock.Now}); err != nil {
		t.Fatal(err)
	}
	if k.v, err = assertion.NewVerifier(assertion.VerifierConfig{Issuer: iss, Audience: aud, JWKS: k.signer.JWKS(), Clock: k.clock.Now}); err != nil {
		t.Fatal(err)
	}
	return k
}

func genKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func alice() *assertion.Identity {
	return &assertion.Identity{
		Subject: "alice", Scopes: []string{"bank", "bank:transfer"}, ClientID: "app", Thumbprint: "jkt-of-alice",
		Method: "/bank.v1.BankService/Transfer", TokenID: "tok-1",
		StepUp: &assertion.StepUp{Via: "answer", Factor: "totp", AuthTime: time.Unix(1_799_999_990, 0), GrantID: "g-1"},
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k := newKit(t)
	tok, err := k.signer.Sign(alice())
	if err != nil {
		t.Fatal(err)
	}
	id, err := k.v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := alice()
	if id.Subject != want.Subject || id.ClientID != want.ClientID || id.Thumbprint != want.Thumbprint ||
		id.Method != want.Method || id.TokenID != want.TokenID || strings.Join(id.Scopes, " ") != "bank bank:transfer" ||
		id.StepUp == nil || *id.StepUp != *want.StepUp || id.ID == "" ||
		!id.IssuedAt.Equal(k.clock.Now()) || id.Expiry.Sub(id.IssuedAt) != assertion.DefaultTTL {
		t.Errorf("verified %+v (step-up %+v)", id, id.StepUp)
	}
}

// forge signs arbitrary claims and header with key, under the kid "gw-1".
func forge(t *testing.T, priv *ecdsa.PrivateKey, typ string, claims map[string]any) string {
	t.Helper()
	doc, err := assertion.MarshalPrivateJWK(priv, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.ParseKey(doc)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, typ); err != nil {
		t.Fatal(err)
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestForgedAssertionsRefused(t *testing.T) {
	k := newKit(t)
	other := genKey(t) // forged under the same kid
	now := k.clock.Now().Unix()
	valid := func() map[string]any {
		return map[string]any{"iss": iss, "aud": aud, "iat": now, "exp": now + 60, "jti": "j", "sub": "alice", "method": "/m/M"}
	}
	with := func(edit func(map[string]any)) map[string]any { c := valid(); edit(c); return c }
	good := forge(t, k.key, assertion.Type, valid())
	if _, err := k.v.Verify(context.Background(), good); err != nil {
		t.Fatalf("the control is refused: %v", err)
	}
	header, rest, _ := strings.Cut(good, ".")
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"stepup-id+jwt"}`)) + "." + strings.Split(rest, ".")[0] + "."
	for _, tc := range []struct {
		name   string
		token  string
		reason interceptor.Reason
	}{
		{"signed by another key", forge(t, other, assertion.Type, valid()), interceptor.ReasonTokenBadSignature},
		{"an access token, not an assertion", forge(t, k.key, "at+jwt", valid()), interceptor.ReasonTokenBadType},
		{"untyped", forge(t, k.key, "JWT", valid()), interceptor.ReasonTokenBadType},
		{"for another backend", forge(t, k.key, assertion.Type, with(func(c map[string]any) { c["aud"] = "other-backend" })), interceptor.ReasonTokenWrongAudience},
		{"from another issuer", forge(t, k.key, assertion.Type, with(func(c map[string]any) { c["iss"] = "https://evil.example" })), interceptor.ReasonTokenWrongIssuer},
		{"expired", forge(t, k.key, assertion.Type, with(func(c map[string]any) { c["iat"], c["exp"] = now-120, now-60 })), interceptor.ReasonTokenExpired},
		{"alg none", unsigned, interceptor.ReasonTokenMalformed},
		{"a scope with a line feed", forge(t, k.key, assertion.Type, with(func(c map[string]any) { c["scope"] = "bank x\nadmin" })), interceptor.ReasonTokenInvalidClaims},
		{"header swapped", header + "." + strings.Split(forge(t, k.key, assertion.Type, with(func(c map[string]any) { c["sub"] = "root" })), ".")[1] + "." + strings.Split(good, ".")[2], interceptor.ReasonTokenBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := k.v.Verify(context.Background(), tc.token)
			var te *interceptor.TokenError
			if !errors.As(err, &te) {
				t.Fatalf("err %v, want a TokenError", err)
			}
			if te.Reason != tc.reason && !(tc.name == "alg none" && te.Reason == interceptor.ReasonTokenBadAlgorithm) {
				t.Errorf("reason %s, want %s (%v)", te.Reason, tc.reason, err)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   string
	}{
		{"no method", with(func(c map[string]any) { delete(c, "method") }), "method, iat and exp are required"},
		{"a lifetime of a day", with(func(c map[string]any) { c["exp"] = now + 86400 }), "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := k.v.Verify(context.Background(), forge(t, k.key, assertion.Type, tc.claims))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSignRefusesScopesABackendWouldSplit: the assertion's scope is the
// scopes joined with spaces; a scope holding white space (or any character
// outside RFC 6749 §3.3) would reach a backend as several, so Sign refuses
// it (the Guard refused such a token before: this is the second line).
func TestSignRefusesScopesABackendWouldSplit(t *testing.T) {
	k := newKit(t)
	for _, s := range []string{"x\nadmin", "x admin", "x\u0085admin", "x\u00a0admin", ""} {
		id := alice()
		id.Scopes = append(id.Scopes, s)
		if tok, err := k.signer.Sign(id); err == nil {
			t.Errorf("Sign with scope %q: %s", s, tok)
		}
	}
}

func TestVerifyCallChecksMethodAndCount(t *testing.T) {
	k := newKit(t)
	tok, err := k.signer.Sign(alice())
	if err != nil {
		t.Fatal(err)
	}
	in := func(vals ...string) context.Context {
		md := metadata.MD{}
		for _, v := range vals {
			md.Append(assertion.Metadata, v)
		}
		return metadata.NewIncomingContext(context.Background(), md)
	}
	if _, err := k.v.VerifyCall(in(tok), alice().Method); err != nil {
		t.Fatal(err)
	}
	if _, err := k.v.VerifyCall(in(tok), "/bank.v1.BankService/AddPayee"); !errors.Is(err, assertion.ErrWrongMethod) {
		t.Errorf("another method: %v", err)
	}
	if _, err := k.v.VerifyCall(in(tok, tok), alice().Method); err == nil {
		t.Error("two values accepted")
	}
	if _, err := k.v.VerifyCall(in(), alice().Method); err == nil {
		t.Error("no value accepted")
	}
}

func TestSignerConfig(t *testing.T) {
	key := genKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  assertion.SignerConfig
		want string
	}{
		{"no issuer", assertion.SignerConfig{Key: key, KeyID: "k", Audience: aud}, "issuer and an audience"},
		{"ttl too long", assertion.SignerConfig{Key: key, KeyID: "k", Issuer: iss, Audience: aud, TTL: time.Hour}, "outside"},
		{"no key", assertion.SignerConfig{KeyID: "k", Issuer: iss, Audience: aud}, "needs a key"},
		{"P-384 key", assertion.SignerConfig{Key: p384, KeyID: "k", Issuer: iss, Audience: aud}, "P-256"},
		{"no kid", assertion.SignerConfig{Key: key, Issuer: iss, Audience: aud}, `"kid"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := assertion.NewSigner(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzVerify feeds arbitrary assertions to the verifier: it never panics
// and accepts only what the gateway's key signed.
func FuzzVerify(f *testing.F) {
	k := newKit(f)
	tok, err := k.signer.Sign(alice())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := k.v.Verify(context.Background(), s)
		if err == nil && (id.Subject != "alice" || s != tok) {
			t.Fatalf("accepted %q as %+v", s, id)
		}
	})
}

// Example shows a Go backend behind stepup-gateway: its interceptors refuse
// a call without a valid assertion, and the handler reads the caller.
func Example() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := assertion.NewSigner(assertion.SignerConfig{Key: key, KeyID: "gw-1", Issuer: iss, Audience: aud})
	// In the backend: the gateway's JWKS (JWKSURL: its jwks_listen).
	v, _ := assertion.NewVerifier(assertion.VerifierConfig{Issuer: iss, Audience: aud, JWKS: signer.JWKS()})
	defer v.Close()
	_ = v.UnaryServerInterceptor(nil) // grpc.ChainUnaryInterceptor(v.UnaryServerInterceptor(nil))

	tok, _ := signer.Sign(&assertion.Identity{Subject: "alice", Method: "/bank.v1.BankService/GetBalance"})
	id, err := v.Verify(context.Background(), tok)
	if err != nil {
		panic(err)
	}
	fmt.Println(id.Subject, id.Method)
	// Output: alice /bank.v1.BankService/GetBalance
}

// TestPrivateJWK: the key file round-trips, and ParsePrivateJWK refuses
// what NewSigner would (a public key, another curve, no kid, two keys).
func TestPrivateJWK(t *testing.T) {
	key := genKey(t)
	doc, err := assertion.MarshalPrivateJWK(key, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	got, kid, err := assertion.ParsePrivateJWK(doc)
	if err != nil || kid != "gw-1" || !got.Equal(key) {
		t.Fatalf("round trip: kid %q, equal %v, err %v", kid, got != nil && got.Equal(key), err)
	}
	if _, err := assertion.MarshalPrivateJWK(key, ""); err == nil {
		t.Error("a key without a kid marshalled")
	}
	jwkOf := func(edit func(map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k384, err := jwk.Import(p384)
	if err != nil {
		t.Fatal(err)
	}
	if err := k384.Set(jwk.KeyIDKey, "gw-1"); err != nil {
		t.Fatal(err)
	}
	doc384, err := json.Marshal(k384)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		doc  []byte
		want string
	}{
		{"public key", jwkOf(func(m map[string]any) { delete(m, "d") }), "private P-256"},
		{"no kid", jwkOf(func(m map[string]any) { delete(m, "kid") }), `"kid"`},
		{"P-384", doc384, "P-256"},
		{"two keys", []byte(`{"keys":[` + string(doc) + `,` + string(doc) + `]}`), "exactly one"},
		{"not JSON", []byte("-----BEGIN PRIVATE KEY-----"), "not a JWK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := assertion.ParsePrivateJWK(tc.doc); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}
