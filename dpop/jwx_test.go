// Cross-checks against github.com/lestrrat-go/jwx/v3: the hot path of this
// package parses JOSE with the standard library, so these tests hold it to
// what an independent, widely used implementation produces and accepts.

package dpop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/stepupgrpc/stepup/dpop"
)

type jwxCase struct {
	name string
	key  crypto.Signer
	opts []dpop.SignerOption
	alg  jwa.SignatureAlgorithm
}

func jwxCases(t *testing.T) []jwxCase {
	keys(t)
	return []jwxCase{
		{"ES256", ecKey, nil, jwa.ES256()},
		{"ES384", ec384Key, nil, jwa.ES384()},
		{"EdDSA", edKey, nil, jwa.EdDSA()},
		{"Ed25519", edKey, []dpop.SignerOption{dpop.WithEd25519Name()}, jwa.EdDSAEd25519()},
		{"PS256", rsaKey, nil, jwa.PS256()},
		{"RS256", rsaKey, []dpop.SignerOption{dpop.WithAlgorithm("RS256")}, jwa.RS256()},
	}
}

// TestJWXVerifiesOurProofs: every proof our Signer makes verifies with jwx
// using the jwk from its own header, and jwx computes the same thumbprint.
func TestJWXVerifiesOurProofs(t *testing.T) {
	for _, tc := range jwxCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			s, err := dpop.NewSigner(tc.key, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			for _, token := range []string{"", testToken} {
				p, err := s.ProofWithNonce("POST", testHTU, token, "eyJ7S_zG.eyJH0-Z.HX4w-7v")
				if err != nil {
					t.Fatal(err)
				}
				msg, err := jws.Parse([]byte(p))
				if err != nil {
					t.Fatal(err)
				}
				hdr := msg.Signatures()[0].ProtectedHeaders()
				typ, _ := hdr.Type()
				alg, _ := hdr.Algorithm()
				key, ok := hdr.JWK()
				if typ != "dpop+jwt" || alg.String() != tc.alg.String() || !ok {
					t.Fatalf("header typ=%q alg=%v jwk=%v", typ, alg, ok)
				}
				if _, err := jws.Verify([]byte(p), jws.WithKey(alg, key)); err != nil {
					t.Fatalf("jwx refuses our %s proof: %v", tc.name, err)
				}
				tp, err := key.Thumbprint(crypto.SHA256)
				if err != nil || b64.EncodeToString(tp) != s.Thumbprint() {
					t.Fatalf("jwx thumbprint %s, ours %s (%v)", b64.EncodeToString(tp), s.Thumbprint(), err)
				}
			}
			jwsAnswer, err := s.SignJWS("stepup-answer+jwt", []byte(`{"a":1}`))
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := jws.Parse([]byte(jwsAnswer))
			key, _ := msg.Signatures()[0].ProtectedHeaders().JWK()
			if _, err := jws.Verify([]byte(jwsAnswer), jws.WithKey(tc.alg, key)); err != nil {
				t.Fatalf("jwx refuses our SignJWS: %v", err)
			}
		})
	}
}

// TestOurVerifierAcceptsJWXProofs: proofs built with jwx verify with our
// Verifier, and a jwx proof replayed is refused.
func TestOurVerifierAcceptsJWXProofs(t *testing.T) {
	clock := newClock(testNow)
	v := newTestVerifier(t, clock)
	for i, tc := range jwxCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			pub, err := jwk.Import(tc.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			hdrs := jws.NewHeaders()
			if err := hdrs.Set(jws.TypeKey, "dpop+jwt"); err != nil {
				t.Fatal(err)
			}
			if err := hdrs.Set(jws.JWKKey, pub); err != nil {
				t.Fatal(err)
			}
			claims := claimsJSON("jwx-made-proof-"+itoa(int64(1000+i)), testNow.Unix())
			signed, err := jws.Sign([]byte(claims), jws.WithKey(tc.alg, tc.key, jws.WithProtectedHeaders(hdrs)))
			if err != nil {
				t.Fatal(err)
			}
			p, err := v.Verify(context.Background(), testRequest(string(signed)))
			if err != nil {
				t.Fatalf("our verifier refuses a jwx %s proof: %v", tc.name, err)
			}
			want, _ := pub.Thumbprint(crypto.SHA256)
			if p.Thumbprint != b64.EncodeToString(want) || p.Algorithm != tc.alg.String() {
				t.Fatalf("proof %+v", p)
			}
			_, err = v.Verify(context.Background(), testRequest(string(signed)))
			wantReason(t, err, dpop.ReasonReplayed)
		})
	}
}

// TestThumbprintMatchesJWX compares thumbprints of fresh random keys.
func TestThumbprintMatchesJWX(t *testing.T) {
	for range 20 {
		ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		edPub, _, _ := ed25519.GenerateKey(rand.Reader)
		for _, pub := range []crypto.PublicKey{ec.Public(), ec384.Public(), edPub} {
			k, err := jwk.Import(pub)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := k.Thumbprint(crypto.SHA256)
			got, err := dpop.ThumbprintOf(pub)
			if err != nil || got != b64.EncodeToString(want) {
				t.Fatalf("%T: ours %s, jwx %s (%v)", pub, got, b64.EncodeToString(want), err)
			}
		}
	}
	keys(t)
	k, _ := jwk.Import(rsaKey.Public().(*rsa.PublicKey))
	want, _ := k.Thumbprint(crypto.SHA256)
	if got, _ := dpop.ThumbprintOf(rsaKey.Public()); got != b64.EncodeToString(want) {
		t.Fatalf("RSA: ours %s, jwx %s", got, b64.EncodeToString(want))
	}
}

// BenchmarkJWXVerifyES256 is jwx's jws.Verify of an ES256 proof with the key
// already parsed: the reference the hand-rolled hot path is measured against
// (signature only; no claims, no replay).
func BenchmarkJWXVerifyES256(b *testing.B) {
	keys(b)
	s, _ := dpop.NewSigner(ecKey)
	p, _ := s.Proof("POST", testHTU, testToken)
	key, err := jwk.Import(ecKey.Public())
	if err != nil {
		b.Fatal(err)
	}
	buf := []byte(p)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jws.Verify(buf, jws.WithKey(jwa.ES256(), key)); err != nil {
			b.Fatal(err)
		}
	}
}
