// Cross-checks against github.com/lestrrat-go/jwx/v3: challenges and grants
// are parsed and MACed with the standard library on the hot path, so these
// tests hold them to an independent JOSE implementation, using the key
// derivation documented in docs/STEPUP.md §3.1.

package challenge_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"strconv"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/stepupgrpc/stepup/challenge"
)

// derivedKey is K_T = HMAC-SHA256(secret, typ).
func derivedKey(secret []byte, typ string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(typ))
	return m.Sum(nil)
}

func TestJWXVerifiesOurTokens(t *testing.T) {
	key := newKey(t, "k1")
	f := newFixture(t, withKeySet(newKeySet(t, key)))
	call := f.call(reusable, nil)
	ch := f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, f.totp())
	grant := f.check(call).Grant

	for typ, token := range map[string]string{challenge.ChallengeType: ch.GetChallenge(), challenge.GrantType: grant} {
		msg, err := jws.Parse([]byte(token))
		if err != nil {
			t.Fatal(err)
		}
		h := msg.Signatures()[0].ProtectedHeaders()
		if alg, _ := h.Algorithm(); alg != jwa.HS256() {
			t.Fatalf("%s: alg %v", typ, alg)
		}
		if got, _ := h.Type(); got != typ {
			t.Fatalf("typ %q, want %q", got, typ)
		}
		if kid, _ := h.KeyID(); kid != "k1" {
			t.Fatalf("kid %q", kid)
		}
		if _, err := jws.Verify([]byte(token), jws.WithKey(jwa.HS256(), derivedKey(key.Secret, typ))); err != nil {
			t.Fatalf("%s: jwx refuses our MAC: %v", typ, err)
		}
		// The raw secret is not the MAC key: tokens of one type cannot be
		// MACed with another type's key.
		if _, err := jws.Verify([]byte(token), jws.WithKey(jwa.HS256(), key.Secret)); err == nil {
			t.Fatalf("%s: verifies with the raw secret", typ)
		}
	}
}

// A grant made by jwx (its own header member order and encoding) with the
// documented derivation is accepted; one made with the raw secret is not.
func TestWeVerifyJWXTokens(t *testing.T) {
	key := newKey(t, "k1")
	f := newFixture(t, withKeySet(newKeySet(t, key)))
	now := f.clock.Now().Unix()
	claims := []byte(`{"jti":"jwx-grant","sub":"alice","jkt":"` + f.client.Thumbprint() + `","fac":"totp","auth_time":` +
		strconv.FormatInt(now, 10) + `,"iat":` + strconv.FormatInt(now, 10) + `,"exp":` + strconv.FormatInt(now+60, 10) + `}`)
	sign := func(k []byte) string {
		hdr := jws.NewHeaders()
		for name, v := range map[string]string{"kid": "k1", "typ": challenge.GrantType} {
			if err := hdr.Set(name, v); err != nil {
				t.Fatal(err)
			}
		}
		b, err := jws.Sign(claims, jws.WithKey(jwa.HS256(), k, jws.WithProtectedHeaders(hdr)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	call := f.call(reusable, nil)
	call.Grant = sign(derivedKey(key.Secret, challenge.GrantType))
	out, err := f.svc.Check(context.Background(), call)
	if err != nil || !out.Satisfied || out.GrantID != "jwx-grant" {
		t.Fatalf("jwx grant refused: %+v %v", out, err)
	}
	call.Grant = sign(key.Secret)
	expectReason(t, f.check(call), challenge.ReasonGrantBadSignature)
	call.Grant = sign(derivedKey(key.Secret, challenge.ChallengeType))
	expectReason(t, f.check(call), challenge.ReasonGrantBadSignature)
}
