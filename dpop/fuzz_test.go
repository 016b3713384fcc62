package dpop_test

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
)

var writeCorpus = flag.Bool("dpop.writecorpus", false, "rewrite testdata/fuzz seed corpora")

var knownReasons = map[dpop.Reason]bool{
	dpop.ReasonMalformed: true, dpop.ReasonTooLarge: true, dpop.ReasonBadType: true,
	dpop.ReasonBadAlgorithm: true, dpop.ReasonBadKey: true, dpop.ReasonPrivateKey: true,
	dpop.ReasonWeakKey: true, dpop.ReasonBadSignature: true, dpop.ReasonBadMethod: true,
	dpop.ReasonBadURI: true, dpop.ReasonIssuedTooOld: true, dpop.ReasonIssuedInFuture: true,
	dpop.ReasonBadATH: true, dpop.ReasonKeyMismatch: true, dpop.ReasonNonceRequired: true,
	dpop.ReasonNonceInvalid: true, dpop.ReasonReplayed: true, dpop.ReasonReplayWindow: true,
	dpop.ReasonStoreUnavailable: true,
}

// FuzzVerify feeds arbitrary proofs to the verifier. It must never panic,
// every refusal must be a *dpop.ProofError with a documented reason, and every
// acceptance must be consistent with VerifyJWS and the thumbprint.
func FuzzVerify(f *testing.F) {
	for _, p := range fuzzSeeds(f) {
		f.Add(p)
	}
	clock := newClock(testNow)
	v := newTestVerifier(f, clock)
	f.Fuzz(func(t *testing.T, proof string) {
		req := testRequest(proof)
		req.AccessToken = "" // let proofs without ath through
		p, err := v.Verify(context.Background(), req)
		if err != nil {
			var de *dpop.ProofError
			if !errors.As(err, &de) || !knownReasons[de.Reason] || !strings.HasPrefix(err.Error(), "dpop: ") {
				t.Fatalf("bad refusal %T %v", err, err)
			}
			return
		}
		tp, terr := dpop.ThumbprintOf(p.PublicKey)
		if terr != nil || tp != p.Thumbprint {
			t.Fatalf("accepted proof thumbprint %q, recomputed %q (%v)", p.Thumbprint, tp, terr)
		}
		j, jerr := dpop.VerifyJWS(proof, dpop.JWSOptions{Type: "dpop+jwt"})
		if jerr != nil || j.Thumbprint != p.Thumbprint || j.Algorithm != p.Algorithm {
			t.Fatalf("Verify accepted, VerifyJWS: %v", jerr)
		}
		var claims map[string]any
		if err := json.Unmarshal(j.Payload, &claims); err != nil {
			t.Fatalf("accepted claims are not JSON for encoding/json: %v", err)
		}
		if claims["jti"] != p.JTI || claims["htm"] != p.HTM || claims["htu"] != p.HTU {
			t.Fatalf("encoding/json reads other claims: %v vs %+v", claims, p)
		}
	})
}

