package dpop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
)

func TestSignerAlgorithms(t *testing.T) {
	keys(t)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		key     crypto.Signer
		opts    []dpop.SignerOption
		wantAlg string // "" means NewSigner must fail
	}{
		{"P-256", ecKey, nil, "ES256"},
		{"P-384", ec384Key, nil, "ES384"},
		{"Ed25519", edKey, nil, "EdDSA"},
		{"Ed25519 fully specified", edKey, []dpop.SignerOption{dpop.WithEd25519Name()}, "Ed25519"},
		{"Ed25519 by WithAlgorithm", edKey, []dpop.SignerOption{dpop.WithAlgorithm("Ed25519")}, "Ed25519"},
		{"RSA", rsaKey, nil, "PS256"},
		{"RSA RS256", rsaKey, []dpop.SignerOption{dpop.WithAlgorithm("RS256")}, "RS256"},
		{"RSA 1024 refused", rsa1024, nil, ""},
		{"P-521 refused", p521, nil, ""},
		{"ES384 with P-256 refused", ecKey, []dpop.SignerOption{dpop.WithAlgorithm("ES384")}, ""},
		{"RS256 with EC refused", ecKey, []dpop.SignerOption{dpop.WithAlgorithm("RS256")}, ""},
		{"HS256 refused", ecKey, []dpop.SignerOption{dpop.WithAlgorithm("HS256")}, ""},
		{"none refused", edKey, []dpop.SignerOption{dpop.WithAlgorithm("none")}, ""},
	}
	clock := newClock(testNow)
	v := newTestVerifier(t, clock)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]dpop.SignerOption{dpop.WithClock(clock.Now)}, tc.opts...)
			s, err := dpop.NewSigner(tc.key, opts...)
			if tc.wantAlg == "" {
				if err == nil {
					t.Fatal("NewSigner accepted")
				}
				if !strings.HasPrefix(err.Error(), "dpop: ") {
					t.Fatalf("error %q lacks the prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Algorithm() != tc.wantAlg {
				t.Fatalf("Algorithm = %s, want %s", s.Algorithm(), tc.wantAlg)
			}
			want, err := dpop.ThumbprintOf(tc.key.Public())
			if err != nil || s.Thumbprint() != want {
				t.Fatalf("Thumbprint = %s, want %s (%v)", s.Thumbprint(), want, err)
			}
			if tp, err := dpop.Thumbprint(s.PublicJWK()); err != nil || tp != want {
				t.Fatalf("Thumbprint(PublicJWK) = %s, %v", tp, err)
			}
			p, err := s.Proof("POST", testHTU, testToken)
			if err != nil {
				t.Fatal(err)
			}
			req := testRequest(p)
			req.ExpectedJKT = want
			got, err := v.Verify(context.Background(), req)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Algorithm != tc.wantAlg || got.HTU != testHTU || got.HTM != "POST" ||
				got.ATH != dpop.ATH(testToken) || !got.IssuedAt.Equal(testNow) || len(got.JTI) < 16 {
				t.Fatalf("proof = %+v", got)
			}
			if !got.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.key.Public()) {
				t.Fatal("PublicKey differs")
			}
		})
	}
}

