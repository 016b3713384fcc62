package dpop_test

import (
	"context"
	"crypto"
	"strings"
	"testing"

	"github.com/stepupgrpc/stepup/dpop"
)

// escapeInto returns json with the JSON escape esc ("\n", "\r", …)
// written into the middle of the string value of member name (the first
// occurrence of "name":"…").
func escapeInto(tb testing.TB, json, name, esc string) string {
	tb.Helper()
	key := `"` + name + `":"`
	i := strings.Index(json, key)
	if i < 0 {
		tb.Fatalf("no member %s in %s", name, json)
	}
	start := i + len(key)
	end := start + strings.IndexByte(json[start:], '"')
	mid := start + (end-start)/2
	return json[:mid] + esc + json[mid:]
}

// TestOneSpellingPerValue: a base64url value inside a proof's JSON (the
// jwk's x, y, n and e, the claims' ath) written with an escaped line break
// decodes, with encoding/base64, to the same bytes: the same key or hash
// spelled another way, which a cache or log keyed on the text sees as
// another value. Each is refused, for every escape, with the reason of its
// member; the proof as signed without the escape is accepted.
func TestOneSpellingPerValue(t *testing.T) {
	keys(t)
	now := testNow.Unix()
	type proofKey struct {
		alg string
		key any
		pub crypto.PublicKey
	}
	ec := proofKey{"ES256", ecKey, ecKey.Public()}
	ed := proofKey{"EdDSA", edKey, edKey.Public()}
	rs := proofKey{"PS256", rsaKey, rsaKey.Public()}
	cases := []struct {
		name   string
		key    proofKey
		member string // in the jwk, or "ath" in the claims
		want   dpop.Reason
	}{
		{"EC x", ec, "x", dpop.ReasonBadKey},
		{"EC y", ec, "y", dpop.ReasonBadKey},
		{"Ed25519 x", ed, "x", dpop.ReasonBadKey},
		{"RSA n", rs, "n", dpop.ReasonBadKey},
		{"RSA e", rs, "e", dpop.ReasonBadKey},
		{"ath", ec, "ath", dpop.ReasonBadATH},
	}
	for _, c := range cases {
		for _, esc := range []string{`\n`, `\r`, `\r\n`, `\n\n\n\n`} {
			t.Run(c.name+" "+esc, func(t *testing.T) {
				v := newTestVerifier(t, newClock(testNow))
				jwk := jwkOf(t, c.key.pub)
				claims := claimsJSON("jti-escaped-value-0001", now)
				if c.member == "ath" {
					claims = escapeInto(t, claims, "ath", esc)
				} else {
					jwk = escapeInto(t, jwk, c.member, esc)
				}
				hdr := `{"typ":"dpop+jwt","alg":"` + c.key.alg + `","jwk":` + jwk + `}`
				p := sign(t, c.key.alg, c.key.key, hdr, claims)
				_, err := v.Verify(context.Background(), testRequest(p))
				wantReason(t, err, c.want)
				if c.member != "ath" {
					if _, err := dpop.Thumbprint([]byte(jwk)); dpop.ReasonOf(err) != dpop.ReasonBadKey {
						t.Errorf("Thumbprint of the jwk with %s in %s: %v, want %s", esc, c.member, err, dpop.ReasonBadKey)
					}
				}
				// Control: the same proof without the escape is accepted,
				// its jti untouched by the refusal.
				p = sign(t, c.key.alg, c.key.key, proofHeader(t, c.key.alg, c.key.pub), claimsJSON("jti-escaped-value-0001", now))
				if _, err := v.Verify(context.Background(), testRequest(p)); err != nil {
					t.Fatalf("the proof without the escape: %v", err)
				}
			})
		}
	}
}