// FuzzThumbprint feeds arbitrary JWKs. It must never panic; an accepted JWK
// must be valid JSON whose thumbprint does not depend on member order.
func FuzzThumbprint(f *testing.F) {
	vec := loadVectors(f)
	f.Add([]byte(vec.RFC9449JWK))
	f.Add([]byte(vec.RFC7638.JWK))
	keys(f)
	for _, pub := range []crypto.PublicKey{ecKey.Public(), ec384Key.Public(), edKey.Public(), rsaKey.Public()} {
		f.Add([]byte(jwkOf(f, pub)))
	}
	f.Add([]byte(`{"kty":"oct","k":"AAAA"}`))
	f.Add([]byte(`{"kty":"EC","crv":"P-256","x":"\u0041","y":"AA"}`))
	f.Fuzz(func(t *testing.T, jwk []byte) {
		tp, err := dpop.Thumbprint(jwk)
		if err != nil {
			if dpop.ReasonOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(tp) != 43 {
			t.Fatalf("thumbprint %q", tp)
		}
		var m map[string]any
		if err := json.Unmarshal(jwk, &m); err != nil {
			t.Fatalf("accepted JWK that encoding/json refuses: %v", err)
		}
		// One spelling per key: each base64url member read is the
		// encoding of its bytes (no line break, padding or trailing bits).
		for _, name := range []string{"x", "y", "n", "e"} {
			if v, ok := m[name].(string); ok {
				if raw, err := b64.DecodeString(v); err != nil || b64.EncodeToString(raw) != v {
					t.Fatalf("accepted %s %q, not the encoding of its bytes", name, v)
				}
			}
		}
		re, _ := json.Marshal(m) // sorted member order
		tp2, err := dpop.Thumbprint(re)
		if err != nil || tp2 != tp {
			t.Fatalf("thumbprint depends on encoding: %q vs %q (%v)", tp, tp2, err)
		}
	})
}

// fuzzSeeds are valid proofs of every algorithm and classic attacks.
func fuzzSeeds(tb testing.TB) []string {
	keys(tb)
	vec := loadVectors(tb)
	clock := func() time.Time { return testNow }
	var seeds []string
	for _, p := range vec.Proofs {
		seeds = append(seeds, p.Proof)
	}
	type signerCase struct {
		key  crypto.Signer
		opts []dpop.SignerOption
	}
	for _, sc := range []signerCase{
		{ecKey, nil}, {ec384Key, nil}, {edKey, nil}, {edKey, []dpop.SignerOption{dpop.WithEd25519Name()}},
		{rsaKey, nil}, {rsaKey, []dpop.SignerOption{dpop.WithAlgorithm("RS256")}},
	} {
		s, err := dpop.NewSigner(sc.key, append(sc.opts, dpop.WithClock(clock))...)
		if err != nil {
			tb.Fatal(err)
		}
		p, _ := s.Proof("POST", testHTU, "")
		seeds = append(seeds, p)
		p, _ = s.ProofWithNonce("POST", testHTU, testToken, vec.Nonce)
		seeds = append(seeds, p)
	}
	now := testNow.Unix()
	ecJWK := jwkOf(tb, ecKey.Public())
	seeds = append(seeds,
		sign(tb, "none", nil, `{"typ":"dpop+jwt","alg":"none","jwk":`+ecJWK+`}`, claimsJSON("fuzz-seed-none-0001", now)),
		sign(tb, "HS256", []byte("k"), `{"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":"aw"}}`, claimsJSON("fuzz-seed-hs256-001", now)),
		sign(tb, "ES256", ecKey, `{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":`+ecJWK+`}`, claimsJSON("fuzz-seed-dup-00001", now)),
		sign(tb, "ES256", ecKey, `{"typ":"dpop+jwt","alg":"ES256","jwk":`+ecJWK+`}`,
			`{"jti":"fuzz-seed-deep-0001","htm":"POST","htu":"`+testHTU+`","iat":`+strconv.FormatInt(now, 10)+`,"x":`+strings.Repeat("[", 20)+strings.Repeat("]", 20)+`}`),
		sign(tb, "ES256", ecKey, `{"typ":"dpop+jwt","alg":"ES256","jwk":`+ecJWK+`}`,
			`{"jti":"fuzz-seed-esc-\u00e9\ud83d\ude00","htm":"PO\u0053T","htu":"`+testHTU+`","iat":`+strconv.FormatInt(now, 10)+`.25e0}`),
		sign(tb, "PS256", rsa1024, proofHeader(tb, "PS256", rsa1024.Public()), claimsJSON("fuzz-seed-rsa1024-01", now)),
		sign(tb, "EdDSA", edKey, `{"typ":"dpop+jwt","alg":"ES256","jwk":`+jwkOf(tb, edKey.Public())+`}`, claimsJSON("fuzz-seed-confuse-01", now)),
		"e30.e30.",
		"..",
		"a.b.c",
		"eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.AA==",
	)
	return seeds
}

// TestWriteFuzzCorpus rewrites the committed seed corpora from fuzzSeeds.
// Run with: go test ./dpop/ -run TestWriteFuzzCorpus -dpop.writecorpus
func TestWriteFuzzCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -dpop.writecorpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range fuzzSeeds(t) {
		body := "go test fuzz v1\nstring(" + strconv.Quote(s) + ")\n"
		name := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