func TestSignerProofShape(t *testing.T) {
	keys(t)
	s, err := dpop.NewSigner(ecKey, dpop.WithClock(newClock(testNow).Now))
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Proof("POST", testHTU+"?q=1#frag", "")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(p, ".")
	if len(parts) != 3 {
		t.Fatalf("not compact: %s", p)
	}
	var hdr map[string]any
	raw, _ := b64.DecodeString(parts[0])
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr["typ"] != "dpop+jwt" || hdr["alg"] != "ES256" || hdr["jwk"] == nil || len(hdr) != 3 {
		t.Fatalf("header = %v", hdr)
	}
	var claims map[string]any
	raw, _ = b64.DecodeString(parts[1])
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	// No ath without a token, query and fragment dropped, no nonce.
	if claims["htu"] != testHTU || claims["htm"] != "POST" || claims["iat"] != float64(testNow.Unix()) ||
		claims["ath"] != nil || claims["nonce"] != nil || len(claims["jti"].(string)) != 22 {
		t.Fatalf("claims = %v", claims)
	}
	// Each proof has a new jti.
	p2, _ := s.Proof("POST", testHTU, "")
	if jtiOf(t, p) == jtiOf(t, p2) {
		t.Fatal("jti reused")
	}
	for _, bad := range [][2]string{
		{"", testHTU}, {"PO ST", testHTU}, {"POST", "api.example.com/x"}, {"POST", "ftp://api.example.com/x"},
		{"POST", "https://u@api.example.com/x"},
	} {
		if _, err := s.Proof(bad[0], bad[1], ""); err == nil {
			t.Errorf("Proof(%q, %q) accepted", bad[0], bad[1])
		}
	}
	if _, err := s.ProofWithNonce("POST", testHTU, "", "bad nonce"); err == nil {
		t.Error("nonce with a space accepted")
	}
}

func TestSignerNonces(t *testing.T) {
	keys(t)
	s, err := dpop.NewSigner(edKey)
	if err != nil {
		t.Fatal(err)
	}
	s.SetNonce("API.Example.com:443", "n-1")
	for _, a := range []string{"api.example.com", "api.example.com:443", "API.EXAMPLE.COM"} {
		if got := s.Nonce(a); got != "n-1" {
			t.Errorf("Nonce(%q) = %q", a, got)
		}
	}
	if s.Nonce("api.example.com:8443") != "" {
		t.Error("nonce leaked to another port")
	}
	s.SetNonce("api.example.com:8443", "n-2")
	p, _ := s.Proof("POST", "https://api.example.com:8443/x", "")
	if !strings.Contains(claimsOf(t, p), `"nonce":"n-2"`) {
		t.Errorf("proof lacks the remembered nonce: %s", claimsOf(t, p))
	}
	p, _ = s.Proof("POST", "HTTPS://API.example.com/x", "")
	if !strings.Contains(claimsOf(t, p), `"nonce":"n-1"`) {
		t.Errorf("proof lacks the remembered nonce: %s", claimsOf(t, p))
	}
	// Invalid syntax from the network is ignored; empty forgets.
	s.SetNonce("api.example.com", "with space")
	if s.Nonce("api.example.com") != "n-1" {
		t.Error("invalid nonce stored")
	}
	s.SetNonce("api.example.com", "")
	if s.Nonce("api.example.com") != "" {
		t.Error("nonce not forgotten")
	}
	// The RFC 9449 §8 example nonce is stored as is, dots included.
	s.SetNonce("api.example.com", "eyJ7S_zG.eyJH0-Z.HX4w-7v")
	p, _ = s.Proof("POST", "https://api.example.com/x", "")
	if !strings.Contains(claimsOf(t, p), `"nonce":"eyJ7S_zG.eyJH0-Z.HX4w-7v"`) {
		t.Errorf("dotted nonce mangled: %s", claimsOf(t, p))
	}
}

func claimsOf(tb testing.TB, proof string) string {
	tb.Helper()
	raw, err := b64.DecodeString(strings.Split(proof, ".")[1])
	if err != nil {
		tb.Fatal(err)
	}
	return string(raw)
}

func TestSignJWSAndVerifyJWS(t *testing.T) {
	keys(t)
	for _, key := range []crypto.Signer{ecKey, ec384Key, edKey, rsaKey} {
		s, err := dpop.NewSigner(key)
		if err != nil {
			t.Fatal(err)
		}
		payload := []byte(`{"challenge":"abc","evidence":{"totp":"123456"},"n":[1,2,{"x":null}]}`)
		jws, err := s.SignJWS("stepup-answer+jwt", payload)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dpop.VerifyJWS(jws, dpop.JWSOptions{Type: "stepup-answer+jwt", Thumbprint: s.Thumbprint()})
		if err != nil {
			t.Fatalf("%s: %v", s.Algorithm(), err)
		}
		if string(got.Payload) != string(payload) || got.Algorithm != s.Algorithm() || got.Thumbprint != s.Thumbprint() {
			t.Fatalf("got %+v", got)
		}
		_, err = dpop.VerifyJWS(jws, dpop.JWSOptions{Type: "dpop+jwt"})
		wantReason(t, err, dpop.ReasonBadType)
		_, err = dpop.VerifyJWS(jws, dpop.JWSOptions{})
		wantReason(t, err, dpop.ReasonBadType)
		_, err = dpop.VerifyJWS(jws, dpop.JWSOptions{Type: "stepup-answer+jwt", Thumbprint: "AAAA"})
		wantReason(t, err, dpop.ReasonKeyMismatch)
		_, err = dpop.VerifyJWS(jws, dpop.JWSOptions{Type: "stepup-answer+jwt", Algorithms: []string{"ES384"}})
		if s.Algorithm() != "ES384" {
			wantReason(t, err, dpop.ReasonBadAlgorithm)
		}
		_, err = dpop.VerifyJWS(jws, dpop.JWSOptions{Type: "stepup-answer+jwt", MaxSize: 100})
		wantReason(t, err, dpop.ReasonTooLarge)
		if s.Algorithm() == "PS256" {
			_, err = dpop.VerifyJWS(jws, dpop.JWSOptions{Type: "stepup-answer+jwt", MinRSABits: 4096})
			wantReason(t, err, dpop.ReasonWeakKey)
		}
	}
	s, _ := dpop.NewSigner(ecKey)
	for _, bad := range []string{`[1]`, `{"a":1,"a":2}`, `{`, ``, `"x"`} {
		if _, err := s.SignJWS("t", []byte(bad)); err == nil {
			t.Errorf("SignJWS accepted payload %q", bad)
		}
	}
	if _, err := s.SignJWS("", []byte(`{}`)); err == nil {
		t.Error("SignJWS accepted an empty typ")
	}
	// A JWS whose payload is not an object is refused by VerifyJWS even
	// when correctly signed.
	jws := sign(t, "ES256", ecKey, `{"typ":"t","alg":"ES256","jwk":`+jwkOf(t, ecKey.Public())+`}`, `[1,2]`)
	_, err := dpop.VerifyJWS(jws, dpop.JWSOptions{Type: "t"})
	wantReason(t, err, dpop.ReasonMalformed)
}

func TestThumbprintErrors(t *testing.T) {
	keys(t)
	cases := []struct {
		jwk  string
		want dpop.Reason
	}{
		{`{"kty":"oct","k":"AAAA"}`, dpop.ReasonBadKey},
		{`{"crv":"P-256","x":"AAAA","y":"AAAA"}`, dpop.ReasonBadKey},
		{`{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}`, dpop.ReasonBadKey},
		{`{"kty":"OKP","crv":"X25519","x":"` + b64.EncodeToString(make([]byte, 32)) + `"}`, dpop.ReasonBadKey},
		{`{"kty":"RSA","n":"AAEC","e":"AQAB"}`, dpop.ReasonBadKey},
		{`{"kty":"RSA","n":"` + b64.EncodeToString(make([]byte, 1100)) + `","e":"AQAB"}`, dpop.ReasonWeakKey},
		{`{"kty":"EC","kty":"EC"}`, dpop.ReasonMalformed},
		{`not json`, dpop.ReasonMalformed},
		{`{"kty":1}`, dpop.ReasonBadKey},
	}
	for _, tc := range cases {
		_, err := dpop.Thumbprint([]byte(tc.jwk))
		if got := dpop.ReasonOf(err); got != tc.want {
			t.Errorf("Thumbprint(%s): %v, want %s", tc.jwk, err, tc.want)
		}
	}
	// A private JWK has the same thumbprint as its public part.
	priv := strings.TrimSuffix(jwkOf(t, ecKey.Public()), "}") + `,"d":"` + b64.EncodeToString(ecKey.D.FillBytes(make([]byte, 32))) + `"}`
	a, err1 := dpop.Thumbprint([]byte(priv))
	b, err2 := dpop.ThumbprintOf(ecKey.Public())
	if err1 != nil || err2 != nil || a != b {
		t.Fatalf("private JWK thumbprint %s %v, public %s %v", a, err1, b, err2)
	}
	if _, err := dpop.ThumbprintOf("not a key"); err == nil {
		t.Fatal("ThumbprintOf accepted a string")
	}
}

func TestNonces(t *testing.T) {
	key := []byte("this is a 32 byte nonce key.....")
	clock := newClock(testNow)
	n, err := dpop.NewNonces(key, time.Minute, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	replica, _ := dpop.NewNonces(key, time.Minute, clock.Now)
	other, _ := dpop.NewNonces([]byte("another 32 byte nonce key......."), time.Minute, clock.Now)
	first := n.Current()
	if replica.Current() != first {
		t.Fatal("replicas sharing the key disagree")
	}
	if other.Current() == first {
		t.Fatal("different keys give the same nonce")
	}
	if err := n.Check(first); err != nil {
		t.Fatalf("current nonce refused: %v", err)
	}
	wantReason(t, other.Check(first), dpop.ReasonNonceInvalid)
	wantReason(t, n.Check(""), dpop.ReasonNonceRequired)
	wantReason(t, n.Check(first+"x"), dpop.ReasonNonceInvalid)
	wantReason(t, n.Check("eyJ7S_zG.eyJH0-Z.HX4w-7v"), dpop.ReasonNonceInvalid)

	clock.Advance(time.Minute) // next window: the previous one is accepted
	if n.Current() == first {
		t.Fatal("nonce did not roll over")
	}
	if err := n.Check(first); err != nil {
		t.Fatalf("previous window's nonce refused: %v", err)
	}
	if err := replica.Check(first); err != nil {
		t.Fatalf("replica refuses the previous nonce: %v", err)
	}
	second := n.Current()
	clock.Advance(time.Minute) // two windows later: refused
	wantReason(t, n.Check(first), dpop.ReasonNonceInvalid)
	if err := n.Check(second); err != nil {
		t.Fatalf("previous window's nonce refused: %v", err)
	}
	// A replica that never saw the first window agrees too.
	late, _ := dpop.NewNonces(key, time.Minute, clock.Now)
	if late.Current() != n.Current() || late.Check(second) != nil {
		t.Fatal("late replica disagrees")
	}

	if _, err := dpop.NewNonces(key[:31], 0, nil); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := dpop.NewNonces(key, -time.Second, nil); err == nil {
		t.Fatal("negative window accepted")
	}
	d, err := dpop.NewNonces(key, 0, nil)
	if err != nil || d.Current() == "" {
		t.Fatalf("default window: %v", err)
	}
}

func TestErrorType(t *testing.T) {
	e := &dpop.ProofError{Reason: dpop.ReasonBadURI, Detail: "htu mismatch"}
	if e.Error() != "dpop: DPOP_BAD_HTU: htu mismatch" {
		t.Fatalf("Error() = %q", e.Error())
	}
	if (&dpop.ProofError{Reason: dpop.ReasonReplayed}).Error() != "dpop: DPOP_REPLAYED" {
		t.Fatal("Error() without detail")
	}
	if e.UseNonce() || !(&dpop.ProofError{Reason: dpop.ReasonNonceInvalid}).UseNonce() {
		t.Fatal("UseNonce")
	}
	if dpop.ReasonOf(nil) != "" || dpop.ReasonOf(context.Canceled) != "" {
		t.Fatal("ReasonOf of a foreign error")
	}
}
